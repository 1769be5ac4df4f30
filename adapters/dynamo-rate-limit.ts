import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { keys } from '#core/table-schema';
import type { RateLimiter } from '#core/webrtc/session-endpoint';

/**
 * A fixed-window counter per key in the project's table (`pk = RATE#<key>`, `sk = <window start>`),
 * expired by the table's TTL a window after it closes. One conditional `ADD` per request: the
 * condition fails once `limit` requests were counted in the window. Used for the per-IP limit of
 * an `open` WebRTC session endpoint.
 */
export class DynamoRateLimiter implements RateLimiter {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly clock: () => number = Date.now,
  ) {}

  async take(key: string, limit: number, windowSeconds: number): Promise<boolean> {
    const now = Math.floor(this.clock() / 1000);
    const window = now - (now % windowSeconds);
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.rateWindow(key, window),
          UpdateExpression: 'ADD #n :one SET expiresAt = if_not_exists(expiresAt, :expires)',
          ConditionExpression: 'attribute_not_exists(#n) OR #n < :limit',
          ExpressionAttributeNames: { '#n': 'count' },
          ExpressionAttributeValues: {
            ':one': 1,
            ':limit': limit,
            ':expires': window + 2 * windowSeconds,
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
