import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync } from 'node:zlib';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import type { EventStatus, EventStore, StoredEventRecord } from '#core/ports/webhooks';
import { eventHeadItem, keys } from '#core/table-schema';
import type { ObjectState } from '#core/webhooks/projection';
import { unwrapBody } from '#core/webhooks/queue-message';
import { conditionalWrite } from './dynamo-conditions';

/**
 * Events in two items under one partition (`EVENT#<id>`), billed as DynamoDB bills writes: each
 * write costs one unit per KB of the item (an update: of the larger of the old and new item), and
 * each index write one more (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html).
 *
 * - The head (`sk = EVENT`): the listing row and dedupe record, written once by the ingress (see
 *   `DynamoWebhookLedger`), never updated: 1 unit, plus 1 for its index entry.
 * - The body (`sk = BODY`): the payload, compressed (brotli; a 1 KiB event fits one unit with its
 *   status), and the status. Written once per attempt with the outcome; a retry writes it first
 *   too, so an event that keeps failing keeps its payload. Not in any index.
 *
 * Events stored before this layout have their whole record on the head's key (with `payload`, or
 * `payloadGzip` above 100 KiB, and `status`); they are read as before.
 */
export class DynamoEventStore implements EventStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async recordReceived(
    record: StoredEventRecord,
    options: { readonly storeFirst: boolean },
  ): Promise<'new' | 'pending' | 'processed' | 'duplicate'> {
    let { head, body } = await this.read(record.eventId);
    if (!head) {
      // The message came before the ingress wrote the head (or the ingress could not): write it.
      const written = await conditionalWrite(() =>
        this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: eventHeadItem(record),
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        ),
      );
      if (!written) ({ head, body } = await this.read(record.eventId));
      else head = eventHeadItem(record);
    }
    const headToken = typeof head?.token === 'string' ? head.token : undefined;
    if (record.token !== undefined && headToken !== undefined && headToken !== record.token)
      return 'duplicate';
    const status = statusOf(head, body);
    if (status === 'processed') return 'processed';
    if (options.storeFirst && !body)
      await conditionalWrite(() =>
        this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: this.bodyItem(record, { status: 'received', attempts: record.attempts }),
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        ),
      );
    return status === undefined ? 'new' : 'pending';
  }

  async markProcessed(record: StoredEventRecord, attempt: number, now: number): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: this.bodyItem(record, { status: 'processed', attempts: attempt, processedAt: now }),
      }),
    );
  }

  async markFailed(
    record: StoredEventRecord,
    error: string,
    attempt: number,
    now: number,
  ): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: this.bodyItem(record, {
          status: 'failed',
          attempts: attempt,
          failedAt: now,
          lastError: error.slice(0, 1000),
        }),
        // A late failure report must not undo a success recorded by another delivery.
        ConditionExpression: 'attribute_not_exists(pk) OR #status <> :processed',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':processed': 'processed' },
      }),
    );
  }

  async getEvent(eventId: string): Promise<StoredEventRecord | undefined> {
    const { head, body } = await this.read(eventId);
    if (!head && !body) return undefined;
    const {
      pk: _pk,
      sk: _sk,
      gsi1pk: _gsi1pk,
      gsi1sk: _gsi1sk,
      payloadGzip,
      ...legacy
    } = head ?? {};
    const outcome = body ? bodyFields(body) : {};
    const payload =
      body && body.payloadBr instanceof Uint8Array
        ? brotliDecompressSync(body.payloadBr).toString('utf8')
        : payloadGzip instanceof Uint8Array
          ? gunzipSync(payloadGzip).toString('utf8')
          : typeof legacy.payload === 'string'
            ? legacy.payload
            : '';
    let payloadRef: StoredEventRecord['payloadRef'];
    try {
      const carried = payload ? unwrapBody(payload) : undefined;
      if (carried?.kind === 'ref') payloadRef = carried.ref;
    } catch {
      payloadRef = undefined;
    }
    return {
      eventId,
      ...legacy,
      ...(legacy.status === undefined ? { status: 'received', attempts: 0 } : {}),
      ...outcome,
      ...(payloadRef ? { payloadRef } : {}),
      payload,
    } as StoredEventRecord;
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

  /** Head and body in one strongly consistent query: one read unit for a 1 KiB event. */
  private async read(
    eventId: string,
  ): Promise<{ head?: Record<string, unknown>; body?: Record<string, unknown> }> {
    const key = keys.event(eventId);
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': key.pk },
        ConsistentRead: true,
      }),
    );
    const items = result.Items ?? [];
    const head = items.find((item) => item.sk === key.sk);
    const body = items.find((item) => item.sk === keys.eventBody(eventId).sk);
    return { ...(head ? { head } : {}), ...(body ? { body } : {}) };
  }

  private bodyItem(
    record: StoredEventRecord,
    outcome: {
      status: EventStatus;
      attempts: number;
      processedAt?: number;
      failedAt?: number;
      lastError?: string;
    },
  ): Record<string, unknown> {
    return {
      ...keys.eventBody(record.eventId),
      payloadBr: compress(record.payload),
      ...outcome,
      expiresAt: record.expiresAt,
    };
  }
}

/** The status an event has: the body's, else a pre-split record's own, else none yet. */
function statusOf(
  head: Record<string, unknown> | undefined,
  body: Record<string, unknown> | undefined,
): EventStatus | undefined {
  const status = body?.status ?? head?.status;
  return status === 'received' || status === 'processed' || status === 'failed'
    ? status
    : undefined;
}

function bodyFields(body: Record<string, unknown>) {
  const {
    pk: _pk,
    sk: _sk,
    payloadBr: _payload,
    expiresAt: _expires,
    failedAt: _failedAt,
    ...outcome
  } = body;
  return outcome;
}

function compress(text: string): Uint8Array {
  const bytes = Buffer.from(text, 'utf8');
  return brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 5,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}
