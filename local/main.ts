import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { emfPublisher } from '#core/observability/metrics';
import { localCallsConfig } from './calls';
import { generateWebhookSecret, LocalPipeline } from './pipeline';

/**
 * `npm start`: the whole pipeline on this machine. DynamoDB Local keeps its data in .local/;
 * the SQS emulator and the OpenAI simulator are in memory.
 */
const root = path.resolve(import.meta.dirname, '..');
const stateDir = path.join(root, '.local');
mkdirSync(path.join(stateDir, 'dynamodb'), { recursive: true });

const env = process.env;
const secretGiven = Boolean(env.OPENAI_WEBHOOK_SECRET);
const webhookSecret = env.OPENAI_WEBHOOK_SECRET || generateWebhookSecret();
// The handlers' metrics, as the EMF lines CloudWatch would receive, one per line.
const metricsFile = createWriteStream(path.join(stateDir, 'metrics.jsonl'), { flags: 'a' });
const pipeline = await LocalPipeline.start({
  metrics: emfPublisher({
    stack: 'local',
    clock: Date.now,
    write: (line) => metricsFile.write(`${line}\n`),
  }),
  port: Number(env.PORT || 8787),
  dbPath: path.join(stateDir, 'dynamodb'),
  webhookSecret,
  prefix: 'local',
  ...(env.OPENAI_BASE_URL ? { openAiBaseUrl: env.OPENAI_BASE_URL } : {}),
  ...(env.OPENAI_API_KEY ? { openAiApiKey: env.OPENAI_API_KEY } : {}),
  logLevel: env.LOG_LEVEL || 'info',
  // Phone calls run against the simulator: the incoming-call handler plus one sideband worker.
  ...(env.OPENAI_BASE_URL
    ? {}
    : {
        calls: localCallsConfig(),
        workers: 1,
        workerEnv: { ECHO_WORKER_LOGS: '1', LOG_LEVEL: env.LOG_LEVEL || 'info' },
      }),
});

// `npm run send` and the operator CLI read this to find the pipeline.
writeFileSync(
  path.join(stateDir, 'state.json'),
  `${JSON.stringify(
    {
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
      calls: Boolean(pipeline.realtime),
      pid: process.pid,
    },
    null,
    2,
  )}\n`,
);

const line = '─'.repeat(72);
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
    ' Metrics (EMF)   .local/metrics.jsonl',
    line,
    ' Try, in another terminal:',
    '   npm run send -- batch.completed',
    '   npm run send -- all',
    '   npm run owh -- events list --local      (the operator CLI; also: state, calls, replay, redrive)',
    ...(pipeline.realtime
      ? ['   npm run send -- call      (a simulated phone call, with its timeline)']
      : []),
    line,
    '',
  ].join('\n'),
);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('\nStopping…\n');
  await pipeline.stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
