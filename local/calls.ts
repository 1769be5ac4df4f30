import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CALL_DEFAULTS, type CallsConfig } from '#core/calls/calls-config';
import { startNodeChild } from './node-child';

const ROOT = path.resolve(import.meta.dirname, '..');

/** The calls config local mode runs with: one demo tool (a local "Lambda") and two transfer targets. */
export function localCallsConfig(overrides: Partial<CallsConfig> = {}): CallsConfig {
  return {
    policy: {
      callers: { deny: ['+1900*'] },
      maxConcurrentCalls: CALL_DEFAULTS.maxConcurrentCalls,
      maxRingAgeSeconds: CALL_DEFAULTS.maxRingAgeSeconds,
      rejectStatus: CALL_DEFAULTS.rejectStatus,
      sessions: {
        default: {
          model: 'gpt-realtime-2.1',
          instructions: 'You are the phone assistant of Example Co. Be brief and friendly.',
          voice: 'marin',
          greeting: 'Thanks for calling Example Co. How can I help?',
          tools: ['lookup_order'],
        },
      },
      ...overrides.policy,
    },
    tools: [
      {
        name: 'lookup_order',
        description: 'Look up an order by its number.',
        parameters: {
          type: 'object',
          properties: { order_number: { type: 'string' } },
          required: ['order_number'],
        },
        functionName: 'lookup-order',
        timeoutMs: 2000,
      },
    ],
    transferTargets: { support: 'sip:support@example.com', broken: 'sip:fail@example.com' },
    transferConfirmMs: CALL_DEFAULTS.transferConfirmMs,
    wrapUpAfterMs: CALL_DEFAULTS.wrapUpAfterMs,
    wrapUpGraceMs: CALL_DEFAULTS.wrapUpGraceMs,
    maxCallsPerTask: CALL_DEFAULTS.maxCallsPerTask,
    redactTranscripts: false,
    recordTtlSeconds: CALL_DEFAULTS.recordTtlSeconds,
    ...overrides,
  };
}

/** The demo tool behind `lookup_order`. */
export async function lookupOrder(payload: unknown): Promise<unknown> {
  const args = (payload as { arguments?: { order_number?: string } }).arguments ?? {};
  return { order_number: args.order_number, status: 'shipped', eta: 'tomorrow' };
}

export interface WorkerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly healthUrl: string;
  readonly logs: string[];
  /** SIGTERM, and wait for the hand-off to finish. */
  stop(): Promise<number | null>;
  /** SIGKILL: dies without handing anything off. */
  kill(): Promise<void>;
}

/** Runs the sideband worker (the container's entry) as a child process. */
export async function startWorkerProcess(
  id: string,
  env: NodeJS.ProcessEnv,
): Promise<WorkerProcess> {
  const logs: string[] = [];
  const worker = await startNodeChild(path.join(ROOT, 'containers/sideband/src/main.ts'), {
    cwd: ROOT,
    env: { ...process.env, ...env, WORKER_ID: id, HEALTH_PORT: '0' },
    stderr: 'pipe',
    onLine: (line) => {
      logs.push(line);
      // EMF metric lines are kept for tests, not echoed: they are for CloudWatch, not people.
      if (env.ECHO_WORKER_LOGS && !line.includes('"_aws"')) process.stdout.write(`${line}\n`);
    },
    onStderr: (chunk) => logs.push(chunk),
    ready: (line) =>
      line.includes('"sideband worker ready"')
        ? Number((JSON.parse(line) as { healthPort: number }).healthPort)
        : undefined,
    exitedEarly: (code) =>
      new Error(`worker ${id} exited with ${code}: ${logs.slice(-5).join('\n')}`),
  });
  return {
    id,
    child: worker.child,
    healthUrl: `http://127.0.0.1:${worker.ready}/healthz`,
    logs,
    stop: () => worker.stop(),
    async kill() {
      await worker.stop('SIGKILL');
    },
  };
}

/** Runs local/ingress-process.ts as a child process; resolves once it listens. */
export async function startIngressProcess(
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; stop(): Promise<void> }> {
  const ingress = await startNodeChild(path.join(ROOT, 'local/ingress-process.ts'), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    ready: (line) =>
      line.startsWith('{"url"') ? (JSON.parse(line) as { url: string }).url : undefined,
    exitedEarly: (code) => new Error(`ingress process exited with ${code}`),
  });
  return {
    url: ingress.ready,
    async stop() {
      await ingress.stop();
    },
  };
}

export function realtimeWorkerEnv(
  pipelineEnv: NodeJS.ProcessEnv,
  overrides: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return { ...pipelineEnv, ...overrides };
}
