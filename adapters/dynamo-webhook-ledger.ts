import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { ClaimOutcome, WebhookClaim, WebhookLedger } from '#core/ports/webhooks';
import { keys } from '#core/table-schema';
import { conditionalWrite } from './dynamo-conditions';

/**
 * The dedupe record for a `webhook-id`. Uses the bare DynamoDB client (no document client) to
 * keep the ingress bundle small.
 */
export class DynamoWebhookLedger implements WebhookLedger {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async claim(claim: WebhookClaim): Promise<ClaimOutcome> {
    const key = keys.webhook(claim.webhookId);
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: key.pk },
            sk: { S: key.sk },
            state: { S: 'claimed' },
            token: { S: claim.token },
            claimedAt: { N: String(claim.now) },
            eventId: { S: claim.eventId },
            type: { S: claim.type },
            category: { S: claim.category },
            expiresAt: { N: String(claim.expiresAt) },
          },
          // New, or a claim left behind by an attempt that died before queueing.
          ConditionExpression:
            'attribute_not_exists(pk) OR (#state = :claimed AND claimedAt < :staleBefore)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':claimed': { S: 'claimed' },
            ':staleBefore': { N: String(claim.staleBefore) },
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { kind: 'claimed' };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const stored = error.Item?.state?.S;
      const state = stored === 'consumed' || stored === 'queued' ? stored : 'claimed';
      const eventId = error.Item?.eventId?.S;
      return { kind: 'duplicate', state, ...(eventId ? { eventId } : {}) };
    }
  }

  async release(webhookId: string, token: string): Promise<void> {
    // A failed condition: someone else owns it now (a takeover, or a consumer): theirs to finish.
    await conditionalWrite(() =>
      this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: toKey(keys.webhook(webhookId)),
          ConditionExpression: '#token = :token AND #state = :claimed',
          ExpressionAttributeNames: { '#token': 'token', '#state': 'state' },
          ExpressionAttributeValues: { ':token': { S: token }, ':claimed': { S: 'claimed' } },
        }),
      ),
    );
  }

  async markQueued(webhookId: string, token: string): Promise<void> {
    // Only our own claim, and only while it is a claim: a consumer may already have marked it.
    await conditionalWrite(() =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: toKey(keys.webhook(webhookId)),
          UpdateExpression: 'SET #state = :queued',
          ConditionExpression: '#token = :token AND #state = :claimed',
          ExpressionAttributeNames: { '#token': 'token', '#state': 'state' },
          ExpressionAttributeValues: {
            ':token': { S: token },
            ':claimed': { S: 'claimed' },
            ':queued': { S: 'queued' },
          },
        }),
      ),
    );
  }

  /**
   * The consumer's confirmation. The ingress has normally marked the claim `queued` already, and
   * `queued` answers redeliveries just as `consumed` does; so this reads first (a read unit costs
   * a fifth of a write unit, https://aws.amazon.com/dynamodb/pricing/on-demand/) and writes only
   * when the record is still a bare claim (the ingress's mark failed).
   */
  async markConsumed(webhookId: string): Promise<void> {
    const current = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: toKey(keys.webhook(webhookId)),
        ConsistentRead: true,
        ProjectionExpression: '#state',
        ExpressionAttributeNames: { '#state': 'state' },
      }),
    );
    // Gone (TTL) or already confirmed: nothing to write.
    if (current.Item?.state?.S !== 'claimed') return;
    await conditionalWrite(() =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: toKey(keys.webhook(webhookId)),
          UpdateExpression: 'SET #state = :consumed',
          // Never resurrect a record that TTL already removed.
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':consumed': { S: 'consumed' } },
        }),
      ),
    );
  }
}

function toKey(key: { pk: string; sk: string }) {
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}
