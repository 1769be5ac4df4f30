import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCallLeases } from '#adapters/dynamo-call-leases';
import { keys } from '#core/table-schema';
import type { LocalPipeline } from '../../local/pipeline';
import { startPipeline } from '../support/webhooks';

/**
 * Fenced call leases against DynamoDB Local, with the interleavings that matter played exactly: a
 * client hook runs the stalled worker's renewal between the sweeper's own requests.
 */
describe('call leases in DynamoDB', () => {
  let p: LocalPipeline;
  let documents: DynamoDBDocumentClient;
  let leases: DynamoCallLeases;
  const T = 1_800_000_000_000;
  const TTL = 4000;
  let n = 0;
  const id = (what: string) => `${what}-${++n}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    p = await startPipeline();
    documents = DynamoDBDocumentClient.from(p.dynamo);
    leases = new DynamoCallLeases(documents, p.tableName);
  });
  afterAll(() => p.stop());

  /** A sweeper whose client runs `hook` before each of its DynamoDB requests. */
  const sweeperWith = (hook: (command: string) => Promise<void>) => {
    const client = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    client.middlewareStack.add(
      (next, context) => async (args) => {
        await hook(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'beforeEachRequest' },
    );
    return new DynamoCallLeases(client, p.tableName);
  };
  const lease = async (callId: string) =>
    (
      await documents.send(
        new GetCommand({ TableName: p.tableName, Key: keys.lease(callId), ConsistentRead: true }),
      )
    ).Item;

  it('fences a stalled worker before taking its calls: a renewal between any two sweeper steps is refused', async () => {
    const owner = id('stalled');
    const calls = [id('rtc'), id('rtc'), id('rtc')];
    const epoch = await leases.registerWorker(owner, T, TTL);
    for (const callId of calls) expect(await leases.claim(callId, owner, epoch, T)).toBe('claimed');
    // The worker wakes up and renews before each of the sweeper's requests.
    const renewals: { before: string; renewed: boolean }[] = [];
    let wakeUps = 0;
    const sweeper = sweeperWith(async (command) => {
      wakeUps++;
      renewals.push({
        before: command,
        renewed: await leases.renewWorker(owner, epoch, T + TTL + 10 + wakeUps, TTL),
      });
    });
    const swept = await sweeper.sweepDeadWorkers(T + TTL + 1);
    // The first renewal lands before the sweeper saw anything: it is a live worker again, and
    // nothing is taken. Run again from a stall that the renewal did not end: the fence wins.
    expect(swept).toEqual([]);
    expect(renewals[0]).toEqual({ before: 'QueryCommand', renewed: true });
    // Stalled again past the lease; this time it wakes once the sweeper's first write (the
    // fence) is done, and tries again before each of its later requests.
    renewals.length = 0;
    let fenceSent = false;
    const late = sweeperWith(async (command) => {
      if (fenceSent)
        renewals.push({
          before: command,
          renewed: await leases.renewWorker(owner, epoch, T + 3 * TTL, TTL),
        });
      if (command === 'UpdateItemCommand') fenceSent = true;
    });
    const taken = await late.sweepDeadWorkers(T + 3 * TTL);
    expect(taken.sort()).toEqual([...calls].sort());
    // Every renewal after the fence is refused, whichever step it came between: the lease query,
    // each lease deletion and the lease item's deletion alike.
    expect(renewals.map((r) => r.before)).toEqual([
      'QueryCommand',
      ...calls.map(() => 'DeleteItemCommand'),
      'DeleteItemCommand',
    ]);
    expect(renewals.every((r) => !r.renewed)).toBe(true);
    expect(await leases.renewWorker(owner, epoch, T + 3 * TTL, TTL)).toBe(false);
    // Nor can it take a call under the fenced epoch.
    expect(await leases.claim(id('rtc'), owner, epoch, T + 3 * TTL)).toBe('fenced');
    for (const callId of calls) expect(await lease(callId)).toBeUndefined();
  });

  it('lets a worker renew an expired lease nobody fenced yet; a sweep then takes nothing', async () => {
    const owner = id('late');
    const callId = id('rtc');
    const epoch = await leases.registerWorker(owner, T, TTL);
    await leases.claim(callId, owner, epoch, T);
    expect(await leases.renewWorker(owner, epoch, T + TTL + 500, TTL)).toBe(true);
    expect(await leases.sweepDeadWorkers(T + TTL + 600)).not.toContain(callId);
    expect((await lease(callId))?.owner).toBe(owner);
  });

  it('a worker back under a new epoch keeps new claims; a sweep of the old epoch takes only the old', async () => {
    const owner = id('back');
    const old = id('rtc');
    const fresh = id('rtc');
    const first = await leases.registerWorker(owner, T, TTL);
    await leases.claim(old, owner, first, T);
    // A sweeper fences it, and is slow to take its leases.
    let fenced = false;
    const slow = sweeperWith(async (command) => {
      if (command === 'QueryCommand' && !fenced) return;
      if (command === 'UpdateItemCommand') fenced = true;
      if (fenced && command === 'QueryCommand') {
        // Meanwhile the worker registers again and claims a call under its new epoch.
        const second = await leases.registerWorker(owner, T + 2 * TTL, TTL);
        expect(second).toBeGreaterThan(first + 1);
        expect(await leases.claim(fresh, owner, second, T + 2 * TTL)).toBe('claimed');
      }
    });
    const taken = await slow.sweepDeadWorkers(T + 2 * TTL);
    expect(taken).toContain(old);
    expect(taken).not.toContain(fresh);
    expect((await lease(fresh))?.owner).toBe(owner);
    // Its lease item stays: it is alive under the new epoch.
    expect(await leases.sweepDeadWorkers(T + 2 * TTL + 1)).not.toContain(fresh);
  });

  it('claims: ours, another worker’s, ours again, and a release only under the epoch it was claimed with', async () => {
    const a = id('a');
    const b = id('b');
    const callId = id('rtc');
    const ea = await leases.registerWorker(a, T, TTL);
    const eb = await leases.registerWorker(b, T, TTL);
    expect(await leases.claim(callId, a, ea, T)).toBe('claimed');
    expect(await leases.claim(callId, b, eb, T)).toBe('held');
    expect(await leases.claim(callId, a, ea, T)).toBe('claimed');
    expect(await leases.release(callId, a, ea + 1)).toBe(false);
    expect(await leases.release(callId, b, eb)).toBe(false);
    expect(await leases.release(callId, a, ea)).toBe(true);
    expect(await leases.claim(callId, b, eb, T)).toBe('claimed');
  });

  it('a retired worker is swept at once: whatever a failed release left is taken, and its item goes', async () => {
    const owner = id('retired');
    const left = id('rtc');
    const epoch = await leases.registerWorker(owner, T, TTL);
    await leases.claim(left, owner, epoch, T);
    await leases.retire(owner, epoch);
    expect(await leases.sweepDeadWorkers(T + 1)).toContain(left);
    const item = await documents.send(
      new GetCommand({ TableName: p.tableName, Key: keys.worker(owner), ConsistentRead: true }),
    );
    expect(item.Item).toBeUndefined();
  });

  it('claims the same call from many workers at once: exactly one wins', async () => {
    const callId = id('rtc');
    const owners = Array.from({ length: 8 }, () => id('w'));
    const epochs = await Promise.all(owners.map((o) => leases.registerWorker(o, T, TTL)));
    const results = await Promise.all(
      owners.map((o, i) => leases.claim(callId, o, epochs[i] ?? 0, T)),
    );
    expect(results.filter((r) => r === 'claimed')).toHaveLength(1);
    expect(results.filter((r) => r === 'held')).toHaveLength(7);
  });
});
