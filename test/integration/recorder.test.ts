import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCallRecorder, type DynamoCallRecorderOptions } from '#adapters/dynamo-call-recorder';
import { DynamoToolCallClaims } from '#adapters/dynamo-tool-call-claims';
import { noMetrics } from '#core/observability/metrics';
import { keys } from '#core/table-schema';
import type { LocalPipeline } from '../../local/pipeline';
import {
  startWriteFaultProxy,
  type WriteFaultProxy,
} from '../../local/stand-ins/dynamodb-write-faults';
import { callParts, callRecord } from '../support/calls';
import { CapturingLogger, MetricsRecorder } from '../support/fakes';
import { eventually, startPipeline } from '../support/webhooks';

/** The call recorder against DynamoDB Local: usage totals are summed and written once per flush. */
describe('call recorder', () => {
  let p: LocalPipeline;
  let documents: DynamoDBDocumentClient;
  beforeAll(async () => {
    p = await startPipeline();
    documents = DynamoDBDocumentClient.from(p.dynamo);
  });
  afterAll(() => p.stop());

  const newCall = async () => {
    const callId = `rtc_recorder_${Math.random().toString(36).slice(2)}`;
    await documents.send(
      new PutCommand({
        TableName: p.tableName,
        Item: { ...keys.call(callId), callId, status: 'active' },
      }),
    );
    return callId;
  };
  const recorder = (client: DynamoDBDocumentClient, callId: string, errors: unknown[] = []) =>
    new DynamoCallRecorder(client, p.tableName, callId, {
      redact: false,
      ttlSeconds: 3600,
      clock: Date.now,
      onError: (error) => errors.push(error),
      metrics: noMetrics,
      log: new CapturingLogger(),
    });

  /**
   * A client of its own (a document client shares the middleware of the client it wraps) that
   * calls `hook` before sending each UpdateItem; a throw fails that update.
   */
  const beforeEachUpdate = (hook: (input: unknown) => void) => {
    const client = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UpdateItemCommand') hook(args.input);
        return next(args);
      },
      { step: 'initialize', name: 'beforeEachUpdate' },
    );
    return client;
  };

  it('writes the usage of several responses as one update with their sum', async () => {
    const callId = await newCall();
    const updates: unknown[] = [];
    const counting = beforeEachUpdate((input) => updates.push(input));
    const r = recorder(counting, callId);
    r.addUsage({ total_tokens: 30, input_tokens: 10, output_tokens: 20 });
    r.addUsage({ total_tokens: 7, input_tokens: 3, output_tokens: 4 });
    r.addUsage({});
    await r.close();
    expect(updates).toHaveLength(1);
    expect(await callRecord(p, callId)).toMatchObject({
      totalTokens: 37,
      inputTokens: 13,
      outputTokens: 24,
      responses: 3,
    });
  });

  it('keeps totals by kind from the token details: text, audio and cached input, text and audio output', async () => {
    const callId = await newCall();
    const r = recorder(documents, callId);
    const usage = {
      total_tokens: 300,
      input_tokens: 200,
      output_tokens: 100,
      input_token_details: {
        text_tokens: 120,
        audio_tokens: 80,
        image_tokens: 0,
        cached_tokens: 64,
        cached_tokens_details: { text_tokens: 48, audio_tokens: 16, image_tokens: 0 },
      },
      output_token_details: { text_tokens: 20, audio_tokens: 80 },
    };
    r.addUsage(usage);
    r.addUsage(usage);
    // A response without details adds to the totals only.
    r.addUsage({ total_tokens: 10, input_tokens: 6, output_tokens: 4 });
    await r.close();
    expect(await callRecord(p, callId)).toMatchObject({
      responses: 3,
      totalTokens: 610,
      inputTokens: 406,
      outputTokens: 204,
      inputTextTokens: 240,
      inputAudioTokens: 160,
      cachedTokens: 128,
      cachedTextTokens: 96,
      cachedAudioTokens: 32,
      outputTextTokens: 40,
      outputAudioTokens: 160,
    });
  });

  it('flushes on its own within about a second, parts and usage alike', async () => {
    const callId = await newCall();
    const r = recorder(documents, callId);
    r.record({ kind: 'transcript', role: 'caller', text: 'Where is my order?' });
    r.addUsage({ total_tokens: 5 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await callRecord(p, callId)).toMatchObject({ totalTokens: 5, responses: 1 });
    expect((await callParts(p, callId)).map((part) => part.kind)).toEqual(['transcript']);
    await r.close();
  });

  it('keeps usage whose update failed and writes it with the next flush', async () => {
    const callId = await newCall();
    let failNextUpdate = true;
    const flaky = beforeEachUpdate(() => {
      if (failNextUpdate) {
        failNextUpdate = false;
        throw new Error('injected: table unavailable');
      }
    });
    const errors: unknown[] = [];
    const r = recorder(flaky, callId, errors);
    r.addUsage({ total_tokens: 11, input_tokens: 5, output_tokens: 6 });
    await r.flush();
    expect(errors).toHaveLength(1);
    expect((await callRecord(p, callId))?.totalTokens).toBeUndefined();
    r.addUsage({ total_tokens: 1, input_tokens: 1, output_tokens: 0 });
    await r.close();
    expect(await callRecord(p, callId)).toMatchObject({
      totalTokens: 12,
      inputTokens: 6,
      outputTokens: 6,
      responses: 2,
    });
  });

  it('leaves the call record alone when no response finished', async () => {
    const callId = await newCall();
    const r = recorder(documents, callId);
    r.record({ kind: 'event', name: 'attached' });
    await r.close();
    expect(await callRecord(p, callId)).not.toHaveProperty('responses');
  });
});

