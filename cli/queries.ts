import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { callRecordFrom } from '#adapters/dynamo-call-store';
import type { CallRecord } from '#core/ports/calls';
import type { StoredEventRecord } from '#core/ports/webhooks';
import { keys, TABLE_SCHEMA } from '#core/table-schema';
import { CATEGORIES, type Category, categoryOf } from '#core/webhooks/categories';

/**
 * The listings behind `events list` and `calls`: queries on the listing index, never scans. Single
 * events and object states are read through the pipeline's own DynamoEventStore.
 */

export interface EventFilter {
  readonly category?: Category;
  /** An exact type, or a prefix ending in `*` (`batch.*`). */
  readonly type?: string;
  readonly status?: string;
  /** Epoch ms bounds on the event's `created_at`. */
  readonly since?: number;
  readonly until?: number;
  readonly limit: number;
  /** A cursor from a previous page (`<created_at>#<event id>`): only events listed after it. */
  readonly before?: string;
}

/** One page of events, newest first; `next` is the cursor for the page after it, if any. */
export interface EventPage {
  readonly events: EventSummary[];
  readonly next?: string;
}

/** The listing index's sort key of an event: also the cursor that pages after it. */
export const eventCursor = (e: Pick<EventSummary, 'createdAt' | 'eventId'>): string =>
  `${e.createdAt}#${e.eventId}`;

/** `<created_at>#<event id>`, as `eventCursor` makes it. */
export function isEventCursor(value: string): boolean {
  return /^\d+#\S+$/.test(value);
}

export type EventSummary = Pick<
  StoredEventRecord,
  'eventId' | 'webhookId' | 'type' | 'category' | 'createdAt' | 'receivedAt' | 'status' | 'attempts'
> & { readonly objectId?: string };

const INDEX = TABLE_SCHEMA.eventsByCategoryIndex;
// Filters can drop most of a page; stop after this many pages per partition.
const MAX_PAGES = 50;

export async function listEvents(
  db: DynamoDBDocumentClient,
  tableName: string,
  filter: EventFilter,
): Promise<EventPage> {
  const typePrefix = filter.type?.endsWith('*') ? filter.type.slice(0, -1) : undefined;
  const categories: readonly Category[] = filter.category
    ? [filter.category]
    : filter.type && !typePrefix
      ? [categoryOf(filter.type)]
      : CATEGORIES;
  const filters: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  if (filter.type) {
    names['#type'] = 'type';
    values[':type'] = typePrefix ?? filter.type;
    filters.push(typePrefix !== undefined ? 'begins_with(#type, :type)' : '#type = :type');
  }
  if (filter.status) {
    names['#status'] = 'status';
    values[':status'] = filter.status;
    filters.push('#status = :status');
  }
  // One more than the page per partition: whether it comes back says if there are more.
  const perCategory = await Promise.all(
    categories.map((category) =>
      queryListing<EventSummary>(
        db,
        tableName,
        keys.eventsByCategory(category),
        { ...filter, limit: filter.limit + 1 },
        { filters, names, values },
      ),
    ),
  );
  // In the index's own order (its sort key compared as strings), so a cursor resumes exactly.
  const merged = perCategory
    .flatMap((listing) => listing.items)
    .map((event) => ({ event, key: eventCursor(event) }))
    .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  const events = merged.slice(0, filter.limit).map((m) => m.event);
  const last = events.at(-1);
  const more = merged.length > filter.limit || perCategory.some((listing) => listing.truncated);
  return { events, ...(more && last ? { next: eventCursor(last) } : {}) };
}

export interface CallFilter {
  readonly status?: string;
  readonly since?: number;
  readonly until?: number;
  readonly limit: number;
}

/** Newest first: the listing index gives the ids, the records give the summary. */
export async function listCalls(
  db: DynamoDBDocumentClient,
  tableName: string,
  filter: CallFilter,
): Promise<CallRecord[]> {
  const { items: listed } = await queryListing<{ pk: string; sk: string; status?: string }>(
    db,
    tableName,
    keys.callsListing,
    filter,
    filter.status
      ? {
          filters: ['#status = :status'],
          names: { '#status': 'status' },
          values: { ':status': filter.status },
        }
      : { filters: [], names: {}, values: {} },
  );
  const records: CallRecord[] = [];
  for (let i = 0; i < listed.length; i += 100) {
    const batch = listed.slice(i, i + 100);
    let pending: Record<string, unknown>[] | undefined = batch.map(({ pk, sk }) => ({ pk, sk }));
    for (let round = 0; pending && pending.length > 0 && round < 5; round++) {
      const result: BatchGetCommandOutput = await db.send(
        new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending } } }),
      );
      for (const item of result.Responses?.[tableName] ?? []) records.push(callRecordFrom(item));
      pending = result.UnprocessedKeys?.[tableName]?.Keys;
    }
  }
  return records.sort((a, b) => b.receivedAt - a.receivedAt).slice(0, filter.limit);
}

/** The call record and everything recorded beside it (transcript, tools, usage, timeline). */
export async function getCall(
  db: DynamoDBDocumentClient,
  tableName: string,
  callId: string,
): Promise<{ record: CallRecord; parts: Record<string, unknown>[] } | undefined> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await db.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': keys.call(callId).pk },
        ConsistentRead: true,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  const recordItem = items.find((item) => item.sk === keys.call(callId).sk);
  if (!recordItem) return undefined;
  return { record: callRecordFrom(recordItem), parts: items.filter((i) => i !== recordItem) };
}

/**
 * Newest first, up to `range.limit` items. `truncated`: the page cap stopped the query with more
 * left to read (filters dropped most of what it read).
 */
async function queryListing<T>(
  db: DynamoDBDocumentClient,
  tableName: string,
  partition: string,
  range: { since?: number; until?: number; limit: number; before?: string },
  filter: { filters: string[]; names: Record<string, string>; values: Record<string, unknown> },
): Promise<{ items: T[]; truncated: boolean }> {
  // The sort key starts with created_at in Unix seconds; '~' sorts after every id character.
  const low = range.since !== undefined ? String(Math.floor(range.since / 1000)) : '0';
  const untilHigh = range.until !== undefined ? `${Math.floor(range.until / 1000)}#~` : '~';
  // BETWEEN is inclusive: the cursor's own row comes back and is dropped below.
  const high = range.before !== undefined && range.before < untilHigh ? range.before : untilHigh;
  const found: T[] = [];
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES && found.length < range.limit; page++) {
    const result = await db.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: INDEX.name,
        KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :low AND :high',
        ExpressionAttributeNames: {
          '#pk': INDEX.partitionKey,
          '#sk': INDEX.sortKey,
          ...filter.names,
        },
        ExpressionAttributeValues: {
          ':pk': partition,
          ':low': low,
          ':high': high,
          ...filter.values,
        },
        ...(filter.filters.length > 0 ? { FilterExpression: filter.filters.join(' AND ') } : {}),
        ScanIndexForward: false,
        Limit: Math.max(range.limit, 25),
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    found.push(
      ...((result.Items ?? []) as T[]).filter(
        (item) =>
          range.before === undefined ||
          (item as Record<string, unknown>)[INDEX.sortKey] !== range.before,
      ),
    );
    start = result.LastEvaluatedKey;
    if (!start) break;
  }
  return {
    items: found.slice(0, range.limit),
    truncated: start !== undefined && found.length < range.limit,
  };
}
