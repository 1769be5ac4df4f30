import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '#adapters/dynamo-conditions';
import type { CallLeases } from '#core/ports/sideband';
import { keys } from '#core/table-schema';

/**
 * Call leases in DynamoDB: one item per held call (`LEASES`/`<call_id>`, naming its owner) and one
 * worker lease per worker (`WORKERS`/`<owner>`; its `heartbeatAt` attribute is the time of the last
 * renewal, `deadAfter` when it expires).
 */
export class DynamoCallLeases implements CallLeases {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async registerWorker(owner: string, now: number, ttlMs: number): Promise<void> {
    await this.putWorkerLease(owner, now, ttlMs, false);
  }

  async renewWorker(owner: string, now: number, ttlMs: number): Promise<boolean> {
    return this.putWorkerLease(owner, now, ttlMs, true);
  }

  async claim(callId: string, owner: string, now: number): Promise<boolean> {
    return conditionalWrite(() =>
      this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.lease(callId), callId, owner, claimedAt: now },
          ConditionExpression: 'attribute_not_exists(pk) OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      ),
    );
  }

  async release(callId: string, owner: string): Promise<void> {
    await conditionalWrite(() =>
      this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.lease(callId),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      ),
    );
  }

  async retire(owner: string): Promise<void> {
    await this.client.send(
      new DeleteCommand({ TableName: this.tableName, Key: keys.worker(owner) }),
    );
  }

  /**
   * Finds workers whose lease expired, takes over each of their call leases once (a transaction
   * that deletes the call lease only while its owner is still dead, so two sweepers never both win)
   * and returns the calls to re-signal. Costs one small query while every worker is alive.
   */
  async sweepDeadWorkers(now: number): Promise<string[]> {
    const workers = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk',
        FilterExpression: 'deadAfter < :now',
        ExpressionAttributeValues: { ':pk': keys.workerPartition, ':now': now },
        ConsistentRead: true,
      }),
    );
    const swept: string[] = [];
    for (const dead of workers.Items ?? []) {
      const owner = String(dead.owner);
      let startKey: Record<string, unknown> | undefined;
      do {
        const leases = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk',
            FilterExpression: '#owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner' },
            ExpressionAttributeValues: { ':pk': keys.leasePartition, ':owner': owner },
            ConsistentRead: true,
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          }),
        );
        for (const lease of leases.Items ?? []) {
          try {
            await this.client.send(
              new TransactWriteCommand({
                TransactItems: [
                  {
                    Delete: {
                      TableName: this.tableName,
                      Key: keys.lease(String(lease.callId)),
                      ConditionExpression: '#owner = :owner',
                      ExpressionAttributeNames: { '#owner': 'owner' },
                      ExpressionAttributeValues: { ':owner': owner },
                    },
                  },
                  {
                    ConditionCheck: {
                      TableName: this.tableName,
                      Key: keys.worker(owner),
                      ConditionExpression: 'deadAfter < :now',
                      ExpressionAttributeValues: { ':now': now },
                    },
                  },
                ],
              }),
            );
            swept.push(String(lease.callId));
          } catch (error) {
            if (!(error instanceof TransactionCanceledException)) throw error;
          }
        }
        startKey = leases.LastEvaluatedKey;
      } while (startKey);
      // Declare it dead: if it was only paused, its next renewal fails and it lets go of its sockets.
      await conditionalWrite(() =>
        this.client.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: keys.worker(owner),
            ConditionExpression: 'heartbeatAt = :seen',
            ExpressionAttributeValues: { ':seen': dead.heartbeatAt },
          }),
        ),
      );
    }
    return swept;
  }

  /**
   * Writes the worker lease. A renewal is conditional on the lease still existing: a sweeper that
   * declared us dead deleted it. The item's shape (`heartbeatAt`, `deadAfter`) is what sweepers
   * and stored data already use.
   */
  private putWorkerLease(
    owner: string,
    now: number,
    ttlMs: number,
    renewal: boolean,
  ): Promise<boolean> {
    return conditionalWrite(() =>
      this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.worker(owner),
            owner,
            heartbeatAt: now,
            deadAfter: now + ttlMs,
            expiresAt: Math.floor((now + ttlMs) / 1000) + 3600,
          },
          ...(renewal ? { ConditionExpression: 'attribute_exists(pk)' } : {}),
        }),
      ),
    );
  }
}