/** The durable tool-call claims against DynamoDB Local: once-only, retries, stored outputs. */
describe('tool-call claims', () => {
  let p: LocalPipeline;
  let claims: DynamoToolCallClaims;
  beforeAll(async () => {
    p = await startPipeline();
    claims = new DynamoToolCallClaims(DynamoDBDocumentClient.from(p.dynamo), p.tableName, {
      ttlSeconds: 3600,
      clock: Date.now,
    });
  });
  afterAll(() => p.stop());
  const newCallId = () => `rtc_claims_${Math.random().toString(36).slice(2)}`;

  it('gives a function call to one claimant, again to the same one (a retry), never to another', async () => {
    const callId = newCallId();
    expect(await claims.claim(callId, 'call_1', 'lookup_order', 'session-a')).toBe(true);
    // The first answer was lost: the retry finds its own claim.
    expect(await claims.claim(callId, 'call_1', 'lookup_order', 'session-a')).toBe(true);
    expect(await claims.claim(callId, 'call_1', 'lookup_order', 'session-b')).toBe(false);
    expect(await claims.pendingOutputs(callId)).toEqual({
      undelivered: [],
      running: [{ fnCallId: 'call_1', name: 'lookup_order', at: expect.any(Number) }],
    });
  });

  it('keeps an output stored at a hand-off until one worker marks it delivered', async () => {
    const callId = newCallId();
    await claims.claim(callId, 'call_2', 'slow', 'session-a');
    await claims.storeOutput(callId, {
      fnCallId: 'call_2',
      name: 'slow',
      arguments: '{}',
      output: '{"late":true}',
      status: 'done',
      latencyMs: 1500,
    });
    expect(await claims.pendingOutputs(callId)).toEqual({
      undelivered: [{ fnCallId: 'call_2', name: 'slow', output: '{"late":true}' }],
      running: [],
    });
    // Two workers race to deliver it: one wins.
    const marks = await Promise.all([
      claims.markDelivered(callId, 'call_2'),
      claims.markDelivered(callId, 'call_2'),
    ]);
    expect(marks.sort()).toEqual([false, true]);
    expect(await claims.pendingOutputs(callId)).toEqual({ undelivered: [], running: [] });
    // A completed claim is not claimed again, not even by its claimant.
    expect(await claims.claim(callId, 'call_2', 'slow', 'session-a')).toBe(false);
  });

  it('with redaction, keeps a handed-over output verbatim only until it is delivered', async () => {
    const redacting = new DynamoToolCallClaims(DynamoDBDocumentClient.from(p.dynamo), p.tableName, {
      ttlSeconds: 3600,
      clock: Date.now,
      redact: true,
    });
    const callId = newCallId();
    const stored = async () =>
      (
        await DynamoDBDocumentClient.from(p.dynamo).send(
          new GetCommand({ TableName: p.tableName, Key: keys.callPart(callId, 'TOOL#call_3') }),
        )
      ).Item;
    await redacting.claim(callId, 'call_3', 'lookup_order', 'session-a');
    await redacting.storeOutput(callId, {
      fnCallId: 'call_3',
      name: 'lookup_order',
      arguments: '{"order_number":"88231","email":"ana@example.com"}',
      output: '{"status":"shipped","card":"4242 4242 4242 4242"}',
      status: 'failed',
      error: 'tool_failed: no order 88231 for ana@example.com',
      latencyMs: 900,
    });
    // The record's texts are redacted at once; the output waits verbatim for the next worker.
    expect(await stored()).toMatchObject({
      arguments: '{"order_number":"[number]","email":"[email]"}',
      error: 'tool_failed: no order [number] for [email]',
      output: '{"status":"shipped","card":"4242 4242 4242 4242"}',
      delivered: false,
    });
    expect((await redacting.pendingOutputs(callId)).undelivered).toEqual([
      {
        fnCallId: 'call_3',
        name: 'lookup_order',
        output: '{"status":"shipped","card":"4242 4242 4242 4242"}',
      },
    ]);
    // Delivered: from then on only the redacted output is kept.
    expect(await redacting.markDelivered(callId, 'call_3')).toBe(true);
    expect(await stored()).toMatchObject({
      output: '{"status":"shipped","card":"[number]"}',
      delivered: true,
    });
    expect(await redacting.markDelivered(callId, 'call_3')).toBe(false);
  });
});

