import { createWriteStream, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { logFormat, prettyLogLine } from '#core/observability/logger';
import { emfPublisher } from '#core/observability/metrics';
import { loadAppConfig } from '../lib/app-config-file';
import { startCallControl } from './call-control';
import { localCallsConfig } from './calls';
import { type LambdaProcess, startLambdaProcess } from './lambda-invoke-server';
import { type LocalApp, loadLocalApp } from './local-app';
import { acquireLock, localDir, removeState, writeState } from './local-state';
import { generateWebhookSecret, LocalPipeline } from './pipeline';
import { localSessionEndpoint } from './session-endpoint';
import { adoptNewSecretsAtOnce, webhookEndpointState } from './webhook-endpoint-state';

/**
 * `npm start`: the whole pipeline on this machine. DynamoDB Local keeps its data in .local/ (or
 * OWH_LOCAL_DIR); the SQS emulator and the OpenAI simulator are in memory. One instance per
 * folder (a lock); its child processes die with it, however it dies.
 */
const env = process.env;
const stateDir = localDir(env);
const stateFile = path.join(stateDir, 'state.json');
const port = Number(env.PORT || 8787);

/** One line on stderr, then exit: what went wrong and what to do. */
function fail(message: string): never {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(1);
}

if (!Number.isInteger(port) || port < 0 || port > 65535)
  fail(`PORT must be a port number (0 for any free one); got "${env.PORT}".`);
mkdirSync(path.join(stateDir, 'dynamodb'), { recursive: true });

const lock = acquireLock(stateDir);
if (!lock.ok)
  fail(
    `local mode is already running in ${stateDir} (pid ${lock.pid}): stop it first, or give this one a folder and port of its own: OWH_LOCAL_DIR=/tmp/other PORT=${port === 8787 || port === 0 ? 8788 : port + 1} npm start`,
  );
// Synchronous, so it runs on every exit: a clean stop, a failure, process.exit anywhere.
process.on('exit', () => {
  removeState(stateFile);
  lock.release();
});

const portInUse = (p: number) =>
  `port ${p} is in use (another npm start, or another program): stop it, or choose another port: PORT=${p + 1} npm start`;

// The port first: a clash is found before DynamoDB Local and the rest are started for nothing.
if (port !== 0) {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
  if (!free) fail(portInUse(port));
}

// The app config (bin/app-config.ts, or OWH_APP_CONFIG): the one `cdk deploy` deploys, checked
// the same way; its handlers and tools run here on the deployed code path (local/local-app.ts).
const ROOT = path.resolve(import.meta.dirname, '..');
let app: LocalApp;
try {
  app = await loadLocalApp(await loadAppConfig(env, ROOT), ROOT);
} catch (error) {
  fail(`the app config cannot run: ${error instanceof Error ? error.message : String(error)}`);
}
// Phone calls: against the simulator, or against the OpenAI API at OPENAI_BASE_URL when its key
// is given too (the webhooks reach this machine through your tunnel). The app's calls config
// when it has one, else the demo profile.
const external = Boolean(env.OPENAI_BASE_URL);
const callsOn = !external || Boolean(env.OPENAI_API_KEY);
const calls = callsOn ? (app.calls ?? localCallsConfig()) : undefined;
const callsNote = !callsOn
  ? 'off: OPENAI_BASE_URL is set without OPENAI_API_KEY (the sideband worker needs the key)'
  : `${app.calls ? `the app's calls config (${app.configFile})` : 'the demo profile (the app config has no calls)'}, against ${external ? env.OPENAI_BASE_URL : 'the Realtime simulator'}`;

let pipeline: LocalPipeline | undefined;
let tools: LambdaProcess | undefined;
let stopping = false;

/** Stops what is running (at most 10 s), then exits; the children stop with us in any case. */
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const timeout = new Promise((resolve) => setTimeout(resolve, 10_000).unref());
  await Promise.race([pipeline?.stop(), timeout]).catch(() => undefined);
  await Promise.race([tools?.stop(), timeout]).catch(() => undefined);
  process.exit(code);
}

