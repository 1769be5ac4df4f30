import { gunzipSync, gzipSync } from 'node:zlib';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { EventStore, StoredEventRecord } from '#core/ports/webhooks';
import { keys, TABLE_SCHEMA } from '#core/table-schema';
import type { ObjectState } from '#core/webhooks/projection';
import { conditionalWrite } from './dynamo-conditions';

// DynamoDB items are capped at 400 KB: larger payloads are stored gzip-compressed.
const INLINE_PAYLOAD_LIMIT = 100 * 1024;

export class DynamoEventStore implements EventStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async recordReceived(record: StoredEventRecord): Promise<'new' | 'pending' | 'processed'> {
    const { payload, ...rest } = record;
    const payloadFields =
      Buffer.byteLength(payload) > INLINE_PAYLOAD_LIMIT
        ? { payloadGzip: gzipSync(payload) }
        : { payload };
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.event(record.eventId),
            [TABLE_SCHEMA.eventsByCategoryIndex.partitionKey]: keys.eventsByCategory(
              record.category,
            ),
            [TABLE_SCHEMA.eventsByCategoryIndex.sortKey]: `${record.createdAt}#${record.eventId}`,
            ...rest,
            ...payloadFields,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return 'new';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return error.Item?.status?.S === 'processed' ? 'processed' : 'pending';
    }
  }

  async markProcessed(eventId: string, attempt: number, now: number): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.event(eventId),
        UpdateExpression:
          'SET #status = :processed, processedAt = :now, attempts = :attempt REMOVE lastError',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':processed': 'processed', ':now': now, ':attempt': attempt },
      }),
    );
  }

  async markFailed(eventId: string, error: string, attempt: number, now: number): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.event(eventId),
        UpdateExpression:
          'SET #status = :failed, lastError = :error, attempts = :attempt, failedAt = :now',
        // A late failure report must not undo a success recorded by another delivery.
        ConditionExpression: 'attribute_exists(pk) AND #status <> :processed',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':failed': 'failed',
          ':processed': 'processed',
          ':error': error.slice(0, 1000),
          ':attempt': attempt,
          ':now': now,
        },
      }),
    );
  }

  async getEvent(eventId: string): Promise<StoredEventRecord | undefined> {
    const result = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.event(eventId), ConsistentRead: true }),
    );
    if (!result.Item) return undefined;
    const { pk: _pk, sk: _sk, payloadGzip, ...item } = result.Item;
    const payload =
      payloadGzip instanceof Uint8Array ? gunzipSync(payloadGzip).toString('utf8') : item.payload;
    return { ...item, payload } as StoredEventRecord;
  }

  async getObject(objectId: string): Promise<ObjectState | undefined> {
    const result = await this.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keys.object(objectId),
        ConsistentRead: true,
      }),
    );
    if (!result.Item) return undefined;
    const { pk: _pk, sk: _sk, ...state } = result.Item;
    return state as ObjectState;
  }

  async putObject(state: ObjectState, expectedVersion: number | undefined): Promise<boolean> {
    return conditionalWrite(() =>
      this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.object(state.objectId), ...state },
          ...(expectedVersion === undefined
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: 'version = :expected',
                ExpressionAttributeValues: { ':expected': expectedVersion },
              }),
        }),
      ),
    );
  }
}
