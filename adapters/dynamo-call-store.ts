import {
  ConditionalCheckFailedException,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { CallStatus } from '#core/calls/call-state';
import type { CallRecord, CallStore } from '#core/ports/calls';
import { keys, TABLE_SCHEMA } from '#core/table-schema';
import { conditionalWrite } from './dynamo-conditions';

/**
 * How long a reserve of the capacity counter is retried while it collides with other calls'
 * transactions on the counter item (DynamoDB cancels a transaction that overlaps another on the
 * same item: `TransactionConflict`). A burst of calls all write the one counter; retried with
 * jitter, they go through one after another instead of being refused as busy.
 */
const COUNTER_CONFLICT_BUDGET_MS = 4000;
/** A release is not waited on by a ringing caller, and a slot it failed to give back is lost. */
const RELEASE_CONFLICT_BUDGET_MS = 20_000;
const COUNTER_BACKOFF_MS = 10;
const COUNTER_BACKOFF_CAP_MS = 250;

/** The cancellation reason of each item of a cancelled transaction, in order. */
function reasonCodes(error: TransactionCanceledException): (string | undefined)[] {
  return (error.CancellationReasons ?? []).map((reason) => reason.Code);
}

/** Only conflicts with other transactions cancelled it (no condition failed): try again. */
function onlyConflicts(error: TransactionCanceledException): boolean {
  const codes = reasonCodes(error);
  return (
    codes.includes('TransactionConflict') &&
    codes.every((code) => code === undefined || code === 'None' || code === 'TransactionConflict')
  );
}

/** Full jitter: a random wait up to an exponentially growing cap. */
function conflictPause(attempt: number): Promise<void> {
  const cap = Math.min(COUNTER_BACKOFF_CAP_MS, COUNTER_BACKOFF_MS * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}

/** A call record as stored, without the table's key and listing-index attributes. */
export function callRecordFrom(item: Record<string, unknown>): CallRecord {
  const {
    pk: _pk,
    sk: _sk,
    [TABLE_SCHEMA.eventsByCategoryIndex.partitionKey]: _listing,
    [TABLE_SCHEMA.eventsByCategoryIndex.sortKey]: _listedAt,
    ...record
  } = item;
  return record as unknown as CallRecord;
}

export class DynamoCallStore implements CallStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async create(record: CallRecord): Promise<boolean> {
    return conditionalWrite(() =>
      this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.call(record.callId),
            // Listed by `owh calls list`, newest first.
            [TABLE_SCHEMA.eventsByCategoryIndex.partitionKey]: keys.callsListing,
            [TABLE_SCHEMA.eventsByCategoryIndex.sortKey]: `${record.createdAt}#${record.callId}`,
            ...record,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
  }

  async get(callId: string): Promise<CallRecord | undefined> {
    const result = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.call(callId), ConsistentRead: true }),
    );
    return result.Item ? callRecordFrom(result.Item) : undefined;
  }

  async transition(
    callId: string,
    from: readonly CallStatus[],
    to: CallStatus,
    fields: Partial<CallRecord> = {},
    options: { release?: boolean } = {},
  ): Promise<boolean> {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':to': to };
    const sets = ['#status = :to'];
    for (const [i, [field, value]] of Object.entries(fields).entries()) {
      if (value === undefined || field === 'status' || field === 'callId') continue;
      names[`#f${i}`] = field;
      values[`:f${i}`] = value;
      sets.push(`#f${i} = :f${i}`);
    }
    const guards = from.map((_, i) => `:from${i}`);
    from.forEach((status, i) => {
      values[`:from${i}`] = status;
    });
    const update = {
      TableName: this.tableName,
      Key: keys.call(callId),
      ConditionExpression: `attribute_exists(pk) AND #status IN (${guards.join(', ')})`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    };
    if (!options.release) {
      try {
        await this.client.send(
          new UpdateCommand({ ...update, UpdateExpression: `SET ${sets.join(', ')}` }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return false;
        throw error;
      }
    }
    // The slot is released only if this call holds it, in the same transaction as the move.
    values[':true'] = true;
    const deadline = Date.now() + RELEASE_CONFLICT_BUDGET_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  ...update,
                  UpdateExpression: `SET ${sets.join(', ')}, holdsCapacity = :false`,
                  ConditionExpression: `${update.ConditionExpression} AND holdsCapacity = :true`,
                  ExpressionAttributeValues: { ...values, ':false': false },
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  Key: keys.callCapacity,
                  UpdateExpression: 'ADD active :minus',
                  ConditionExpression: 'active > :zero',
                  ExpressionAttributeValues: { ':minus': -1, ':zero': 0 },
                },
              },
            ],
          }),
        );
        return true;
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) throw error;
        // Another call's transaction on the counter: the slot must still be given back.
        if (onlyConflicts(error) && Date.now() < deadline) {
          await conflictPause(attempt);
          continue;
        }
        if (onlyConflicts(error)) throw error;
        // The call held no slot (or is not in `from`): move it anyway, without the counter.
        return this.transition(callId, from, to, fields, { release: false });
      }
    }
  }

  /**
   * Takes a slot of the account-wide counter, in one transaction with the call's `holdsCapacity`.
   * A transaction cancelled only by conflicts with other calls' transactions on the counter (a
   * burst) is retried with jitter; only a failed condition means full (or already holding one).
   */
  async reserveCapacity(callId: string, max: number): Promise<boolean> {
    const deadline = Date.now() + COUNTER_CONFLICT_BUDGET_MS;
    for (let attempt = 1; ; attempt++) {
      const reserved = await this.tryReserve(callId, max);
      if (reserved !== 'conflict') return reserved;
      if (Date.now() >= deadline)
        throw new Error('The capacity counter stayed busy with other transactions; try again.');
      await conflictPause(attempt);
    }
  }

  private async tryReserve(callId: string, max: number): Promise<boolean | 'conflict'> {
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: keys.callCapacity,
                UpdateExpression: 'ADD active :one',
                ConditionExpression: 'attribute_not_exists(active) OR active < :max',
                ExpressionAttributeValues: { ':one': 1, ':max': max },
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: keys.call(callId),
                UpdateExpression: 'SET holdsCapacity = :true',
                ConditionExpression:
                  'attribute_exists(pk) AND (attribute_not_exists(holdsCapacity) OR holdsCapacity = :false)',
                ExpressionAttributeValues: { ':true': true, ':false': false },
              },
            },
          ],
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof TransactionCanceledException) {
        if (onlyConflicts(error)) return 'conflict';
        // Full, or already holding one (a redelivery, which counts as reserved).
        const record = await this.get(callId);
        return record?.holdsCapacity === true;
      }
      throw error;
    }
  }

  async activeCalls(): Promise<number> {
    const result = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.callCapacity, ConsistentRead: true }),
    );
    return Number(result.Item?.active ?? 0);
  }
}
