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
    try {
      if (!options.release) {
        await this.client.send(
          new UpdateCommand({ ...update, UpdateExpression: `SET ${sets.join(', ')}` }),
        );
        return true;
      }
      // The slot is released only if this call holds it, in the same transaction as the move.
      values[':true'] = true;
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
      if (error instanceof TransactionCanceledException) {
        // The call held no slot: move it anyway, without touching the counter.
        return this.transition(callId, from, to, fields, { release: false });
      }
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async reserveCapacity(callId: string, max: number): Promise<boolean> {
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
        // Already holding one (a redelivery) counts as reserved.
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
