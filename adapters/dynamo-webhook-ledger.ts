import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { EventHead, HeadOutcome, WebhookLedger } from '#core/ports/webhooks';
import { eventHeadItem, keys } from '#core/table-schema';

/**
 * The ingress's side of the event head (see `WebhookLedger`). Uses the bare DynamoDB client (no
 * document client) to keep the ingress bundle small.
 *
 * Cost: the head is small (about 400 bytes) and never updated, so its put is 1 write unit, plus 1
 * for its entry in the listing index (DynamoDB bills a write per KB of item, and each index write
 * separately: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html,
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes).
 * `seen` is an eventually consistent read of one attribute: half a read unit.
 */
export class DynamoWebhookLedger implements WebhookLedger {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async seen(eventId: string): Promise<boolean> {
    const result = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: toKey(keys.event(eventId)),
        ProjectionExpression: 'pk',
      }),
    );
    return result.Item !== undefined;
  }

  async record(head: EventHead): Promise<HeadOutcome> {
    const item: Record<string, AttributeValue> = {};
    for (const [name, value] of Object.entries(eventHeadItem(head)))
      item[name] = typeof value === 'number' ? { N: String(value) } : { S: value };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { kind: 'recorded' };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // Our own token: the consumer got our message first and wrote the head for it.
      if (head.token !== undefined && error.Item?.token?.S === head.token)
        return { kind: 'recorded' };
      const webhookId = error.Item?.webhookId?.S;
      return { kind: 'duplicate', ...(webhookId ? { webhookId } : {}) };
    }
  }
}

function toKey(key: { pk: string; sk: string }) {
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}