/**
 * Issue 12 §1: the call recorder loses nothing silently, against DynamoDB Local with real faults:
 * an item over the 400 KB limit, a whole batch refused, BatchWriteItem's UnprocessedItems and
 * throttles (a proxy on the wire, local/stand-ins/dynamodb-write-faults.ts), and what is finally
 * given up counted in RecorderItemsDropped and logged without its text.
 */
describe('call recorder: nothing lost silently', () => {
  let p: LocalPipeline;
  let documents: DynamoDBDocumentClient;
  let faults: WriteFaultProxy;
  let faulty: DynamoDBDocumentClient;
  beforeAll(async () => {
    p = await startPipeline();
    documents = DynamoDBDocumentClient.from(p.dynamo);
    faults = await startWriteFaultProxy(p.dynamoEndpoint);
    faulty = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: faults.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
  });
  afterEach(() => {
    faults.fault = () => 'pass';
  });
  afterAll(async () => {
    await faults.stop();
    await p.stop();
  });

  const newCallId = () => `rtc_lossless_${Math.random().toString(36).slice(2)}`;
  const recorder = (
    client: DynamoDBDocumentClient,
    callId: string,
    options: Partial<DynamoCallRecorderOptions> = {},
  ) => {
    const log = new CapturingLogger();
    const metrics = new MetricsRecorder();
    const errors: unknown[] = [];
    const r = new DynamoCallRecorder(client, p.tableName, callId, {
      redact: false,
      ttlSeconds: 3600,
      clock: Date.now,
      onError: (error) => errors.push(error),
      metrics: metrics.publish,
      log,
      ...options,
    });
    const dropped = () =>
      metrics.points
        .filter((m) => m.name === 'RecorderItemsDropped')
        .reduce((sum, m) => sum + m.value, 0);
    return { r, log, metrics, errors, dropped };
  };
  const transcripts = (n: number, tag: string) =>
    Array.from({ length: n }, (_, i) => ({
      kind: 'transcript' as const,
      role: 'caller' as const,
      text: `${tag} line ${i}`,
    }));
  const textsOf = async (callId: string) =>
    (await callParts(p, callId))
      .filter((part) => part.kind === 'transcript')
      .map((part) => String(part.text))
      .sort();

  it('cuts a part over the 400 KB item limit, with a marker, and writes it with its batch-mates', async () => {
    const callId = newCallId();
    const { r, log, dropped } = recorder(documents, callId);
    const output = randomBytes(450 * 1024).toString('base64'); // about 600 KB
    for (const part of transcripts(3, 'before')) r.record(part);
    r.record({
      kind: 'tool',
      fnCallId: 'call_big',
      name: 'lookup_order',
      arguments: '{"order":"A1"}',
      output,
      latencyMs: 12,
      status: 'done',
    });
    r.record({ kind: 'event', name: 'attach_failed', detail: { detail: 'x'.repeat(500_000) } });
    for (const part of transcripts(3, 'after')) r.record(part);
    await r.close();

    expect(await textsOf(callId)).toEqual([
      'after line 0',
      'after line 1',
      'after line 2',
      'before line 0',
      'before line 1',
      'before line 2',
    ]);
    const parts = await callParts(p, callId);
    const tool = parts.find((part) => part.sk === 'TOOL#call_big');
    expect(tool?.arguments).toBe('{"order":"A1"}');
    expect(String(tool?.output)).toMatch(/…\[cut by the call recorder: kept \d+ of \d+ bytes\]$/);
    expect(output.startsWith(String(tool?.output).replace(/…\[cut by.*$/, ''))).toBe(true);
    expect(tool?.cutBytes).toEqual({ output: Buffer.byteLength(output) });
    const event = parts.find((part) => part.kind === 'event');
    expect(event?.cutBytes).toEqual({ detail: expect.any(Number) });
    expect(String(event?.detail)).toContain('…[cut by the call recorder');
    expect(dropped()).toBe(0);
    expect(log.find('recorded part cut to fit the DynamoDB item limit')?.fields).toMatchObject({
      kind: 'tool',
      cutBytes: { output: Buffer.byteLength(output) },
    });
  });

  it('writes the batch-mates of an item DynamoDB refuses, and counts the refused one', async () => {
    const callId = newCallId();
    // Fitting off: the oversized item reaches DynamoDB, which refuses the whole BatchWriteItem.
    const { r, log, metrics } = recorder(documents, callId, { maxItemBytes: 10 * 1024 * 1024 });
    for (const part of transcripts(4, 'good')) r.record(part);
    r.record({ kind: 'transcript', role: 'assistant', text: `secret ${'y'.repeat(500_000)}` });
    for (const part of transcripts(4, 'also good')) r.record(part);
    await r.close();

    expect(await textsOf(callId)).toHaveLength(8);
    expect(metrics.points).toEqual([
      { name: 'RecorderItemsDropped', value: 1, dimension: { name: 'Reason', value: 'rejected' } },
    ]);
    const line = log.find('recorded parts dropped');
    expect(line?.level).toBe('error');
    expect(line?.fields).toMatchObject({
      reason: 'rejected',
      count: 1,
      kinds: { transcript: 1 },
      error: expect.stringContaining('ValidationException'),
    });
    expect(JSON.stringify(log.lines)).not.toContain('secret');
  });

  it('resends what DynamoDB returns unprocessed, across flushes, until it is written', async () => {
    const callId = newCallId();
    // The first 8 requests write one item each and hand the rest back: more attempts than a
    // single flush makes (5), so the rest must survive into the next flush.
    let faulted = 0;
    faults.fault = () => (faulted++ < 8 ? { keep: 1 } : 'pass');
    const withheldBefore = faults.stats.withheld;
    const { r, dropped } = recorder(faulty, callId, { retry: { baseDelayMs: 10 } });
    for (const part of transcripts(12, 'kept')) r.record(part);
    await r.flush();
    expect(faults.stats.withheld - withheldBefore).toBeGreaterThan(0);
    expect((await textsOf(callId)).length).toBeLessThan(12);
    await r.close();
    expect(await textsOf(callId)).toHaveLength(12);
    expect(dropped()).toBe(0);
    expect(r.buffered).toBe(0);
  });

  it('keeps a throttled batch (a thrown error) and writes it once DynamoDB recovers', async () => {
    const callId = newCallId();
    // Throttled long enough to outlast the SDK's own retries (3 attempts) more than once.
    let throttled = 0;
    faults.fault = () => (throttled++ < 7 ? 'throttle' : 'pass');
    const throttledBefore = faults.stats.throttled;
    const { r, dropped } = recorder(faulty, callId, { retry: { baseDelayMs: 10 } });
    for (const part of transcripts(6, 'throttled')) r.record(part);
    await r.close();
    expect(await textsOf(callId)).toHaveLength(6);
    expect(faults.stats.throttled - throttledBefore).toBe(7);
    expect(dropped()).toBe(0);
  });

  it('counts and logs, without the text, parts it finally gives up on', async () => {
    const callId = newCallId();
    faults.fault = () => ({ keep: 0 });
    const { r, log, metrics } = recorder(faulty, callId, {
      retry: { baseDelayMs: 5, maxDelayMs: 20, attemptsPerFlush: 2, giveUpAfterMs: 200 },
    });
    r.record({ kind: 'transcript', role: 'caller', text: 'my number is +14155550123, secret' });
    r.record({
      kind: 'tool',
      fnCallId: 'call_lost',
      name: 'lookup_order',
      arguments: '{"phone":"+14155550123"}',
      output: '{"secret":true}',
      latencyMs: 3,
      status: 'done',
    });
    // Flushes every second on its own; the second one finds them failing for over 200 ms.
    const line = await eventually(
      async () => log.find('recorded parts dropped'),
      10_000,
      'the drop line',
    );
    expect(line.fields).toMatchObject({
      reason: 'retries_exhausted',
      count: 2,
      kinds: { transcript: 1, tool: 1 },
    });
    expect(metrics.points).toEqual([
      {
        name: 'RecorderItemsDropped',
        value: 2,
        dimension: { name: 'Reason', value: 'retries_exhausted' },
      },
    ]);
    expect(JSON.stringify(log.lines)).not.toMatch(/secret|4155550123/);
    expect(await callParts(p, callId)).toEqual([]);
    await r.close();
  });

  it('at close, retries within its budget and then counts what is left', async () => {
    const callId = newCallId();
    faults.fault = () => 'throttle';
    const { r, log, dropped } = recorder(faulty, callId, {
      retry: { baseDelayMs: 5, maxDelayMs: 50, closeBudgetMs: 300 },
    });
    for (const part of transcripts(3, 'closing')) r.record(part);
    await r.close();
    expect(dropped()).toBe(3);
    expect(log.find('recorded parts dropped')?.fields).toMatchObject({
      reason: 'unwritten_at_close',
      count: 3,
    });
    expect(await callParts(p, callId)).toEqual([]);
  });

  it('bounds what waits during an outage: the oldest go first, counted', async () => {
    const callId = newCallId();
    faults.fault = () => 'throttle';
    const { r, metrics } = recorder(faulty, callId, {
      retry: { maxBufferedItems: 3, closeBudgetMs: 0 },
    });
    for (const part of transcripts(5, 'outage')) r.record(part);
    expect(r.buffered).toBe(3);
    expect(metrics.points).toEqual([
      {
        name: 'RecorderItemsDropped',
        value: 1,
        dimension: { name: 'Reason', value: 'buffer_full' },
      },
      {
        name: 'RecorderItemsDropped',
        value: 1,
        dimension: { name: 'Reason', value: 'buffer_full' },
      },
    ]);
    faults.fault = () => 'pass';
    await r.close();
    expect(await textsOf(callId)).toEqual(['outage line 2', 'outage line 3', 'outage line 4']);
  });

  it('writes a tool part recorded twice before a flush once, as its later version', async () => {
    const callId = newCallId();
    const { r, dropped } = recorder(documents, callId);
    const tool = {
      kind: 'tool' as const,
      fnCallId: 'call_twice',
      name: 'lookup_order',
      arguments: '{}',
      latencyMs: 1,
    };
    r.record({ ...tool, output: '', status: 'skipped' });
    for (const part of transcripts(3, 'beside')) r.record(part);
    r.record({ ...tool, output: '{"ok":true}', status: 'done' });
    await r.close();
    expect(await textsOf(callId)).toHaveLength(3);
    expect((await callParts(p, callId)).find((part) => part.kind === 'tool')).toMatchObject({
      status: 'done',
      output: '{"ok":true}',
    });
    expect(dropped()).toBe(0);
  });

  it('redacts tool arguments, outputs and errors, error texts and transcripts when asked', async () => {
    const callId = newCallId();
    const { r } = recorder(documents, callId, { redact: true });
    r.record({ kind: 'transcript', role: 'caller', text: 'call me on 415 555 0123' });
    r.record({
      kind: 'tool',
      fnCallId: 'call_redact',
      name: 'lookup_order',
      arguments: '{"email":"ann@example.com","order":12345}',
      output: '{"card":"4111 1111 1111 1111","qty":2}',
      latencyMs: 3,
      status: 'failed',
      error: 'no order for ann@example.com',
    });
    r.record({ kind: 'error', code: 'invalid_value', message: 'bad phone 4155550123' });
    await r.close();
    const parts = await callParts(p, callId);
    expect(parts.find((part) => part.kind === 'transcript')?.text).toBe('call me on [number]');
    expect(parts.find((part) => part.kind === 'tool')).toMatchObject({
      arguments: '{"email":"[email]","order":"[number]"}',
      output: '{"card":"[number]","qty":2}',
      error: 'no order for [email]',
    });
    expect(parts.find((part) => part.kind === 'error')).toMatchObject({
      code: 'invalid_value',
      message: 'bad phone [number]',
    });
  });
});
