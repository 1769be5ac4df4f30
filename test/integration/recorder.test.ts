import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCallRecorder } from '#adapters/dynamo-call-recorder';
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
