/**
 * Client settings shared by every AWS SDK client. Endpoints are overridable per service
 * (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_S3`, …), which the SDK
 * reads itself; local mode and the tests use that to point at the stand-ins.
 */

/**
 * Time allowed to open a connection (TCP and TLS) to an AWS endpoint. In-region connections take
 * milliseconds; a second means the endpoint or the network is not answering.
 */
export const CONNECTION_TIMEOUT_MS = 1000;
/**
 * Time allowed for one quick call, from sending it to the whole answer: DynamoDB item calls, an
 * SQS send, an S3 put or get of at most 1 MiB, all of which answer in milliseconds in-region. A
 * socket that accepts and never answers is given up after this, and the SDK's retry (up to
 * `maxAttempts`) gets a fresh connection, instead of holding an ingress slot (reserved
 * concurrency) until the function times out. Not for calls that wait on purpose (an SQS long
 * poll, a synchronous Lambda invoke): those clients get the connection timeout only.
 */
export const REQUEST_TIMEOUT_MS = 2000;

export interface ClientTimeouts {
  /** @default CONNECTION_TIMEOUT_MS */
  readonly connectionTimeoutMs?: number;
  /** @default none: the call may take as long as the service does */
  readonly requestTimeoutMs?: number;
  /**
   * Sockets the client may hold open per endpoint. The SDK's default pool is 50, and a request
   * waiting for a free socket counts against `connectionTimeoutMs` (@smithy/node-http-handler
   * starts that timer when the request is made), so a process that makes many calls at once, such
   * as a sideband worker attaching a burst of calls, needs a larger pool or its queued calls fail
   * as connection timeouts. @default the SDK's (50)
   */
  readonly maxSockets?: number;
}

/** Timeouts for clients that only make quick calls (DynamoDB, S3, the ingress's SQS sends). */
export const QUICK_CALLS: ClientTimeouts = {
  connectionTimeoutMs: CONNECTION_TIMEOUT_MS,
  requestTimeoutMs: REQUEST_TIMEOUT_MS,
};

export function awsClientConfig(endpoint?: string, timeouts: ClientTimeouts = {}) {
  const { connectionTimeoutMs = CONNECTION_TIMEOUT_MS, requestTimeoutMs, maxSockets } = timeouts;
  const pool = maxSockets !== undefined ? { maxSockets, keepAlive: true } : undefined;
  return {
    // Fail fast instead of hanging the webhook acknowledgement.
    maxAttempts: 3,
    // The options form of @smithy/node-http-handler's NodeHttpHandler. Without
    // `throwOnRequestTimeout`, an exceeded `requestTimeout` only logs a warning.
    requestHandler: {
      connectionTimeout: connectionTimeoutMs,
      ...(requestTimeoutMs !== undefined
        ? { requestTimeout: requestTimeoutMs, throwOnRequestTimeout: true }
        : {}),
      ...(pool ? { httpAgent: pool, httpsAgent: pool } : {}),
    },
    ...(endpoint ? { endpoint } : {}),
  };
}

/**
 * With an endpoint override (local mode), send every SQS call to that endpoint instead of the
 * queue URL's host: emulators hand out queue URLs such as `http://sqs.us-east-1.127.0.0.1:port/…`,
 * which are not valid URLs.
 */
export function sqsClientConfig(
  env: NodeJS.ProcessEnv = process.env,
  timeouts: ClientTimeouts = {},
) {
  const overridden = Boolean(env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL);
  return {
    ...awsClientConfig(undefined, timeouts),
    ...(overridden ? { useQueueUrlAsEndpoint: false } : {}),
  };
}

/**
 * S3 settings: path-style addressing when an endpoint override is set (a local stand-in on
 * `127.0.0.1:port` has no per-bucket host names).
 */
export function s3ClientConfig(env: NodeJS.ProcessEnv = process.env) {
  const overridden = Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  return {
    ...awsClientConfig(undefined, QUICK_CALLS),
    ...(overridden ? { forcePathStyle: true } : {}),
  };
}

/** The services whose clients the runtime wiring builds (what a client hook is told). */
export type AwsService = 'dynamodb' | 'sqs' | 's3' | 'secretsmanager' | 'lambda' | 'ecs';

/** Something that can see each client as it is built: the cost benchmark adds middleware. */
export type ClientHook = (client: object, service: AwsService) => void;

const hooks = new Set<ClientHook>();

/** Registers a hook for clients built from now on; returns its removal. Measurement only. */
export function onAwsClient(hook: ClientHook): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/** Passes a newly built client to the registered hooks (none in AWS). */
export function hooked<T extends object>(client: T, service: AwsService): T {
  for (const hook of hooks) hook(client, service);
  return client;
}