// A crash is one line, not a stack trace, and still stops the children (each also watches us).
const crashed = (error: unknown) => {
  if (stopping) return;
  const e = error as NodeJS.ErrnoException & { port?: number };
  const message =
    e?.code === 'EADDRINUSE'
      ? portInUse(e.port ?? port)
      : `crashed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(error)}${
          env.DEBUG ? `\n${e instanceof Error ? e.stack : ''}` : ' (DEBUG=1 for the stack)'
        }`;
  process.stderr.write(`npm start: ${message}\n`);
  void shutdown(1);
};
// The terminal or pipe that reads us can go away (EPIPE): stop quietly rather than fail on
// every later line.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => void shutdown(0));
process.on('uncaughtException', crashed);
process.on('unhandledRejection', crashed);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(signal, () => {
    if (!stopping) process.stderr.write('\nStopping…\n');
    void shutdown(0);
  });
// Whoever started us (tsx's launcher, a terminal) died without a signal to us: stop too.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void shutdown(1);
}, 500).unref();

// Logs: readable lines on a terminal (LOG_FORMAT=json or pretty overrides). The in-process
// handlers choose for themselves; the worker's JSON lines, echoed here, are turned into the same.
const pretty = logFormat(env.LOG_FORMAT, Boolean(process.stdout.isTTY)) === 'pretty';
if (pretty) {
  const write = process.stdout.write.bind(process.stdout) as (chunk: string) => boolean;
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (typeof chunk === 'string' && chunk.startsWith('{')) {
      const lines = chunk.split('\n');
      chunk = lines.map((line) => prettyLogLine(line) ?? line).join('\n');
    }
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
}

const secretGiven = Boolean(env.OPENAI_WEBHOOK_SECRET);
const webhookSecret = env.OPENAI_WEBHOOK_SECRET || generateWebhookSecret();
// The handlers' metrics, as the EMF lines CloudWatch would receive, one per line.
const metricsFile = createWriteStream(path.join(stateDir, 'metrics.jsonl'), { flags: 'a' });
process.stderr.write(
  `Starting DynamoDB Local, the SQS emulator${env.OPENAI_BASE_URL ? '' : ', the OpenAI and Realtime simulators'}${calls ? ', a sideband worker' : ''}${calls && app.calls && app.tools.length > 0 ? ', the tools' : ''}…\n`,
);
// The app's tools, behind the Lambda Invoke protocol in a process of their own; the worker's
// Lambda client is pointed at it (AWS_ENDPOINT_URL_LAMBDA), as it would call Lambda.
if (calls && app.calls && Object.keys(app.functions).length > 0)
  tools = await startLambdaProcess(app.functions, {
    cwd: ROOT,
    onLine: (line) => process.stdout.write(`${line}\n`),
  });
pipeline = await LocalPipeline.start({
  metrics: emfPublisher({
    stack: 'local',
    clock: Date.now,
    write: (line) => metricsFile.write(`${line}\n`),
  }),
  port,
  dbPath: path.join(stateDir, 'dynamodb'),
  webhookSecret,
  prefix: 'local',
  // A secret `owh webhooks register|rotate --local` stores is used at once (issue 15).
  decorateIngress: adoptNewSecretsAtOnce('local/webhook-secret'),
  ...(env.OPENAI_BASE_URL ? { openAiBaseUrl: env.OPENAI_BASE_URL } : {}),
  ...(env.OPENAI_API_KEY ? { openAiApiKey: env.OPENAI_API_KEY } : {}),
  logLevel: env.LOG_LEVEL || 'info',
  userHandlers: app.userHandlers,
  // Phone calls: the incoming-call handler plus one sideband worker.
  ...(calls
    ? {
        calls,
        workers: 1,
        workerEnv: {
          ECHO_WORKER_LOGS: '1',
          LOG_LEVEL: env.LOG_LEVEL || 'info',
          ...(tools ? { AWS_ENDPOINT_URL_LAMBDA: tools.endpoint } : {}),
        },
      }
    : {}),
});
// Call control (issue 16): its API on loopback, with no auth, for `owh calls say|…` and
// `npm run send -- call --scenario control`. CONTROL_PORT pins its port.
const callControl = calls
  ? await startCallControl(pipeline.env, { port: Number(env.CONTROL_PORT || 0) })
  : undefined;
