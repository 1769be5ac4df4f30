import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { awsClientConfig, QUICK_CALLS, sqsClientConfig } from '#adapters/aws-clients';
import { DynamoCallCommands } from '#adapters/dynamo-call-commands';
import { DynamoCallLeases } from '#adapters/dynamo-call-leases';
import { DynamoCallRecorder } from '#adapters/dynamo-call-recorder';
import { DynamoCallStore } from '#adapters/dynamo-call-store';
import { DynamoToolCallClaims } from '#adapters/dynamo-tool-call-claims';
import { EcsTaskProtection } from '#adapters/ecs-task-protection';
import { LambdaToolRunner } from '#adapters/lambda-tool-runner';
import { metricsFromEnv } from '#adapters/metrics-from-env';
import { OpenAiCallsApi } from '#adapters/openai-calls-api';
import { openAiFromEnv } from '#adapters/openai-from-env';
import { controlQueueName, SqsControlQueue } from '#adapters/sqs-control-queue';
import { SqsSignalPublisher } from '#adapters/sqs-signal-publisher';
import { SqsSignalQueue } from '#adapters/sqs-signal-queue';
import { commandLimitsOf } from '#core/calls/call-control';
import { parseCallsConfig } from '#core/calls/calls-config';
import { ENV, numberEnv, requireEnv } from '#core/env';
import { createLogger, parseLogLevel } from '#core/observability/logger';
import { callsConfigForChannel } from '#core/webrtc/webrtc-config';
import { CallSession } from './call-session';
import { SidebandWorker } from './worker';

/** The sideband worker's entry: wiring from the environment, /healthz, and SIGTERM hand-off. */
const env = process.env;
const owner = env[ENV.workerId] || (await ecsTaskId()) || `${hostname()}-${process.pid}`;
const log = createLogger(
  { service: 'sideband', level: parseLogLevel(env[ENV.logLevel]) },
  { owner },
);
const config = parseCallsConfig(requireEnv(env, ENV.callsConfig));
// The wall clock leases are written with. CLOCK_OFFSET_MS skews it, for tests of clock skew only.
const clockOffsetMs = numberEnv(env, 'CLOCK_OFFSET_MS', 0);
const clock = clockOffsetMs === 0 ? Date.now : () => Date.now() + clockOffsetMs;
const tableName = requireEnv(env, ENV.tableName);
/** The worker's DynamoDB socket pool (see `ClientTimeouts.maxSockets`). */
const WORKER_DYNAMODB_SOCKETS = numberEnv(env, 'DYNAMODB_MAX_SOCKETS', 1024);
/**
 * Per-request timeout of the worker's DynamoDB calls (QUICK_CALLS: 2 s, against an in-region
 * service that answers in milliseconds). Overridable for stand-ins that are slower than the real
 * service under load (the density bench's DynamoDB Local).
 */
const WORKER_DYNAMODB_TIMEOUT_MS = numberEnv(
  env,
  'DYNAMODB_REQUEST_TIMEOUT_MS',
  QUICK_CALLS.requestTimeoutMs ?? 2000,
);
const signalQueueUrl = requireEnv(env, ENV.signalQueueUrl);
const openAi = openAiFromEnv(env);
if (!openAi)
  throw new Error(`${ENV.openAiKeySecretId} is required: the worker calls the OpenAI API.`);
// wss://api.openai.com/v1/realtime, or ws://127.0.0.1:port/v1/realtime for the local simulator.
const realtimeUrl =
  env[ENV.openAiRealtimeUrl] ||
  `${openAi.baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '')}/realtime`;
// Fail at start, not on the first call, if the key cannot be read.
await openAi.apiKey();

