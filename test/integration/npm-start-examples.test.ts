import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV } from '#core/env';
import { writeState } from '../../local/local-state';
import { USER_HANDLER_ENV } from '../../local/pipeline';
import { errLines, npmRunSend, npmStart, until } from '../support/local-mode';
import { startPipeline } from '../support/webhooks';

/**
 * Local mode as `npm start` runs the examples (examples/app-config.ts): the batch example handler
 * reaches the OpenAI simulator's Files API with the environment its Lambda would have; and
 * `npm run send -- call` needs the simulator, not only phone calls being on.
 */

const started: ChildProcess[] = [];

afterEach(() => {
  // npm start stops its children when it goes (SIGTERM); a failed test may leave it running.
  for (const child of started.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
});

const tempDir = () => mkdtempSync(path.join(tmpdir(), 'owh-examples-'));

describe('npm start with the examples app config', () => {
  it('runs the batch example to a summary with its files’ metadata, from the simulator’s Files API', async () => {
    const dir = tempDir();
    const main = npmStart(
      dir,
      {
        OWH_APP_CONFIG: 'examples/app-config.ts',
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
        OPENAI_BASE_URL: '',
        OPENAI_API_KEY: '',
      },
      { started },
    );
    await until(
      () => (main.err().includes('Try, in another terminal') ? true : undefined),
      90_000,
      'the banner',
    );
    expect(main.err()).toContain(
      ' Handlers        batch ← examples/handlers/batch-completed.ts, response ← examples/handlers/response-completed.ts',
    );

    const sent = npmRunSend(
      ['batch.completed', '--id', 'batch_npmstart01'],
      { OWH_LOCAL_DIR: dir },
      { started },
    );
    expect(await sent.exited, sent.err()).toBe(0);
    expect(sent.out()).toMatch(/stored: category=batch status=\w+/);

    const summary = await until(
      () =>
        main
          .out()
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => {
            try {
              return JSON.parse(line) as Record<string, unknown>;
            } catch {
              return undefined;
            }
          })
          .find((line) => line?.message === 'batch summary' && line.batchId === 'batch_npmstart01'),
      30_000,
      'the batch summary',
    );
    // The sample batch (local/samples.ts): 98 of 100 requests completed, 2 failed; its output
    // and error files are the ones it names, with the metadata the simulator derives for them.
    expect(summary).toMatchObject({
      service: 'batch-completed',
      status: 'completed',
      requestCounts: { total: 100, completed: 98, failed: 2 },
      outputFile: {
        id: 'file-out-tart01',
        filename: 'batch_npmstart01_output.jsonl',
        purpose: 'batch_output',
        bytes: 98 * 1024,
      },
      errorFile: {
        id: 'file-err-tart01',
        filename: 'batch_npmstart01_error.jsonl',
        purpose: 'batch_output',
        bytes: 2 * 256,
      },
    });
    const output = summary.outputFile as { createdAt: number; expiresAt: number };
    expect(output.expiresAt - output.createdAt).toBe(30 * 86_400);

    main.child.kill('SIGTERM');
    expect(await main.exited).toBe(0);
  }, 150_000);
});

describe('in-process user handlers in local mode', () => {
  it('see the environment their consumer Lambda has, and it is put back when the pipeline stops', async () => {
    const before = Object.fromEntries(USER_HANDLER_ENV.map((name) => [name, process.env[name]]));
    process.env[ENV.openAiKeySecretId] = 'left-by-someone-else';
    const p = await startPipeline({ userHandlers: { batch: async () => undefined } });
    try {
      expect(Object.fromEntries(USER_HANDLER_ENV.map((name) => [name, process.env[name]]))).toEqual(
        {
          OPENAI_BASE_URL: p.openAiBaseUrl,
          OPENAI_API_KEY_SECRET_ID: p.env[ENV.openAiKeySecretId],
          TABLE_NAME: p.tableName,
          PAYLOAD_BUCKET: p.payloadBucket,
          STACK_NAME: 'local',
        },
      );
      // Per-category variables are not shared: one process runs every category.
      expect(process.env[ENV.category]).toBeUndefined();
    } finally {
      await p.stop();
    }
    expect(process.env[ENV.openAiKeySecretId]).toBe('left-by-someone-else');
    for (const name of USER_HANDLER_ENV.filter((n) => n !== ENV.openAiKeySecretId))
      expect(process.env[name]).toBe(before[name]);
    if (before[ENV.openAiKeySecretId] === undefined) delete process.env[ENV.openAiKeySecretId];
    else process.env[ENV.openAiKeySecretId] = before[ENV.openAiKeySecretId];
  });
});

describe('npm run send -- call', () => {
  function stateIn(dir: string, state: Record<string, unknown>) {
    writeState(path.join(dir, 'state.json'), {
      webhookUrl: 'http://127.0.0.1:9/',
      webhookSecret: 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0',
      tableName: 'local-events',
      dynamoEndpoint: 'http://127.0.0.1:9',
      sqsEndpoint: 'http://127.0.0.1:9',
      openAiBaseUrl: 'https://api.openai.com/v1',
      queues: {},
      // "Running": this test process.
      pid: process.pid,
      ...state,
    });
  }

  it('needs the simulator: with OPENAI_BASE_URL phone calls are on, but a scenario cannot be played', async () => {
    const dir = tempDir();
    stateIn(dir, { calls: true, simulator: false });
    const call = npmRunSend(['call'], { OWH_LOCAL_DIR: dir }, { started });
    expect(await call.exited).toBe(1);
    expect(errLines(call.err())).toEqual([
      'npm run send: call scenarios need the OpenAI simulator, and this npm start talks to https://api.openai.com/v1 (OPENAI_BASE_URL): its phone calls are real ones, so call your number. To play scenarios, run npm start without OPENAI_BASE_URL.',
    ]);
    expect(call.out()).toBe('');
  });

  it('says the same, shorter, when phone calls are off too', async () => {
    const dir = tempDir();
    stateIn(dir, { calls: false, simulator: false });
    const call = npmRunSend(['call', '--scenario', 'happy'], { OWH_LOCAL_DIR: dir }, { started });
    expect(await call.exited).toBe(1);
    expect(errLines(call.err())).toEqual([
      'npm run send: call scenarios need the OpenAI simulator: run npm start without OPENAI_BASE_URL.',
    ]);
  });
});
