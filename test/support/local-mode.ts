import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { inject } from 'vitest';
import type { MetricPoint } from '#core/observability/metrics';
import { type CliIo, runCli } from '../../cli/run';
import { writeState } from '../../local/local-state';
import type { LocalPipeline } from '../../local/pipeline';
import { createQueue } from '../../local/provision';
import { EventSourcePoller, type PollerOptions } from '../../local/stand-ins/event-source-poller';
import { CapturingLogger } from './fakes';

/**
 * Local mode as a person drives it, for the integration tests: `npm start`, `npm run send` and
 * `owh` as processes (or `owh` in-process), waiting on what they print and write.
 */

/** The repository: where `npm start` and `bin/owh.mjs` run from. */
export const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** A process started by `spawned`: its output so far, and its exit code (null: a signal). */
export interface Spawned {
  readonly child: ChildProcess;
  readonly out: () => string;
  readonly err: () => string;
  readonly exited: Promise<number | null>;
}

/**
 * Runs a command (node by default: a script, or `--import tsx` and a TypeScript entry) in the
 * repository, as a person would, with its output kept. `LOG_LEVEL=warn` unless `env` says
 * otherwise. `started` collects the child, for an `afterEach` to stop what a failed test left.
 */
export function spawned(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  options: { readonly command?: string; readonly started?: ChildProcess[] } = {},
): Spawned {
  const child = spawn(options.command ?? process.execPath, [...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  options.started?.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ? null : code)),
  );
  return { child, out: () => out, err: () => err, exited };
}

/** `npm start` (local/main.ts) in `dir` (its OWH_LOCAL_DIR), on a free port unless `env` names one. */
export function npmStart(
  dir: string,
  env: NodeJS.ProcessEnv = {},
  options: { readonly started?: ChildProcess[] } = {},
): Spawned {
  return spawned(
    ['--import', 'tsx', 'local/main.ts'],
    { OWH_LOCAL_DIR: dir, PORT: '0', ...env },
    options,
  );
}

/** `npm run send -- …` (local/send.ts). */
export function npmRunSend(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  options: { readonly started?: ChildProcess[] } = {},
): Spawned {
  return spawned(['--import', 'tsx', 'local/send.ts', ...args], env, options);
}

/**
 * Waits until `probe` gives a value (checked every 100 ms), and returns it; throws after
 * `timeoutMs`, naming `what` (a function: read when it times out, e.g. to add a process's output).
 */
export async function until<T>(
  probe: () => T | undefined,
  timeoutMs: number,
  what: string | (() => string),
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}.`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A JSON file's object, or undefined while it is missing or half-written. */
export function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The lines a person reads on stderr, without npm's own warnings. */
export const errLines = (text: string) =>
  text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('npm warn'));

/** What one in-process `owh` run printed, and its exit code. */
export interface OwhRun {
  code: number;
  out: string;
  err: string;
}

/**
 * `owh` in-process against a state file like the one `npm start` writes (local/main.ts): every
 * run gets `--local --state <file>`, unless it names `--stack`. Never interactive.
 */
export function owhAgainst(stateFile: string, env: NodeJS.ProcessEnv = {}) {
  return async (...argv: string[]): Promise<OwhRun> => {
    let out = '';
    let err = '';
    const io: CliIo = {
      out: (text) => {
        out += text;
      },
      err: (text) => {
        err += text;
      },
      interactive: false,
      progressInPlace: false,
      confirm: async () => false,
      env,
      now: Date.now,
    };
    const code = await runCli(
      argv.includes('--stack') ? argv : [...argv, '--local', '--state', stateFile],
      io,
    );
    return { code, out, err };
  };
}

/** A client of the shared SQS emulator (test/support/global-setup.ts). */
export function emulatorSqs(): SQSClient {
  return new SQSClient({
    endpoint: inject('sqsEndpoint'),
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

/**
 * A new queue whose messages go to its DLQ on their second receive (visibility 1 s), holding
 * one message `evt_doomed` (batch.failed, category batch), for an event source poller to fail.
 */
async function queueWithDoomedMessage(sqs: SQSClient) {
  const name = `dlq${Math.random().toString(36).slice(2, 10)}`;
  const queue = await createQueue(sqs, name, { maxReceiveCount: 2, visibilityTimeoutSeconds: 1 });
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queue.queueUrl,
      MessageBody: '{}',
      MessageAttributes: {
        'event-id': { DataType: 'String', StringValue: 'evt_doomed' },
        'event-type': { DataType: 'String', StringValue: 'batch.failed' },
        category: { DataType: 'String', StringValue: 'batch' },
      },
    }),
  );
  return queue;
}

/**
 * An event source poller (not started) on a new queue that holds one doomed message (above),
 * with `handler`; its log lines and metrics are captured.
 */
export async function doomedMessagePoller(
  sqs: SQSClient,
  handler: PollerOptions['handler'],
  options: Pick<PollerOptions, 'handlerReportsDeadLetters' | 'onError'> = {},
) {
  const queue = await queueWithDoomedMessage(sqs);
  const log = new CapturingLogger();
  const metrics: MetricPoint[] = [];
  const poller = new EventSourcePoller({
    client: sqs,
    queueUrl: queue.queueUrl,
    queueArn: queue.queueArn,
    handler,
    log,
    metrics: (points) => metrics.push(...points),
    ...options,
  });
  return { queue, poller, log, metrics };
}

/**
 * What `npm start` writes to state.json (local/main.ts) for a pipeline, naming this test process
 * as its owner (so it reads as running); a test adds what else it needs.
 */
export function pipelineState(p: LocalPipeline): Record<string, unknown> {
  return {
    webhookUrl: p.url,
    webhookSecret: p.webhookSecret,
    tableName: p.tableName,
    dynamoEndpoint: p.dynamoEndpoint,
    sqsEndpoint: p.sqsEndpoint,
    openAiBaseUrl: p.openAiBaseUrl,
    queues: { ...p.queues, ...(p.signalQueue ? { signals: p.signalQueue } : {}) },
    pid: process.pid,
  };
}

/** A state.json for `pipelineState(p)` (plus `extra`) in a new folder; returns its path. */
export function stateFileFor(p: LocalPipeline, extra: Record<string, unknown> = {}): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'owh-')), 'state.json');
  writeState(file, { ...pipelineState(p), ...extra });
  return file;
}