// DynamoDB item calls answer in milliseconds: a socket that never answers is given up (QUICK_CALLS).
const documents = DynamoDBDocumentClient.from(
  // One worker holds hundreds of calls; an attach burst makes several item calls per call at once.
  new DynamoDBClient(
    awsClientConfig(undefined, {
      ...QUICK_CALLS,
      requestTimeoutMs: WORKER_DYNAMODB_TIMEOUT_MS,
      maxSockets: WORKER_DYNAMODB_SOCKETS,
    }),
  ),
  {
    marshallOptions: { removeUndefinedValues: true },
  },
);
const sqs = new SQSClient(sqsClientConfig());
const calls = new DynamoCallStore(documents, tableName);
// /hangup and /refer: a timeout per attempt (3 s by default), so a hung request cannot hold a goodbye.
const api = new OpenAiCallsApi(openAi.client, {
  timeoutMs: numberEnv(env, 'OPENAI_CALLS_TIMEOUT_MS', 3000),
});
const signals = new SqsSignalPublisher(sqs, signalQueueUrl);
const tools = new LambdaToolRunner(new LambdaClient(awsClientConfig()), config.tools);
const claims = new DynamoToolCallClaims(documents, tableName, {
  ttlSeconds: config.recordTtlSeconds,
  clock,
  redact: config.redactTranscripts,
  log,
});
const attachWindowMs = numberEnv(env, 'ATTACH_WINDOW_MS', 20_000);
const handshakeTimeoutMs = numberEnv(env, 'HANDSHAKE_TIMEOUT_MS', 5000);

const metrics = metricsFromEnv(env, 'sideband');
const leaseTtlMs = numberEnv(env, 'LEASE_TTL_MS', 15_000);
const leaseRenewalMs = numberEnv(env, 'LEASE_RENEWAL_MS', 5000);
const protection = EcsTaskProtection.fromEnv(env);

// Call control (issue 16): this worker's own SQS queue, on which the API nudges it when a call it
// holds has a pending command, registered in DynamoDB beside its lease. CALL_CONTROL=off: none.
const commandStore = new DynamoCallCommands(documents, tableName);
const commandLimits = commandLimitsOf(config);
// On ECS, only when the stack has call control (its construct sets the prefix and grants the
// queue permissions); locally, always. A queue that cannot be made is logged, and the worker runs
// on without call control rather than not at all.
const controlWanted =
  env.CALL_CONTROL !== 'off' &&
  (Boolean(env.CONTROL_QUEUE_PREFIX) || !env.ECS_CONTAINER_METADATA_URI_V4);
const control = controlWanted
  ? await openControlQueue().catch((error: unknown) => {
      log.error('call control off: the control queue could not be made', {
        error: String(error),
      });
      return undefined;
    })
  : undefined;
const worker = new SidebandWorker({
  metrics,
  // Long-poll wait; short enough that a drain is not held up for long.
  queue: new SqsSignalQueue(sqs, signalQueueUrl, numberEnv(env, 'SIGNAL_WAIT_SECONDS', 5)),
  signals,
  calls,
  leases: new DynamoCallLeases(documents, tableName),
  config,
  owner,
  clock,
  monotonic: () => performance.now(),
  log,
  leaseTtlMs,
  leaseRenewalMs,
  // The clock skew between tasks the leases tolerate (see SidebandWorker): 5 s by default.
  maxClockSkewMs: numberEnv(
    env,
    'MAX_CLOCK_SKEW_MS',
    Math.min(5000, Math.floor((leaseTtlMs - leaseRenewalMs) / 2)),
  ),
  sweepIntervalMs: numberEnv(env, 'SWEEP_INTERVAL_MS', 10_000),
  // ECS task scale-in protection while calls are held (undefined outside ECS).
  ...(protection ? { protection } : {}),
  ...(control ? { control: control.inbox } : {}),
  createSession: (record, signal, lease) => {
    const callLog = log.with({ callId: record.callId });
    const session =
      config.policy.sessions[record.sessionKey ?? 'default'] ?? config.policy.sessions.default;
    const recorder = new DynamoCallRecorder(documents, tableName, record.callId, {
      redact: config.redactTranscripts,
      ttlSeconds: config.recordTtlSeconds,
      clock,
      onError: (error) => callLog.error('recording failed', { error: String(error) }),
      // RecorderItemsDropped (alarmed) and a line per drop, with the reason.
      metrics,
      log: callLog,
    });
    return new CallSession(record, session, signal.reason === 'incoming', {
      // A WebRTC call has no transfer (REFER is SIP only): core/webrtc/webrtc-config.ts.
      config: callsConfigForChannel(
        config,
        record.channel,
        numberEnv(env, ENV.webrtcMaxSessionMs, 0),
      ),
      calls,
      api,
      tools,
      claims,
      recorder,
      realtimeUrl,
      apiKey: openAi.apiKey,
      owner,
      clock,
      log: callLog,
      pingIntervalMs: numberEnv(env, 'PING_INTERVAL_MS', 25_000),
      metrics,
      lease,
      attachWindowMs,
      handshakeTimeoutMs,
      commands: { store: commandStore, limits: commandLimits },
    });
  },
});
await worker.start();

