import { BatchGetCommand, type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { EVENT_LISTING_SHARDS, eventHeadItem, keys, listingShard } from '#core/table-schema';
import { listEvents } from '../../cli/queries';

/**
 * `owh events list` over the sharded listing index (issue 12 §2), against an in-memory table that
 * answers Query and BatchGet as DynamoDB does (key condition, sort order, Limit, paging,
 * filter after the limit).
 */

type Item = Record<string, unknown>;

class FakeTable {
  readonly items: Item[] = [];
  queries = 0;

  readonly client = {
    send: async (command: unknown) => {
      if (command instanceof QueryCommand) return this.query(command.input as Item);
      if (command instanceof BatchGetCommand) return this.batchGet(command.input as Item);
      throw new Error('unexpected command');
    },
  } as unknown as DynamoDBDocumentClient;

  private query(input: Item) {
    this.queries++;
    const values = input.ExpressionAttributeValues as Record<string, string>;
    const rows = this.items
      .filter((item) => item.gsi1pk === values[':pk'])
      .filter((item) => {
        const sk = String(item.gsi1sk);
        return sk >= String(values[':low']) && sk <= String(values[':high']);
      })
      .sort((a, b) => (String(a.gsi1sk) < String(b.gsi1sk) ? 1 : -1));
    const start = input.ExclusiveStartKey as Item | undefined;
    const from = start ? rows.findIndex((r) => r.gsi1sk === start.gsi1sk) + 1 : 0;
    const limit = Number(input.Limit);
    const read = rows.slice(from, from + limit);
    const type = values[':type'];
    const filter = String(input.FilterExpression ?? '');
    const kept = read.filter((item) =>
      type === undefined
        ? true
        : filter.startsWith('begins_with')
          ? String(item.type).startsWith(type)
          : item.type === type,
    );
    const last = read.at(-1);
    return {
      Items: kept,
      ...(from + limit < rows.length && last ? { LastEvaluatedKey: { gsi1sk: last.gsi1sk } } : {}),
    };
  }

  private batchGet(input: Item) {
    const request = Object.values(input.RequestItems as Record<string, { Keys: Item[] }>)[0];
    const found = (request?.Keys ?? []).flatMap((key) =>
      this.items.filter((item) => item.pk === key.pk && item.sk === key.sk),
    );
    return { Responses: { table: found } };
  }

  /** An event as the ingress and consumer leave it: the head, and the body with its status. */
  add(id: string, createdAt: number, type = 'batch.completed', status = 'processed') {
    const eventId = `evt_${id}`;
    this.items.push(
      eventHeadItem({
        eventId,
        webhookId: `wh_${id}`,
        type,
        category: 'batch',
        createdAt,
        receivedAt: createdAt * 1000,
        secretLabel: 'current',
        expiresAt: 0,
      }),
      { ...keys.eventBody(eventId), status, attempts: 1 },
    );
    return eventId;
  }
}

const list = (table: FakeTable, filter: Partial<Parameters<typeof listEvents>[2]>) =>
  listEvents(table.client, 'table', { category: 'batch', limit: 10, ...filter });

describe('listEvents over the sharded listing index', () => {
  it('spreads events over the shards by a stable hash of the id', () => {
    const shards = new Set(Array.from({ length: 200 }, (_, i) => listingShard(`evt_${i}`)));
    expect(shards.size).toBe(EVENT_LISTING_SHARDS);
    expect(listingShard('evt_abc')).toBe(listingShard('evt_abc'));
    expect(keys.eventsByCategory('batch', 'evt_abc')).toMatch(/^EVENTS#batch#0\d$/);
    expect(keys.eventListingPartitions('batch')).toHaveLength(EVENT_LISTING_SHARDS + 1);
  });

  it('merges every shard newest first and pages through them exactly', async () => {
    const table = new FakeTable();
    const ids = Array.from({ length: 57 }, (_, i) =>
      table.add(String(i).padStart(3, '0'), 1000 + Math.floor(i / 3)),
    );
    // Pre-split rows in the unsharded partition are merged in too.
    table.items.push({
      pk: 'EVENT#evt_old',
      sk: 'EVENT',
      gsi1pk: 'EVENTS#batch',
      gsi1sk: '1010#evt_old',
      eventId: 'evt_old',
      webhookId: 'wh_old',
      type: 'batch.completed',
      category: 'batch',
      createdAt: 1010,
      receivedAt: 1,
      status: 'failed',
      attempts: 5,
    });
    const expected = [
      ...ids.map((id, i) => ({ id, key: `${1000 + Math.floor(i / 3)}#${id}` })),
      { id: 'evt_old', key: '1010#evt_old' },
    ]
      .sort((a, b) => (a.key < b.key ? 1 : -1))
      .map((e) => e.id);
    const seen: string[] = [];
    let before: string | undefined;
    do {
      const page = await list(table, { limit: 10, ...(before ? { before } : {}) });
      seen.push(...page.events.map((e) => e.eventId));
      before = page.next;
    } while (before);
    expect(seen).toEqual(expected);
    const old = await list(table, { status: 'failed' });
    expect(old.events).toMatchObject([{ eventId: 'evt_old', status: 'failed', attempts: 5 }]);
    expect(old.next).toBeUndefined();
  });

  it('reads the status from the body, and lists an event with no body yet as received', async () => {
    const table = new FakeTable();
    table.add('a', 1000, 'batch.completed', 'failed');
    const inFlight = table.add('b', 1001);
    table.items.splice(
      table.items.findIndex((item) => item.pk === `EVENT#${inFlight}` && item.sk === 'BODY'),
      1,
    );
    const page = await list(table, {});
    expect(page.events.map((e) => [e.eventId, e.status])).toEqual([
      ['evt_b', 'received'],
      ['evt_a', 'failed'],
    ]);
    expect((await list(table, { status: 'received' })).events.map((e) => e.eventId)).toEqual([
      'evt_b',
    ]);
  });

  it('stops where a shard was cut short by the page cap, and says where to go on', async () => {
    const table = new FakeTable();
    // One shard full of other types: a type filter reads 50 pages of it and stops.
    const crowded: string[] = [];
    for (let i = 0; crowded.length < 6000; i++)
      if (listingShard(`evt_x${i}`) === 0) crowded.push(`x${i}`);
    for (const [i, id] of crowded.entries()) table.add(id, 2000 + i, 'batch.expired');
    const wanted = table.add('wanted-old', 1000);
    const page = await list(table, { type: 'batch.completed' });
    // The crowded shard stopped above 1000, so the old event is not given out yet...
    expect(page.events).toEqual([]);
    expect(page.next).toMatch(/^\d+#evt_x\d+$/);
    // ...and following the cursor reaches it.
    let before = page.next;
    const found: string[] = [];
    for (let i = 0; i < 5 && before; i++) {
      const next = await list(table, { type: 'batch.completed', before });
      found.push(...next.events.map((e) => e.eventId));
      before = next.next;
    }
    expect(found).toEqual([wanted]);
  });
});