// Browser voice sessions (issue 14): the WebRTC session endpoint and demo page, on loopback.
const session = calls ? await localSessionEndpoint(pipeline, env) : undefined;
// `npm run send` and the operator CLI read this to find the pipeline; `pid` tells them it is live.
writeState(stateFile, {
  webhookUrl: pipeline.url,
  webhookSecret,
  tableName: pipeline.tableName,
  dynamoEndpoint: pipeline.dynamoEndpoint,
  sqsEndpoint: pipeline.sqsEndpoint,
  openAiBaseUrl: pipeline.openAiBaseUrl,
  queues: {
    ...pipeline.queues,
    ...(pipeline.signalQueue ? { signals: pipeline.signalQueue } : {}),
  },
  // Phone calls are on (with the simulator, or with OPENAI_BASE_URL and its key); `simulator`
  // says whether `npm run send -- call` can play one here.
  calls: Boolean(calls),
  simulator: Boolean(pipeline.simulator),
  ...(callControl ? { callControlUrl: callControl.url } : {}),
  // `owh webhooks register --local`: the Secrets Manager stand-in and the key (issue 15).
  ...webhookEndpointState(pipeline),
  ...session?.state,
  pid: process.pid,
});

const line = '─'.repeat(72);
const dirNote = env.OWH_LOCAL_DIR
  ? `   (OWH_LOCAL_DIR=${env.OWH_LOCAL_DIR} for send and owh too)`
  : '';
process.stderr.write(
  [
    line,
    ' OpenAI webhooks: local mode',
    line,
    ` Webhook URL     ${pipeline.url}`,
    ` Webhook secret  ${webhookSecret}${secretGiven ? '' : '   (generated; set OPENAI_WEBHOOK_SECRET to pin it)'}`,
    ` OpenAI API      ${pipeline.openAiBaseUrl}${pipeline.simulator ? '   (simulator)' : ''}`,
    ` DynamoDB Local  ${pipeline.dynamoEndpoint}   table ${pipeline.tableName}`,
    ` SQS emulator    ${pipeline.sqsEndpoint}`,
    ` State           ${stateFile}${dirNote}`,
    ` Metrics (EMF)   ${path.join(stateDir, 'metrics.jsonl')}`,
    line,
    ` App config      ${app.configFile}${env.OWH_APP_CONFIG ? '   (OWH_APP_CONFIG)' : ''}`,
    ` Handlers        ${app.handlers.length > 0 ? app.handlers.join(', ') : 'none'}`,
    ` Phone calls     ${callsNote}`,
    ...(calls
      ? [
          ` Tools           ${
            app.calls
              ? app.tools.length > 0
                ? `${app.tools.join(', ')}${tools ? `   (local Lambda ${tools.endpoint})` : ''}`
                : 'none'
              : 'lookup_order (the demo tool)'
          }`,
        ]
      : []),
    ...(session?.banner ?? []),
    ...(callControl
      ? [` Call control    ${callControl.url}/calls/{call_id}/commands   (no auth, loopback)`]
      : []),
    ...app.notRunLocally.map((what) => ` Not run here    ${what}`),
    line,
    ' Try, in another terminal:',
    '   npm run send -- batch.completed',
    '   npm run send -- all',
    '   npx owh events list --local      (the operator CLI; also: state, calls, replay, redrive)',
    ...(pipeline.realtime
      ? ['   npm run send -- call      (a simulated phone call, with its timeline)']
      : []),
    ...(pipeline.realtime && callControl
      ? ['   npx owh calls say <call_id> "Your refund went through." --local   (live call control)']
      : []),
    line,
    '',
  ].join('\n'),
);
