import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECSClient } from '@aws-sdk/client-ecs';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { parseCallsConfig } from '#core/calls/calls-config';
import { ENV, requireEnv } from '#core/env';
import { createLogger, parseLogLevel } from '#core/observability/logger';
import type { MetricsPublisher } from '#core/observability/metrics';
import type { EndpointRequest, WebRtcEndpointDeps } from '#core/webrtc/session-endpoint';
import { parseWebRtcConfig, webRtcProfiles } from '#core/webrtc/webrtc-config';
import { awsClientConfig, hooked, QUICK_CALLS, sqsClientConfig } from '../aws-clients';
import { DynamoCallStore } from '../dynamo-call-store';
import { DynamoRateLimiter } from '../dynamo-rate-limit';
import { EcsServiceScaler } from '../ecs-service-scaler';
import { metricsFromEnv } from '../metrics-from-env';
import { OpenAiCallsApi } from '../openai-calls-api';
import { openAiFromEnv } from '../openai-from-env';
import { OpenAiRealtimeCalls } from '../openai-realtime-calls';
import { SqsSignalPublisher } from '../sqs-signal-publisher';

/**
 * The session Lambda's dependencies, once per cold start: the profiles (`WEBRTC_CONFIG` names
 * keys of `CALLS_CONFIG`'s sessions), the key from Secrets Manager (only its id is in the
 * environment), the call table, the signal queue and, when the fleet may scale to zero, ECS.
 */
export function webRtcDepsFromEnv(
  env: NodeJS.ProcessEnv,
  metricsPublisher?: MetricsPublisher,
  options: {
    /** How long `POST /realtime/calls` may take. @default OpenAiRealtimeCalls' (10 s) */
    readonly openAiTimeoutMs?: number;
  } = {},
): WebRtcEndpointDeps {
  const calls = parseCallsConfig(requireEnv(env, ENV.callsConfig));
  const config = parseWebRtcConfig(requireEnv(env, ENV.webrtcConfig), calls.policy.sessions);
  const openAi = openAiFromEnv(env);
  if (!openAi) throw new Error(`Environment variable ${ENV.openAiKeySecretId} is required.`);
  const tableName = requireEnv(env, ENV.tableName);
  const documents = DynamoDBDocumentClient.from(
    hooked(new DynamoDBClient(awsClientConfig(undefined, QUICK_CALLS)), 'dynamodb'),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  const api = new OpenAiCallsApi(openAi.client);
  const cluster = env[ENV.ecsCluster];
  const service = env[ENV.ecsService];
  return {
    profiles: webRtcProfiles(config, calls.policy.sessions),
    ...(config.defaultProfile !== undefined ? { defaultProfile: config.defaultProfile } : {}),
    userTools: calls.tools.map(({ name, description, parameters }) => ({
      name,
      description,
      parameters,
    })),
    maxConcurrentSessions: config.maxConcurrentSessions,
    maxSdpBytes: config.maxSdpBytes,
    auth: { session: config.auth ?? 'open', attach: config.attachAuth ?? 'open' },
    ...(config.perIp
      ? { perIp: { ...config.perIp, limiter: new DynamoRateLimiter(documents, tableName) } }
      : {}),
    recordTtlSeconds: calls.recordTtlSeconds,
    openAi: new OpenAiRealtimeCalls({
      baseUrl: openAi.baseUrl,
      apiKey: openAi.apiKey,
      ...(options.openAiTimeoutMs !== undefined ? { timeoutMs: options.openAiTimeoutMs } : {}),
    }),
    hangup: (callId) => api.hangup(callId),
    store: new DynamoCallStore(documents, tableName),
    signals: new SqsSignalPublisher(
      hooked(
        new SQSClient({
          ...sqsClientConfig(process.env, QUICK_CALLS),
          // The SDK reads AWS_ENDPOINT_URL_SQS from process.env itself (Lambda: unset); one given
          // in `env` wins, so local mode can point one endpoint elsewhere (a fault, in tests).
          ...(env.AWS_ENDPOINT_URL_SQS ? { endpoint: env.AWS_ENDPOINT_URL_SQS } : {}),
        }),
        'sqs',
      ),
      requireEnv(env, ENV.signalQueueUrl),
    ),
    ...(cluster && service
      ? { scaler: new EcsServiceScaler(new ECSClient(awsClientConfig()), cluster, service) }
      : {}),
    clock: Date.now,
    metrics: metricsPublisher ?? metricsFromEnv(env, 'webrtc-session'),
    log: createLogger({ service: 'webrtc-session', level: parseLogLevel(env[ENV.logLevel]) }),
  };
}

/**
 * An API Gateway HTTP API event (payload format 2.0) as core/webrtc sees it: header names
 * lower-cased, and a body API Gateway base64-encoded (it does so for `application/sdp`) decoded.
 */
export function requestOf(event: APIGatewayProxyEventV2): EndpointRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(event.headers ?? {}))
    headers[name.toLowerCase()] = value;
  const body =
    event.body === undefined
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, 'base64').toString('utf8')
        : event.body;
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    headers,
    query: { ...(event.queryStringParameters ?? {}) },
    body,
    sourceIp: event.requestContext.http.sourceIp,
    ...authorizerOf(event),
  };
}

/** The authorizer's result in an HTTP API request context (payload 2.0), if one ran. */
function authorizerOf(event: APIGatewayProxyEventV2): Pick<EndpointRequest, 'authorizer'> {
  const context = event.requestContext as {
    authorizer?: {
      jwt?: { claims?: Record<string, unknown> };
      iam?: { userArn?: string; callerId?: string };
    };
  };
  const authorizer = context.authorizer;
  if (authorizer?.jwt?.claims) {
    const sub = authorizer.jwt.claims.sub;
    return { authorizer: { kind: 'jwt', subject: typeof sub === 'string' ? sub : undefined } };
  }
  if (authorizer?.iam)
    return {
      authorizer: { kind: 'iam', caller: authorizer.iam.userArn ?? authorizer.iam.callerId },
    };
  return {};
}
