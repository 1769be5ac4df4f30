import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { keys } from '../../../lambdas/shared/table-schema';

/**
 * Who holds each call's sideband. A lease expires unless its owner renews it, so a task that dies
 * without SIGTERM loses its calls to the sweeper within `ttl`.
 */
export class DynamoLeases {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async claim(callId: string, owner: string, now: number, ttlMs: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.lease(callId),
            callId,
            owner,
            leaseExpiresAt: now + ttlMs,
            claimedAt: now,
          },
          ConditionExpression:
            'attribute_not_exists(pk) OR leaseExpiresAt < :now OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': now, ':owner': owner },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** Renews our leases; returns the calls whose lease we no longer hold. */
  async renew(
    callIds: readonly string[],
    owner: string,
    now: number,
    ttlMs: number,
  ): Promise<string[]> {
    const lost: string[] = [];
    await Promise.all(
      callIds.map(async (callId) => {
        try {
          await this.client.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: keys.lease(callId),
              UpdateExpression: 'SET leaseExpiresAt = :expires',
              ConditionExpression: '#owner = :owner',
              ExpressionAttributeNames: { '#owner': 'owner' },
              ExpressionAttributeValues: { ':expires': now + ttlMs, ':owner': owner },
            }),
          );
        } catch (error) {
          if (error instanceof ConditionalCheckFailedException) lost.push(callId);
          else throw error;
        }
      }),
    );
    return lost;
  }

  async release(callId: string, owner: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.lease(callId),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  /**
   * Takes over each expired lease once (a conditional delete, so two sweepers never both win) and
   * returns the calls to re-signal.
   */
  async sweepExpired(now: number): Promise<string[]> {
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk',
        FilterExpression: 'leaseExpiresAt < :now',
        ExpressionAttributeValues: { ':pk': keys.leasePartition, ':now': now },
        ConsistentRead: true,
      }),
    );
    const swept: string[] = [];
    for (const item of result.Items ?? []) {
      try {
        await this.client.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: keys.lease(String(item.callId)),
            ConditionExpression: 'leaseExpiresAt = :seen',
            ExpressionAttributeValues: { ':seen': item.leaseExpiresAt },
          }),
        );
        swept.push(String(item.callId));
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }
    return swept;
  }
}
