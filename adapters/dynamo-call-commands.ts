import { createHash } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '#adapters/dynamo-conditions';
import type { CommandStore, CommandTransition } from '#core/ports/call-control';
import { type CommandStatus, type StoredCommand, wireBodyOf } from '#core/sideband/call-commands';
import { keys } from '#core/table-schema';

/**
 * Call-control items in the one table:
 * - a call's commands: `CMD#<call_id>` / `<command id>` (ids are time-ordered, so a query reads
 *   them in the order they were sent), with `status`, `sender`, `appliedBy`, TTL `expiresAt`;
 * - each worker's control address (its own SQS queue): `CONTROL` / `<owner>`.
 * Kept out of the call's own partition, whose items are the call's record and recording.
 */
export const controlKeys = {
  command: (callId: string, id: string) => ({ pk: `CMD#${callId}`, sk: id }),
  commandPartition: (callId: string) => `CMD#${callId}`,
  address: (owner: string) => ({ pk: 'CONTROL', sk: owner }),
} as const;

export class DynamoCallCommands implements CommandStore {
  private readonly addressCache = new Map<string, { address: string; until: number }>();

  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    /** How long a worker's control address is remembered. @default 60 s */
    private readonly addressCacheMs = 60_000,
  ) {}

  async create(command: StoredCommand, expiresAt: number): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...controlKeys.command(command.callId, command.id),
          ...command,
          command: wireBodyOf(command.command),
          digest: commandDigest(command),
          expiresAt,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  async get(callId: string, id: string): Promise<unknown> {
    const result = await this.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: controlKeys.command(callId, id),
        ConsistentRead: true,
      }),
    );
    return result.Item;
  }

  async list(callId: string): Promise<unknown[]> {
    const items: unknown[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': controlKeys.commandPartition(callId) },
          ConsistentRead: true,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  async transition(
    callId: string,
    id: string,
    from: CommandStatus,
    to: CommandStatus,
    options: CommandTransition,
  ): Promise<boolean> {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':from': from, ':to': to, ':at': options.at };
    let set = '#status = :to, updatedAt = :at';
    if (to === 'applied' || to === 'refused' || to === 'failed') {
      set += ', appliedAt = :at';
      if (options.by) {
        set += ', appliedBy = :by';
        values[':by'] = options.by;
      }
    }
    if (options.error) {
      set += ', #error = :error';
      names['#error'] = 'error';
      values[':error'] = options.error;
    }
    let condition = '#status = :from';
    if (options.expected) {
      condition += ' AND digest = :digest';
      values[':digest'] = commandDigest(options.expected);
    }
    const update = {
      TableName: this.tableName,
      Key: controlKeys.command(callId, id),
      UpdateExpression: `SET ${set}`,
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    };
    if (!options.guard) return conditionalWrite(() => this.client.send(new UpdateCommand(update)));
    // Pending → anything: only the worker holding the call's lease, under the epoch it claimed the
    // call with (the lease the sweeper fences: adapters/dynamo-call-leases.ts). A worker that was
    // taken for dead, or that handed the call off, cannot apply it.
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            { Update: update },
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: keys.lease(callId),
                ConditionExpression: '#owner = :owner AND epoch = :epoch',
                ExpressionAttributeNames: { '#owner': 'owner' },
                ExpressionAttributeValues: {
                  ':owner': options.guard.owner,
                  ':epoch': options.guard.epoch,
                },
              },
            },
          ],
        }),
      );
      return true;
    } catch (error) {
      if (
        error instanceof TransactionCanceledException &&
        (error.CancellationReasons ?? []).some((r) => r.Code === 'ConditionalCheckFailed')
      )
        return false;
      throw error;
    }
  }

  /**
   * The worker holding a call (its lease, read consistently every time: it changes on a hand-off)
   * and that worker's control address, if it has one. A worker's address does not change while it
   * lives, so addresses are remembered for `addressCacheMs` (a send to a queue that is gone drops
   * it: `forgetAddress`).
   */
  async ownerOf(callId: string): Promise<{ owner: string; address?: string } | undefined> {
    const lease = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.lease(callId), ConsistentRead: true }),
    );
    const owner = lease.Item?.owner;
    if (typeof owner !== 'string') return undefined;
    const cached = this.addressCache.get(owner);
    const now = Date.now();
    let address = cached && cached.until > now ? cached.address : undefined;
    if (address === undefined) {
      address = await this.addressOf(owner);
      if (address !== undefined)
        this.addressCache.set(owner, { address, until: now + this.addressCacheMs });
    }
    return { owner, ...(address ? { address } : {}) };
  }

  forgetAddress(address: string): void {
    for (const [owner, cached] of this.addressCache)
      if (cached.address === address) this.addressCache.delete(owner);
  }

  async addressOf(owner: string): Promise<string | undefined> {
    const found = await this.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: controlKeys.address(owner),
        ConsistentRead: true,
      }),
    );
    const address = found.Item?.address;
    return typeof address === 'string' ? address : undefined;
  }

  async registerAddress(owner: string, address: string, now: number): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...controlKeys.address(owner), owner, address, registeredAt: now },
      }),
    );
  }

  /** Every registered control address (for tidying the queues of workers that died). */
  async addresses(): Promise<{ owner: string; address: string; registeredAt: number }[]> {
    const items: { owner: string; address: string; registeredAt: number }[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': 'CONTROL' },
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      for (const item of page.Items ?? [])
        if (typeof item.owner === 'string' && typeof item.address === 'string')
          items.push({
            owner: item.owner,
            address: item.address,
            registeredAt: Number(item.registeredAt) || 0,
          });
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  /** True while the worker has a lease item (the sweeper deletes it once it took its calls). */
  async workerKnown(owner: string): Promise<boolean> {
    const found = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.worker(owner), ConsistentRead: true }),
    );
    return found.Item !== undefined;
  }

  async removeAddress(owner: string, address?: string): Promise<void> {
    await conditionalWrite(() =>
      this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: controlKeys.address(owner),
          ...(address
            ? {
                ConditionExpression: 'address = :address',
                ExpressionAttributeValues: { ':address': address },
              }
            : {}),
        }),
      ),
    );
  }
}

/**
 * What identifies a stored command's content: its id, call, sender, time and body (in the
 * parser's own key order, so the API and the worker, each parsing it, get the same text).
 */
export function commandDigest(command: StoredCommand): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        command.id,
        command.callId,
        command.sender,
        command.createdAt,
        wireBodyOf(command.command),
      ]),
    )
    .digest('base64url');
}
