import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { writeState } from '../../local/local-state';
import {
  doomedMessagePoller,
  emulatorSqs,
  errLines,
  npmRunSend,
  pipelineState,
  readJson,
  type Spawned,
  spawned,
  npmStart as startLocalMode,
  until,
} from '../support/local-mode';
import { eventually, startPipeline } from '../support/webhooks';

/** Local mode's own behaviour: what `npm start` and its stand-ins do around the pipeline. */

const NOT_RUNNING = 'local mode is not running: start it with `npm start`';

/** What the tests start, for afterEach to stop (with their children) if a test leaves it running. */
const started: ChildProcess[] = [];
/** A command as a person runs it, with its output kept. */
const run = (args: readonly string[], env: NodeJS.ProcessEnv = {}, command?: string) =>
  spawned(args, env, { ...(command ? { command } : {}), started });
const npmStart = (dir: string, env: NodeJS.ProcessEnv = {}) =>
  startLocalMode(dir, env, { started });
const send = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  npmRunSend(args, env, { started });

/** Every live process under `pid`, from /proc (Linux). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z') parents.set(Number(name), Number(fields[1]));
    } catch {
      // Exited while we looked.
    }
  }
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of parents)
      if (ppid === parent) {
        found.push(child);
        walk(child);
      }
  };
  walk(pid);
  return found;
}

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

async function listen(port = 0): Promise<Server> {
  const server = createServer((_req, res) => res.end());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}
const portOf = (server: Server) => {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
};

afterEach(() => {
  // Whatever a failed test left running: the processes it started and theirs.
  for (const child of started.splice(0)) {
    if (child.pid === undefined) continue;
    for (const pid of [...descendants(child.pid), child.pid])
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
  }
});

const tempDir = () => mkdtempSync(path.join(tmpdir(), 'owh-local-'));

describe('npm start', () => {
  it('refuses a second instance on one folder; a SIGKILL takes every child with it; a stale lock and state are taken over', async () => {
    const dir = tempDir();
    const first = npmStart(dir);
    const state = await until(() => readJson(path.join(dir, 'state.json')), 45_000, 'state.json');
    expect(state.pid).toBe(first.child.pid);
    const children = descendants(first.child.pid ?? 0);
    // DynamoDB Local (java, under its watchdog), the SQS emulator and a sideband worker at least.
    expect(children.length).toBeGreaterThanOrEqual(3);

    const second = npmStart(dir);
    expect(await second.exited).toBe(1);
    expect(errLines(second.err())).toEqual([
      `npm start: local mode is already running in ${dir} (pid ${first.child.pid}): stop it first, or give this one a folder and port of its own: OWH_LOCAL_DIR=/tmp/other PORT=8788 npm start`,
    ]);
    expect(readJson(path.join(dir, 'state.json'))).toEqual(state);

    first.child.kill('SIGKILL');
    await first.exited;
    await until(
      () => (children.some(alive) ? undefined : true),
      10_000,
      `the children of a killed npm start (${children.filter(alive).join(', ')}) to exit`,
    );

    // What it left says it is not running, to send and to the CLI alike.
    const sent = send(['batch.completed'], { OWH_LOCAL_DIR: dir });
    expect(await sent.exited).toBe(1);
    expect(errLines(sent.err())).toEqual([
      `npm run send: ${NOT_RUNNING} (${path.join(dir, 'state.json')} was left by process ${first.child.pid}, which has exited).`,
    ]);
    const owh = run(['bin/owh.mjs', 'events', 'list', '--local'], { OWH_LOCAL_DIR: dir });
    expect(await owh.exited).toBe(1);
    expect(owh.err()).toBe(
      `owh: ${NOT_RUNNING} (${path.join(dir, 'state.json')} was left by process ${first.child.pid}, which has exited).\n`,
    );

    // The stale lock does not stop the next start; a clean stop removes lock and state.
    const third = npmStart(dir);
    await until(
      () => (readJson(path.join(dir, 'state.json'))?.pid === third.child.pid ? true : undefined),
      45_000,
      'the next start',
    );
    const thirdChildren = descendants(third.child.pid ?? 0);
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(existsSync(path.join(dir, 'state.json'))).toBe(false);
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
    await until(() => (thirdChildren.some(alive) ? undefined : true), 10_000, 'its children');
  }, 150_000);

  it('stops on SIGTERM even when its terminal is gone (stdout and stderr closed)', async () => {
    const dir = tempDir();
    const main = npmStart(dir, { LOG_LEVEL: 'info' });
    await until(() => readJson(path.join(dir, 'state.json')), 45_000, 'state.json');
    const children = descendants(main.child.pid ?? 0);
    // The reading ends close: every later write of npm start fails with EPIPE.
    main.child.stdout?.destroy();
    main.child.stderr?.destroy();
    main.child.kill('SIGTERM');
    const code = await Promise.race([
      main.exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 15_000)),
    ]);
    expect(code).toBe(0);
    await until(() => (children.some(alive) ? undefined : true), 10_000, 'its children');
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
  }, 90_000);

  it('names a port in use and the fix, in one line, before starting anything', async () => {
    const server = await listen();
    const port = portOf(server);
    try {
      const main = npmStart(tempDir(), { PORT: String(port) });
      expect(await main.exited).toBe(1);
      expect(errLines(main.err())).toEqual([
        `npm start: port ${port} is in use (another npm start, or another program): stop it, or choose another port: PORT=${port + 1} npm start`,
      ]);
    } finally {
      server.close();
    }
  });

  it('on a crash while starting (the port taken meanwhile), says so in one line and leaves no child behind', async () => {
    const free = await listen();
    const port = portOf(free);
    await new Promise((resolve) => free.close(resolve));
    const main = npmStart(tempDir(), { PORT: String(port) });
    await until(() => (main.err().includes('Starting') ? true : undefined), 20_000, 'Starting');
    // Someone else takes the port while DynamoDB Local starts.
    const thief = await listen(port);
    const seen = new Set<number>();
    let code: number | null | undefined;
    void main.exited.then((c) => {
      code = c;
    });
    try {
      await until(
        () => {
          for (const pid of descendants(main.child.pid ?? 0)) seen.add(pid);
          return code !== undefined ? true : undefined;
        },
        45_000,
        'npm start to exit',
      );
      expect(code).toBe(1);
      expect(errLines(main.err()).slice(1)).toEqual([
        `npm start: port ${port} is in use (another npm start, or another program): stop it, or choose another port: PORT=${port + 1} npm start`,
      ]);
      expect(seen.size).toBeGreaterThanOrEqual(2);
      await until(
        () => ([...seen].some(alive) ? undefined : true),
        10_000,
        `the children of a crashed npm start (${[...seen].filter(alive).join(', ')}) to exit`,
      );
    } finally {
      thief.close();
    }
  }, 90_000);
});

describe('npm run send', () => {
  it('documents its environment, types and scenarios in --help', async () => {
    const help = run(['run', 'send', '--', '--help'], {}, 'npm');
    expect(await help.exited).toBe(0);
    const text = help.out();
    for (const word of [
      'WEBHOOK_URL',
      'OPENAI_WEBHOOK_SECRET',
      'batch.completed',
      'response.failed',
      '--scenario',
      'barge-in',
      '--raw',
      '--id',
    ])
      expect(text).toContain(word);
  });

  it('refuses an unknown type with a suggestion, unless --raw', async () => {
    const typo = send(['batch.complete']);
    expect(await typo.exited).toBe(2);
    expect(errLines(typo.err())[0]).toBe(
      'npm run send: unknown type "batch.complete": did you mean batch.completed? (npm run send -- --help lists them; --raw sends any type)',
    );

    const received: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        received.push(String((JSON.parse(body) as { type: string }).type));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"received":true}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const raw = send(['custom.thing_happened', '--raw'], {
        WEBHOOK_URL: `http://127.0.0.1:${portOf(server)}/`,
        OPENAI_WEBHOOK_SECRET: 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0',
      });
      expect(await raw.exited, raw.err()).toBe(0);
      expect(received).toEqual(['custom.thing_happened']);
    } finally {
      server.close();
    }
  });

  it('sends events the simulator agrees with: batch.failed and response.failed hydrate as failed', async () => {
    const p = await startPipeline({});
    try {
      const dir = tempDir();
      writeState(path.join(dir, 'state.json'), { ...pipelineState(p), simulator: true });
      const batch = send(['batch.failed', '--id', 'batch_sent_failed'], { OWH_LOCAL_DIR: dir });
      expect(await batch.exited, batch.err()).toBe(0);
      expect(batch.out()).toContain('object: batch batch_sent_failed status=failed');
      expect(batch.out()).toMatch(/details: .*"status":"failed"/);
      // What hydration fetched: a failed batch with its errors, as the API returns one.
      expect(p.simulator?.objects.get('batch:batch_sent_failed')).toMatchObject({
        status: 'failed',
        errors: { object: 'list', data: [{ code: 'invalid_json_line', line: 1 }] },
      });

      const response = send(['response.failed'], { OWH_LOCAL_DIR: dir });
      expect(await response.exited, response.err()).toBe(0);
      expect(response.out()).toMatch(/object: response resp_\S+ status=failed/);
      expect(response.out()).toMatch(/details: .*"error":\{[^}]*"code":"server_error"/);
      expect(response.out()).toMatch(/details: .*"status":"failed"/);
    } finally {
      await p.stop();
    }
  });

  it('names the cause and the URL when it cannot connect', async () => {
    const closed = await listen();
    const url = `http://127.0.0.1:${portOf(closed)}/`;
    await new Promise((resolve) => closed.close(resolve));
    const sent = send(['batch.completed'], {
      WEBHOOK_URL: url,
      OPENAI_WEBHOOK_SECRET: 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0',
    });
    expect(await sent.exited).toBe(1);
    expect(sent.err()).toContain(`could not reach ${url}: ECONNREFUSED`);
    expect(sent.err()).not.toContain('fetch failed');
    expect(sent.err()).not.toMatch(/\n\s+at /);
  });
});

describe('the event source mapping stand-in', () => {
  it('logs and counts an event that its last failed attempt sends to the DLQ', async () => {
    const sqs = emulatorSqs();
    const { queue, poller, log, metrics } = await doomedMessagePoller(sqs, async (event) => ({
      batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })),
    }));
    poller.start();
    try {
      const line = await eventually(
        async () => log.find('event dead-lettered'),
        15_000,
        'the dead-letter line',
      );
      expect(line.level).toBe('error');
      expect(line.fields).toMatchObject({
        eventId: 'evt_doomed',
        type: 'batch.failed',
        attempt: 2,
        maxReceiveCount: 2,
        dlqArn: queue.dlqArn,
      });
      expect(poller.deadLettered).toBe(1);
      expect(metrics).toContainEqual({
        name: 'EventsDeadLettered',
        value: 1,
        dimension: { name: 'Category', value: 'batch' },
      });
      // And the message is where the line says it went.
      const moved = await eventually(
        async () =>
          (
            await sqs.send(
              new ReceiveMessageCommand({
                QueueUrl: queue.dlqUrl,
                WaitTimeSeconds: 1,
                MessageAttributeNames: ['All'],
              }),
            )
          ).Messages?.[0],
        15_000,
        'the message in the DLQ',
      );
      expect(moved.MessageAttributes?.['event-id']?.StringValue).toBe('evt_doomed');
    } finally {
      await poller.stop();
      sqs.destroy();
    }
  });
});

describe('npm start runs the app config', () => {
  /** Starts npm start and waits for its banner; returns the banner's lines. */
  async function banner(main: Spawned): Promise<string[]> {
    await until(
      () => (main.err().includes('Try, in another terminal') ? true : undefined),
      60_000,
      'the banner',
    );
    return main.err().split('\n');
  }

  /** An app config file outside the project, as a user's own would be. */
  function configFile(source: string): string {
    const file = path.join(tempDir(), 'app-config.ts');
    writeFileSync(file, source);
    return file;
  }

  it('names the config file, the handlers and the tools it loaded, and serves the tools', async () => {
    const main = npmStart(tempDir(), { OWH_APP_CONFIG: 'examples/app-config.ts' });
    const lines = await banner(main);
    expect(lines).toContain(' App config      examples/app-config.ts   (OWH_APP_CONFIG)');
    expect(lines.find((l) => l.startsWith(' Handlers'))).toBeDefined();
    expect(lines).toContain(
      " Phone calls     the app's calls config (examples/app-config.ts), against the Realtime simulator",
    );
    const toolsLine = lines.find((l) => l.startsWith(' Tools')) ?? '';
    expect(toolsLine).toMatch(
      /lookup_order ← examples\/tools\/lookup-order.ts, check_warranty ← examples\/tools\/failing-tool.ts {3}\(local Lambda http:\/\/127.0.0.1:\d+\)/,
    );
    // The tools answer the Lambda Invoke protocol at the address the banner gives.
    const endpoint = /\(local Lambda (http:\/\/[^)]+)\)/.exec(toolsLine)?.[1];
    const invoked = await fetch(`${endpoint}/2015-03-31/functions/tool-lookup_order/invocations`, {
      method: 'POST',
      body: JSON.stringify({
        name: 'lookup_order',
        arguments: { order_number: '5678' },
        call: { callId: 'rtc_1', fnCallId: 'call_1', callerVerified: false, sessionKey: 'default' },
      }),
    });
    expect(await invoked.json()).toMatchObject({ order_number: '5678', status: 'processing' });
    // The call-control API (issue 16) is on the banner, and answers there: an unknown call's
    // command is refused with a JSON error.
    const controlLine = lines.find((l) => l.startsWith(' Call control')) ?? '';
    const controlUrl = /(http:\/\/127\.0\.0\.1:\d+)\/calls\/\{call_id\}\/commands/.exec(
      controlLine,
    )?.[1];
    expect(controlUrl, controlLine).toBeDefined();
    const refused = await fetch(`${controlUrl}/calls/rtc_nobody/commands`, {
      method: 'POST',
      body: JSON.stringify({ action: 'cancel' }),
    });
    expect(refused.status).toBe(404);
    expect(await refused.json()).toMatchObject({ error: { code: expect.any(String) } });
    main.child.kill('SIGTERM');
    expect(await main.exited).toBe(0);
  }, 90_000);

  it('with OPENAI_BASE_URL and OPENAI_API_KEY keeps phone calls on, with the demo profile when the app has no calls; without the key, says why they are off', async () => {
    const empty = configFile('export const appConfig = { description: "no calls" };\n');
    const withKeyDir = tempDir();
    const withKey = npmStart(withKeyDir, {
      OWH_APP_CONFIG: empty,
      OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
      OPENAI_API_KEY: 'sk-test',
    });
    const lines = await banner(withKey);
    expect(lines).toContain(
      ' Phone calls     the demo profile (the app config has no calls), against http://127.0.0.1:9/v1',
    );
    expect(lines).toContain(' Tools           lookup_order (the demo tool)');
    expect(lines).toContain(' Handlers        none');
    expect(withKey.err()).toContain('a sideband worker');
    // Calls are on (a webhook endpoint for this machine subscribes to realtime.call.incoming),
    // with no simulator to play one.
    expect(readJson(path.join(withKeyDir, 'state.json'))).toMatchObject({
      calls: true,
      simulator: false,
    });
    withKey.child.kill('SIGTERM');
    expect(await withKey.exited).toBe(0);

    const noKey = npmStart(tempDir(), {
      OWH_APP_CONFIG: empty,
      OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
      OPENAI_API_KEY: '',
    });
    expect(await banner(noKey)).toContain(
      ' Phone calls     off: OPENAI_BASE_URL is set without OPENAI_API_KEY (the sideband worker needs the key)',
    );
    noKey.child.kill('SIGTERM');
    expect(await noKey.exited).toBe(0);
  }, 120_000);

  it('refuses an app config with an unknown prop as synth does, naming it with a suggestion', async () => {
    const typo = configFile(
      'export const appConfig = { alarmEmial: "oncall@example.com", logLevel: "verbose" };\n',
    );
    const main = npmStart(tempDir(), { OWH_APP_CONFIG: typo });
    expect(await main.exited).toBe(1);
    expect(errLines(main.err())).toEqual([
      'npm start: the app config cannot run: Invalid OpenAiWebhooks props:',
      '- Unknown prop "alarmEmial": did you mean "alarmEmail"?',
      '- logLevel must be one of debug, info, warn, error; got "verbose".',
    ]);
  });
});
