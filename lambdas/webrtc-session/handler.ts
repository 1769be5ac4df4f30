import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { requestOf, webRtcDepsFromEnv } from '#adapters/runtime/webrtc-session-from-env';
import { handleWebRtcRequest } from '#core/webrtc/session-endpoint';

/**
 * The WebRTC session endpoint behind API Gateway (HTTP API, payload format 2.0): `POST /session`
 * and `POST /calls/{call_id}/attach`. API Gateway has already authenticated the caller (JWT, IAM
 * or none: lib/constructs/webrtc-session-endpoint.ts) and answers CORS preflights itself.
 */
const deps = webRtcDepsFromEnv(process.env);

export async function handler(
  event: APIGatewayProxyEventV2,
): Promise<APIGatewayProxyStructuredResultV2> {
  const response = await handleWebRtcRequest(deps, requestOf(event));
  return { statusCode: response.statusCode, headers: response.headers, body: response.body };
}
