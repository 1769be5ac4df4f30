/** Environment variable names shared by the CDK constructs (which set them) and the handlers. */
export const ENV = {
  tableName: 'TABLE_NAME',
  queueUrls: 'QUEUE_URLS',
  webhookSecretId: 'WEBHOOK_SECRET_ID',
  openAiKeySecretId: 'OPENAI_API_KEY_SECRET_ID',
  openAiBaseUrl: 'OPENAI_BASE_URL',
  toleranceSeconds: 'WEBHOOK_TOLERANCE_SECONDS',
  maxBodyBytes: 'MAX_BODY_BYTES',
  dedupeTtlSeconds: 'DEDUPE_TTL_SECONDS',
  eventTtlSeconds: 'EVENT_TTL_SECONDS',
  secretCacheSeconds: 'SECRET_CACHE_SECONDS',
  category: 'CATEGORY',
  hydrate: 'HYDRATE',
  /**
   * The category queue's `maxReceiveCount` (its redrive policy): a consumer failing a message on
   * that receive logs and counts it as dead-lettered.
   */
  maxReceiveCount: 'MAX_RECEIVE_COUNT',
  userHandlerFunction: 'USER_HANDLER_FUNCTION',
  logLevel: 'LOG_LEVEL',
  callsConfig: 'CALLS_CONFIG',
  /** The WebRTC session endpoint's config (core/webrtc/webrtc-config.ts), JSON. */
  webrtcConfig: 'WEBRTC_CONFIG',
  /** The longest a browser (WebRTC) session lasts, for the sideband worker: ms; unset or 0 for the calls' cap. */
  webrtcMaxSessionMs: 'WEBRTC_MAX_SESSION_MS',
  signalQueueUrl: 'SIGNAL_QUEUE_URL',
  ecsCluster: 'ECS_CLUSTER',
  ecsService: 'ECS_SERVICE',
  openAiRealtimeUrl: 'OPENAI_REALTIME_URL',
  workerId: 'WORKER_ID',
  healthPort: 'HEALTH_PORT',
  /** The stack's name: the `Stack` dimension of every metric. */
  stackName: 'STACK_NAME',
  /** The claim-check bucket for bodies too large for a queue message (S3). */
  payloadBucket: 'PAYLOAD_BUCKET',
  /** `off` silences the EMF metrics. */
  metrics: 'METRICS',
} as const;

export function requireEnv(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (value === undefined || value === '')
    throw new Error(`Environment variable ${name} is required.`);
  return value;
}

export function numberEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`Environment variable ${name} must be a number.`);
  return value;
}
