import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { callControlDepsFromEnv } from '#adapters/runtime/call-control-from-env';
import {
  type CallControlDeps,
  type ControlResponse,
  commandStatus,
  submitCommand,
} from '#core/calls/call-control';

/**
 * The call-control API behind API Gateway (HTTP API, payload format 2.0), issue 16:
 * `POST /calls/{call_id}/commands` → 202 `{id, status: "pending", …}`, and
 * `GET /calls/{call_id}/commands/{id}` → the command's status (`pending`, `applied`, `refused`,
 * `failed`). API Gateway has authenticated the caller already (IAM SigV4 by default, or a JWT:
 * lib/constructs/call-control-api.ts); the sender recorded on the call's timeline is that
 * identity, never anything the body says.
 */
let deps: CallControlDeps | undefined;

export async function handler(
  event: APIGatewayProxyEventV2,
): Promise<APIGatewayProxyStructuredResultV2> {
  deps ??= callControlDepsFromEnv(process.env);
  return toResult(await handleControlRequest(deps, event));
}

export async function handleControlRequest(
  d: CallControlDeps,
  event: APIGatewayProxyEventV2,
): Promise<ControlResponse> {
  // Defence in depth: the routes are deployed with an authorizer (AWS_IAM by default, or JWT), but
  // a request that reached the function without one (a route or integration added by hand, a
  // direct invoke) is refused here too, and nothing is read or written.
  const sender = senderOf(event);
  if (sender === undefined)
    return {
      statusCode: 401,
      body: {
        error: {
          code: 'unauthenticated',
          message: 'The request was not authenticated (IAM SigV4 or a JWT).',
        },
      },
    };
  const callId = event.pathParameters?.call_id ?? '';
  const commandId = event.pathParameters?.id;
  const method = event.requestContext.http.method;
  if (method === 'POST' && commandId === undefined) {
    const body =
      event.body === undefined
        ? ''
        : event.isBase64Encoded
          ? Buffer.from(event.body, 'base64').toString('utf8')
          : event.body;
    return submitCommand(d, { callId, body, sender });
  }
  if (method === 'GET' && commandId !== undefined) return commandStatus(d, { callId, commandId });
  return { statusCode: 404, body: { error: { code: 'not_found', message: 'No such route.' } } };
}

/**
 * Who sent it: the IAM principal (SigV4) or the JWT's subject, as API Gateway verified it
 * (`requestContext.authorizer.iam` / `.jwt`, payload format 2.0); undefined when API Gateway
 * authenticated nobody.
 */
export function senderOf(event: APIGatewayProxyEventV2): string | undefined {
  const authorizer = (
    event.requestContext as {
      authorizer?: {
        iam?: { userArn?: string; callerId?: string };
        jwt?: { claims?: Record<string, unknown> };
      };
    }
  ).authorizer;
  const iam = authorizer?.iam;
  if (iam?.userArn) return iam.userArn;
  if (iam?.callerId) return `iam:${iam.callerId}`;
  const claims = authorizer?.jwt?.claims;
  if (claims && typeof claims.sub === 'string')
    return `jwt:${typeof claims.iss === 'string' ? `${claims.iss}#` : ''}${claims.sub}`;
  return undefined;
}

function toResult(response: ControlResponse): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: response.statusCode,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(response.body),
  };
}
