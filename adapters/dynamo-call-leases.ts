import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '#adapters/dynamo-conditions';
import type { CallLeases, ClaimResult } from '#core/ports/sideband';
import { keys } from '#core/table-schema';

/** Attempts of a claim whose transaction collided with another on the same items. */
const CLAIM_ATTEMPTS = 5;

/**
 * Call leases in DynamoDB, fenced by epochs (see `CallLeases`):
 * - one worker lease per worker (`WORKERS`/`<owner>`): `epoch`, `heartbeatAt` (the last renewal),
 *   `deadAfter` (when it expires, by the worker's clock);
 * - one call lease per held call (`LEASES`/`<call_id>`): `owner` and the owner's `epoch` when it
 *   claimed the call.
 *
 * A sweeper fences an expired worker with one conditional update (`epoch` bumped, only while the
 * lease is still expired and still of the epoch it saw) before it touches any call lease. From
 * then on the worker's renewal (conditional on its epoch) fails, and so does any claim it makes
 * (a transaction with a condition check on its epoch), so a worker that stalled cannot renew in
 * the middle of a sweep and keep sockets whose calls were handed on.
 */
export class DynamoCallLeases implements CallLeases {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async registerWorker(owner: string, now: number, ttlMs: number): Promise<number> {
    // ADD makes the epoch one more than any this worker lease had: a worker coming back after
    // being fenced never gets an epoch whose call leases a sweeper may still be taking.
    const result = await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.worker(owner),
        UpdateExpression:
          'SET #owner = :owner, heartbeatAt = :now, deadAfter = :dead, expiresAt = :expires ADD epoch :one',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':now': now,
          ':dead': now + ttlMs,
          ':expires': expiresAt(now, ttlMs),
          ':one': 1,
        },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return Number(result.Attributes?.epoch);
  }

  renewWorker(owner: string, epoch: number, now: number, ttlMs: number): Promise<boolean> {
    return conditionalWrite(() =>
      this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.worker(owner),
          UpdateExpression: 'SET heartbeatAt = :now, deadAfter = :dead, expiresAt = :expires',
          // Not "still alive": an expired lease nobody fenced yet may be renewed (no call moved).
          ConditionExpression: 'epoch = :epoch',
          ExpressionAttributeValues: {
            ':epoch': epoch,
            ':now': now,
            ':dead': now + ttlMs,
            ':expires': expiresAt(now, ttlMs),
          },
        }),
      ),
    );
  }

  async claim(callId: string, owner: string, epoch: number, now: number): Promise<ClaimResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Put: {
                  TableName: this.tableName,
                  Item: { ...keys.lease(callId), callId, owner, epoch, claimedAt: now },
                  ConditionExpression: 'attribute_not_exists(pk) OR #owner = :owner',
                  ExpressionAttributeNames: { '#owner': 'owner' },
                  ExpressionAttributeValues: { ':owner': owner },
                },
              },
              {
                // Only a worker whose epoch is current may take a call: a fenced one cannot.
                ConditionCheck: {
                  TableName: this.tableName,
                  Key: keys.worker(owner),
                  ConditionExpression: 'epoch = :epoch',
                  ExpressionAttributeValues: { ':epoch': epoch },
                },
              },
            ],
          }),
        );
        return 'claimed';
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) throw error;
        const [lease, worker] = (error.CancellationReasons ?? []).map((r) => r.Code);
        if (worker === 'ConditionalCheckFailed') return 'fenced';
        if (lease === 'ConditionalCheckFailed') return 'held';
        // A conflict with another transaction on the same items: try again, with jitter.
        if (attempt >= CLAIM_ATTEMPTS) throw error;
        await jitteredPause(attempt);
      }
    }
  }

  release(callId: string, owner: string, epoch: number): Promise<boolean> {
    return conditionalWrite(() =>
      this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.lease(callId),
          ConditionExpression: '#owner = :owner AND epoch = :epoch',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner, ':epoch': epoch },
        }),
      ),
    );
  }

  async retire(owner: string, epoch: number): Promise<void> {
    await conditionalWrite(() =>
      this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.worker(owner),
          UpdateExpression: 'SET deadAfter = :zero',
          ConditionExpression: 'epoch = :epoch',
          ExpressionAttributeValues: { ':zero': 0, ':epoch': epoch },
        }),
      ),
    );
  }

  /**
   * For each worker whose lease expired: fence it (its epoch bumped, only while still expired and
   * still at the epoch seen), take each of its call leases of an older epoch (a conditional delete,
   * so a call is taken once across sweepers, and never one the worker released itself), then delete
   * its lease item, unless it registered again meanwhile. A sweeper that dies half-way leaves the
   * lease expired: the next sweep fences it again and finishes. Costs one small query while every
   * worker is alive.
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
      const owner = String(dead.owner ?? dead.sk);
      const seen = typeof dead.epoch === 'number' ? dead.epoch : undefined;
      const fenced = (seen ?? 0) + 1;
      const fencedNow = await conditionalWrite(() =>
        this.client.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: keys.worker(owner),
            UpdateExpression: 'SET epoch = :fenced',
            ConditionExpression: `${seen === undefined ? 'attribute_not_exists(epoch)' : 'epoch = :seen'} AND deadAfter < :now`,
            ExpressionAttributeValues: {
              ':fenced': fenced,
              ':now': now,
              ...(seen === undefined ? {} : { ':seen': seen }),
            },
          }),
        ),
      );
      // It renewed or registered since the query, or another sweeper fenced it first.
      if (!fencedNow) continue;
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
          const taken = await conditionalWrite(() =>
            this.client.send(
              new DeleteCommand({
                TableName: this.tableName,
                Key: keys.lease(String(lease.callId)),
                // Leases written before epochs existed have none: theirs too.
                ConditionExpression:
                  '#owner = :owner AND (attribute_not_exists(epoch) OR epoch < :fenced)',
                ExpressionAttributeNames: { '#owner': 'owner' },
                ExpressionAttributeValues: { ':owner': owner, ':fenced': fenced },
              }),
            ),
          );
          if (taken) swept.push(String(lease.callId));
        }
        startKey = leases.LastEvaluatedKey;
      } while (startKey);
      // Nothing of it is left to take: its lease item goes, unless it registered again since.
      await conditionalWrite(() =>
        this.client.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: keys.worker(owner),
            ConditionExpression: 'epoch = :fenced',
            ExpressionAttributeValues: { ':fenced': fenced },
          }),
        ),
      );
    }
    return swept;
  }
}

/** The lease item's TTL: an hour after it would expire (the sweeper deletes it long before). */
function expiresAt(now: number, ttlMs: number): number {
  return Math.floor((now + ttlMs) / 1000) + 3600;
}

function jitteredPause(attempt: number): Promise<void> {
  const ms = Math.random() * 20 * 2 ** attempt;
  return new Promise((resolve) => setTimeout(resolve, ms));
}
