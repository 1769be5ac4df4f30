import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCallRecorder } from '#adapters/dynamo-call-recorder';
import { DynamoToolCallClaims } from '#adapters/dynamo-tool-call-claims';
import { keys } from '#core/table-schema';
import type { LocalPipeline } from '../../local/pipeline';
import { callParts, callRecord } from '../support/calls';
import { startPipeline } from '../support/webhooks';

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
});
