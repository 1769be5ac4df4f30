import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCallStore } from '#adapters/dynamo-call-store';
import { keys } from '#core/table-schema';
import type { LocalPipeline } from '../../local/pipeline';
import { withTransactionConflicts } from '../../local/stand-ins/dynamodb-conflicts';
import { startPipeline } from '../support/webhooks';

/**
 * The account-wide capacity counter under a burst, against DynamoDB Local with DynamoDB's
 * transaction conflicts modelled (DynamoDB Local runs one transaction at a time; DynamoDB cancels a
 * transaction that overlaps another on the same item). Every call writes the one counter item.
 */
describe('the capacity counter under a burst', () => {
  let p: LocalPipeline;
  let store: DynamoCallStore;
  let documents: DynamoDBDocumentClient;
  let conflicts: { conflicts: number };
  beforeAll(async () => {
    p = await startPipeline();
    const dynamo = new DynamoDBClient({});
    conflicts = withTransactionConflicts(dynamo);
    documents = DynamoDBDocumentClient.from(dynamo);
    store = new DynamoCallStore(documents, p.tableName);
  });
  afterAll(() => p.stop());

  const counter = async () =>
    Number(
      (
        await documents.send(
          new GetCommand({ TableName: p.tableName, Key: keys.callCapacity, ConsistentRead: true }),
        )
      ).Item?.active ?? 0,
    );

  it('takes a slot for every call that fits, refuses only beyond the limit, and gives every slot back', async () => {
    const calls = Array.from({ length: 40 }, (_, i) => `rtc_burst_${i}_${Date.now()}`);
    for (const callId of calls)
      await documents.send(
        new PutCommand({
          TableName: p.tableName,
          Item: { ...keys.call(callId), callId, status: 'accepting' },
        }),
      );
    const before = conflicts.conflicts;
    const reserved = await Promise.all(calls.map((callId) => store.reserveCapacity(callId, 30)));
    // The conflicts happened (the burst is real), and none of them cost a call its slot.
    expect(conflicts.conflicts).toBeGreaterThan(before);
    expect(reserved.filter(Boolean)).toHaveLength(30);
    expect(await counter()).toBe(30);
    const holding = calls.filter((_, i) => reserved[i]);
    const ended = await Promise.all(
      holding.map((callId) =>
        store.transition(
          callId,
          ['accepting'],
          'ended',
          { endReason: 'caller_hung_up' },
          {
            release: true,
          },
        ),
      ),
    );
    expect(ended.every(Boolean)).toBe(true);
    expect(await counter()).toBe(0);
  });
});
