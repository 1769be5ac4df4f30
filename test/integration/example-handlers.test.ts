import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type OpenAiWebhooksStackProps, UserHandler } from '../../lib/index';
import { localCallsConfig } from '../../local/calls';
import { loadLocalApp } from '../../local/local-app';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent, sampleObject } from '../../local/samples';
import { eventually, post, signedDelivery, startPipeline } from '../support/webhooks';

/**
 * Issue 13 §2: the example handlers, loaded as the app config names them
 * (`UserHandler.fromEntry(file)`), run end to end in local mode: a signed webhook through the
 * local function URL, the category queue, the consumer (hydration included), then the handler,
 * which for `batch.completed` calls the OpenAI Files API through the configured base URL. The
 * handlers read that URL and the key's secret id from `process.env`, as in their Lambda: local
 * mode sets them (local/pipeline.ts), and the simulator has the files its batches name
 * (local/stand-ins/files-route.ts), so this test adds neither.
 *
 * Also issue 13 §3 "every log line has a time": the sideband worker's lines, its lifecycle
 * "ready" line included.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');

/** The examples as an app config names them; loaded by local mode's own loader (local/local-app.ts). */
const props: OpenAiWebhooksStackProps = {
  categories: {
    batch: { userHandler: UserHandler.fromEntry('examples/handlers/batch-completed.ts') },
    response: { userHandler: UserHandler.fromEntry('examples/handlers/response-completed.ts') },
  },
};

/** The handlers' log lines (JSON: LOG_FORMAT is set before they load), parsed. */
const lines: Record<string, unknown>[] = [];
const logged = (message: string, eventId: string) =>
  eventually(
    async () => lines.find((l) => l.message === message && l.eventId === eventId),
    20_000,
    `"${message}" for ${eventId}`,
  );