// Gauges every 30 s. Scaling tracks ActiveCalls (Average: calls per task). AccountActiveCalls is
// the account-wide capacity counter: every task reports the same value, so its Maximum is exact
// however many tasks run.
setInterval(
  async () => {
    const accountActive = await calls.activeCalls().catch(() => undefined);
    metrics([
      { name: 'ActiveCalls', value: worker.activeCalls },
      { name: 'CallCapacity', value: config.maxCallsPerTask },
      ...(accountActive !== undefined
        ? [{ name: 'AccountActiveCalls' as const, value: accountActive }]
        : []),
    ]);
  },
  numberEnv(env, 'GAUGE_INTERVAL_MS', 30_000),
).unref();

// Readiness: 503 while draining, so no new work is routed here; always reports the call count.
const health = createServer((req, res) => {
  if (req.url !== '/healthz') {
    res.writeHead(404).end();
    return;
  }
  const body = JSON.stringify({
    ready: worker.ready,
    activeCalls: worker.activeCalls,
    capacity: config.maxCallsPerTask,
    owner,
    rssBytes: process.memoryUsage().rss,
  });
  res.writeHead(worker.ready ? 200 : 503, { 'content-type': 'application/json' }).end(body);
});
health.listen(numberEnv(env, ENV.healthPort, 8080), '0.0.0.0', () => {
  const address = health.address();
  // A lifecycle line, printed whatever the log level: launchers wait for it.
  const ready = {
    level: 'info',
    // Every log line has a time (issue 13), this lifecycle line too.
    time: new Date().toISOString(),
    service: 'sideband',
    message: 'sideband worker ready',
    owner,
    healthPort: typeof address === 'object' && address ? address.port : undefined,
    capacity: config.maxCallsPerTask,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
});

let stopping = false;
process.on('SIGTERM', async () => {
  if (stopping) return;
  stopping = true;
  await worker.drain();
  if (control) await control.close();
  health.close();
  log.info('drained; exiting');
  process.exit(0);
});
process.on('SIGINT', () => process.kill(process.pid, 'SIGTERM'));

/**
 * Creates this worker's control queue and registers it, then (in the background) deletes the
 * queues of workers that are gone: those whose worker lease the sweeper removed.
 */
async function openControlQueue() {
  const prefix = env.CONTROL_QUEUE_PREFIX || `${tableName}-ctl-`;
  const queueUrl = await SqsControlQueue.create(sqs, controlQueueName(prefix, owner), {
    'owh:owner': owner.slice(0, 256),
  });
  await commandStore.registerAddress(owner, queueUrl, clock());
  void (async () => {
    // Only queues registered a while ago: a worker starting at the same time as this one has
    // its queue before its lease.
    const before = clock() - 10 * 60_000;
    for (const { owner: other, address, registeredAt } of await commandStore.addresses()) {
      if (other === owner || registeredAt > before || (await commandStore.workerKnown(other)))
        continue;
      await SqsControlQueue.remove(sqs, address).catch(() => undefined);
      await commandStore.removeAddress(other, address);
      log.info('removed the control queue of a worker that is gone', { worker: other });
    }
  })().catch((error: unknown) =>
    log.warn('control queue tidy-up failed', { error: String(error) }),
  );
  return {
    inbox: new SqsControlQueue(sqs, queueUrl, numberEnv(env, 'CONTROL_WAIT_SECONDS', 20)),
    async close() {
      await commandStore.removeAddress(owner, queueUrl).catch(() => undefined);
      await SqsControlQueue.remove(sqs, queueUrl).catch(() => undefined);
    },
  };
}

/** The ECS task id from the container metadata endpoint, when running on ECS. */
async function ecsTaskId(): Promise<string | undefined> {
  const uri = process.env.ECS_CONTAINER_METADATA_URI_V4;
  if (!uri) return undefined;
  try {
    const task = (await (
      await fetch(`${uri}/task`, { signal: AbortSignal.timeout(2000) })
    ).json()) as { TaskARN?: string };
    return task.TaskARN?.split('/').pop();
  } catch {
    return undefined;
  }
}