describe('example handlers in local mode', () => {
  let p: LocalPipeline;
  const savedFormat = process.env.LOG_FORMAT;

  beforeAll(async () => {
    process.env.LOG_FORMAT = 'json';
    const write = process.stdout.write.bind(process.stdout);
    vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
      let captured = false;
      for (const line of String(chunk).split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
          captured = true;
        } catch {}
      }
      // Log lines are kept for the assertions, not echoed into the test report.
      return captured || (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write);

    const app = await loadLocalApp({ file: 'example-handlers', props }, ROOT);
    expect(app.handlers).toEqual([
      'batch ← examples/handlers/batch-completed.ts',
      'response ← examples/handlers/response-completed.ts',
    ]);
    p = await startPipeline({
      userHandlers: app.userHandlers,
      calls: localCallsConfig(),
      workers: 1,
    });
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await p?.stop();
    if (savedFormat === undefined) delete process.env.LOG_FORMAT;
    else process.env.LOG_FORMAT = savedFormat;
  });

  async function send(type: string, id: string) {
    const object = sampleObject(type, id);
    if (object) p.simulator?.setObject(object.kind, id, object.object);
    const event = sampleEvent(type, { objectId: id });
    expect(await post(p.url, signedDelivery(p.webhookSecret, event))).toMatchObject({
      status: 200,
    });
    return event;
  }

  it('batch.completed: fetches the output and error files and records a summary', async () => {
    const id = 'batch_example01';
    // A file put in the simulator as is; the error file is the one the batch names, as derived.
    p.simulator?.files.put({
      id: 'file-out-mple01',
      bytes: 52_400,
      filename: 'file-out-mple01.jsonl',
      purpose: 'batch_output',
    });
    const event = await send('batch.completed', id);

    const summary = await logged('batch summary', event.id);
    expect(summary).toMatchObject({
      service: 'batch-completed',
      batchId: id,
      status: 'completed',
      requestCounts: { total: 100, completed: 98, failed: 2 },
      outputFile: {
        id: 'file-out-mple01',
        filename: 'file-out-mple01.jsonl',
        bytes: 52_400,
        purpose: 'batch_output',
      },
      errorFile: {
        id: 'file-err-mple01',
        filename: 'batch_example01_error.jsonl',
        purpose: 'batch_output',
        // Two failed requests, one JSONL line each (files-route.ts).
        bytes: 512,
      },
    });
    expect(typeof summary.time).toBe('string');
    // Through the configured base URL, with the key from the (local) Secrets Manager.
    const fetched = p.simulator?.requestsTo('/v1/files/') ?? [];
    expect(fetched.map((r) => r.path)).toEqual(
      expect.arrayContaining(['/v1/files/file-out-mple01', '/v1/files/file-err-mple01']),
    );
    expect(fetched[0]?.authorization).toBe(`Bearer ${p.simulator?.apiKey}`);
    const stored = await eventually(async () => {
      const e = await p.store.getEvent(event.id);
      return e?.status === 'processed' ? e : undefined;
    });
    expect(stored.status).toBe('processed');
  });

  it('batch.completed: a file that is gone is recorded as such, not retried', async () => {
    const id = 'batch_example02';
    // Deleted (DELETE /v1/files/{id}): GET answers 404 from then on.
    p.simulator?.files.delete('file-err-mple02');
    const event = await send('batch.completed', id);
    const summary = await logged('batch summary', event.id);
    expect(summary).toMatchObject({
      outputFile: { id: 'file-out-mple02', bytes: 98 * 1024 },
      errorFile: { id: 'file-err-mple02', error: 'http_404' },
    });
    const stored = await eventually(async () => {
      const e = await p.store.getEvent(event.id);
      return e?.status === 'processed' ? e : undefined;
    });
    expect(stored.attempts).toBe(1);
  });

  it('batch.completed: a Files API outage fails the message, and a redelivery records it', async () => {
    const id = 'batch_example03';
    // More 503s than the client's three attempts: the first delivery throws.
    p.simulator?.failNext('/v1/files/file-out-mple03', 503, 3);
    const event = await send('batch.completed', id);
    const summary = await logged('batch summary', event.id);
    expect(summary).toMatchObject({ outputFile: { id: 'file-out-mple03', bytes: 98 * 1024 } });
    const stored = await eventually(async () => {
      const e = await p.store.getEvent(event.id);
      return e?.status === 'processed' ? e : undefined;
    });
    expect(stored.attempts).toBeGreaterThanOrEqual(2);
  });

  it('batch.failed reaches the batch handler, which leaves it alone', async () => {
    const event = await send('batch.failed', 'batch_example04');
    await eventually(async () => {
      const e = await p.store.getEvent(event.id);
      return e?.status === 'processed' ? e : undefined;
    });
    expect(lines.some((l) => l.eventId === event.id && l.message === 'batch summary')).toBe(false);
  });

  it('response.completed: records the hydrated usage', async () => {
    const event = await send('response.completed', 'resp_example01');
    const summary = await logged('response summary', event.id);
    expect(summary).toMatchObject({
      service: 'response-completed',
      responseId: 'resp_example01',
      status: 'completed',
    });
    const object = sampleObject('response.completed', 'resp_example01')?.object;
    const usage = object?.usage as Record<string, number>;
    expect(summary).toMatchObject({
      inputTokens: usage.input_tokens,
      outputTokens: usage.output_tokens,
      totalTokens: usage.total_tokens,
    });
  });

  it("gives every sideband worker log line a time, the 'ready' line included", () => {
    const worker = p.workers[0];
    expect(worker).toBeDefined();
    const logLines = (worker?.logs ?? [])
      .filter((l) => l.startsWith('{') && !l.includes('"_aws"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => typeof l.level === 'string');
    expect(logLines.some((l) => l.message === 'sideband worker ready')).toBe(true);
    for (const line of logLines) expect(Number.isNaN(Date.parse(String(line.time)))).toBe(false);
  });
});
