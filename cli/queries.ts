import { createHash } from 'node:crypto';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { callRecordFrom } from '#adapters/dynamo-call-store';
import type { CallChannel, CallRecord } from '#core/ports/calls';
import type { StoredEventRecord } from '#core/ports/webhooks';
import { keys, TABLE_SCHEMA } from '#core/table-schema';
import { CATEGORIES, type Category, categoryOf } from '#core/webhooks/categories';
import { type PayloadRef, unwrapBody } from '#core/webhooks/queue-message';
import { type PayloadView, payloadView } from './views';

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
/** Rows read per query of one listing partition; more are read as the merge needs them. */
const SHARD_PAGE = 10;
/** The same, with a type filter. */
const FILTERED_SHARD_PAGE = 100;
/** Listing partitions queried at once. */
const PARALLEL_QUERIES = 8;

/** One listing partition, read lazily newest first. */
interface PartitionStream {
  readonly partition: string;
  readonly buffer: Record<string, unknown>[];
  start?: Record<string, unknown>;
  done: boolean;
  pages: number;
  /** Stopped by the page cap with rows left: the sort key it stopped at. */
  truncatedAt?: string;
}

/**
 * Events newest first, across every listing partition of the chosen categories (each category is
 * split into `EVENT_LISTING_SHARDS` index partitions, plus the unsharded one of older events):
 * a k-way merge on the index's sort key, reading each partition a page at a time as the merge
 * needs it, so the order is exact and a cursor resumes exactly. The status is on each event's
 * body, read for the rows the merge takes (a batch read); `--status` filters after that read.
 */
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
  const typeFilter: ListingFilter | undefined = filter.type
    ? {
        expression: typePrefix !== undefined ? 'begins_with(#type, :type)' : '#type = :type',
        names: { '#type': 'type' },
        values: { ':type': typePrefix ?? filter.type },
      }
    : undefined;
  const range = sortKeyRange(filter);

  const streams: PartitionStream[] = categories.flatMap((category) =>
    keys
      .eventListingPartitions(category)
      .map((partition) => ({ partition, buffer: [], done: false, pages: 0 })),
  );
  const fill = async (stream: PartitionStream) => {
    while (stream.buffer.length === 0 && !stream.done) {
      if (stream.pages >= MAX_PAGES) {
        stream.done = true;
        stream.truncatedAt = String(stream.start?.[INDEX.sortKey] ?? '');
        return;
      }
      stream.pages++;
      const page = await queryListingPage(db, tableName, stream.partition, range, typeFilter, {
        // A type filter can drop most of what a page reads: read more per page then.
        limit: typeFilter ? FILTERED_SHARD_PAGE : SHARD_PAGE,
        start: stream.start,
      });
      stream.buffer.push(...page.items);
      stream.start = page.next;
      if (!stream.start) stream.done = true;
    }
  };
  /** The next row in index order (newest first), or undefined when every partition is read. */
  const next = async (): Promise<Record<string, unknown> | undefined> => {
    // A few queries at a time: one page can need a query on each of dozens of partitions.
    const empty = streams.filter((stream) => stream.buffer.length === 0 && !stream.done);
    for (let i = 0; i < empty.length; i += PARALLEL_QUERIES)
      await Promise.all(empty.slice(i, i + PARALLEL_QUERIES).map(fill));
    let best: PartitionStream | undefined;
    for (const stream of streams) {
      const head = stream.buffer[0];
      if (!head) continue;
      if (!best || String(head[INDEX.sortKey]) > String(best.buffer[0]?.[INDEX.sortKey]))
        best = stream;
    }
    const row = best?.buffer[0];
    // A partition cut short by the page cap may hold unread rows older than where it stopped:
    // nothing older than that is given out, so the order stays exact and the cursor resumes there.
    const floor = streams.reduce(
      (max, stream) =>
        stream.truncatedAt !== undefined && stream.truncatedAt > max ? stream.truncatedAt : max,
      '',
    );
    if (!row || String(row[INDEX.sortKey]) < floor) return undefined;
    return best?.buffer.shift();
  };

  const events: EventSummary[] = [];
  let more = false;
  while (events.length <= filter.limit) {
    // Take rows in order, then read their status in one batch.
    const rows: Record<string, unknown>[] = [];
    while (rows.length < filter.limit + 1 - events.length) {
      const row = await next();
      if (!row) break;
      rows.push(row);
    }
    if (rows.length === 0) break;
    for (const event of await withStatus(db, tableName, rows)) {
      if (filter.status !== undefined && event.status !== filter.status) continue;
      events.push(event);
    }
  }
  if (events.length > filter.limit) more = true;
  const cutAt = streams
    .map((stream) => stream.truncatedAt)
    .filter((key): key is string => key !== undefined && key !== '')
    .sort()
    .at(-1);
  if (cutAt !== undefined) more = true;
  const page = events.slice(0, filter.limit);
  const last = page.at(-1);
  // Nothing matched above where a partition was cut short: the next page starts there.
  const cursor = last ? eventCursor(last) : cutAt;
  return { events: page, ...(more && cursor ? { next: cursor } : {}) };
}

/** Listing rows as summaries: the status and attempts from each event's body. */
async function withStatus(
  db: DynamoDBDocumentClient,
  tableName: string,
  rows: readonly Record<string, unknown>[],
): Promise<EventSummary[]> {
  // Rows written before the head/body split carry their own status.
  const needed = rows.filter((row) => row.status === undefined).map((row) => String(row.eventId));
  const bodies = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < needed.length; i += 100) {
    let pending: Record<string, unknown>[] | undefined = needed
      .slice(i, i + 100)
      .map((eventId) => keys.eventBody(eventId));
    for (let round = 0; pending && pending.length > 0 && round < 5; round++) {
      const result: BatchGetCommandOutput = await db.send(
        new BatchGetCommand({
          RequestItems: {
            [tableName]: {
              Keys: pending,
              ProjectionExpression: 'pk, #status, attempts',
              ExpressionAttributeNames: { '#status': 'status' },
            },
          },
        }),
      );
      for (const item of result.Responses?.[tableName] ?? [])
        bodies.set(String(item.pk).slice('EVENT#'.length), item);
      pending = result.UnprocessedKeys?.[tableName]?.Keys;
    }
  }
  return rows.map((row) => {
    const body = bodies.get(String(row.eventId));
    const status = (body?.status ?? row.status ?? 'received') as EventSummary['status'];
    const attempts = Number(body?.attempts ?? row.attempts ?? 0);
    return {
      eventId: String(row.eventId),
      webhookId: String(row.webhookId),
      type: String(row.type),
      category: row.category as Category,
      createdAt: Number(row.createdAt),
      receivedAt: Number(row.receivedAt),
      status,
      attempts,
      ...(typeof row.objectId === 'string' ? { objectId: row.objectId } : {}),
    };
  });
}

export interface CallFilter {
  readonly status?: string;
  /** `sip` (records without a channel too: written before channels) or `webrtc`. */
  readonly channel?: CallChannel;
  readonly since?: number;
  readonly until?: number;
  readonly limit: number;
}

/**
 * Listing rounds a `--channel` filter may take: the channel is not in the listing index's
 * projection (which cannot change in place), so it is checked on the records themselves, a
 * round of up to `limit` listed calls at a time, until `limit` match or the calls run out.
 */
const MAX_CHANNEL_ROUNDS = 20;

/** Newest first: the listing index gives the ids, the records give the summary. */
export async function listCalls(
  db: DynamoDBDocumentClient,
  tableName: string,
  filter: CallFilter,
): Promise<CallRecord[]> {
  const records: CallRecord[] = [];
  let before: string | undefined;
  for (let round = 0; round < MAX_CHANNEL_ROUNDS; round++) {
    const { items: listed, truncated } = await queryListing<{
      pk: string;
      sk: string;
      status?: string;
      [INDEX.sortKey]?: string;
    }>(
      db,
      tableName,
      keys.callsListing,
      { ...filter, ...(before !== undefined ? { before } : {}) },
      filter.status
        ? {
            expression: '#status = :status',
            names: { '#status': 'status' },
            values: { ':status': filter.status },
          }
        : undefined,
    );
    const found = await callRecordsOf(db, tableName, listed);
    records.push(
      ...(filter.channel ? found.filter((r) => (r.channel ?? 'sip') === filter.channel) : found),
    );
    if (!filter.channel || records.length >= filter.limit) break;
    if (listed.length < filter.limit && !truncated) break;
    before = listed.at(-1)?.[INDEX.sortKey];
    if (before === undefined) break;
  }
  return records.sort((a, b) => b.receivedAt - a.receivedAt).slice(0, filter.limit);
}

async function callRecordsOf(
  db: DynamoDBDocumentClient,
  tableName: string,
  listed: readonly { pk: string; sk: string }[],
): Promise<CallRecord[]> {
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
  return records;
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

/** A filter on the listing index's projected attributes (DynamoDB expression syntax). */
interface ListingFilter {
  readonly expression: string;
  readonly names: Record<string, string>;
  readonly values: Record<string, unknown>;
}

/** The listing index's sort-key range between epoch-ms bounds, and up to a cursor if one is given. */
interface SortKeyRange {
  readonly low: string;
  readonly high: string;
  /** The cursor: its own row is inside the range (BETWEEN is inclusive) and is dropped. */
  readonly before?: string | undefined;
}

function sortKeyRange(range: { since?: number; until?: number; before?: string }): SortKeyRange {
  // The sort key starts with created_at in Unix seconds; '~' sorts after every id character.
  const low = range.since !== undefined ? String(Math.floor(range.since / 1000)) : '0';
  const untilHigh = range.until !== undefined ? `${Math.floor(range.until / 1000)}#~` : '~';
  const high = range.before !== undefined && range.before < untilHigh ? range.before : untilHigh;
  return { low, high, before: range.before };
}

/** One query of a listing partition, newest first, without the cursor's own row. */
async function queryListingPage(
  db: DynamoDBDocumentClient,
  tableName: string,
  partition: string,
  range: SortKeyRange,
  filter: ListingFilter | undefined,
  page: { readonly limit: number; readonly start: Record<string, unknown> | undefined },
): Promise<{ items: Record<string, unknown>[]; next: Record<string, unknown> | undefined }> {
  const result = await db.send(
    new QueryCommand({
      TableName: tableName,
      IndexName: INDEX.name,
      KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :low AND :high',
      ExpressionAttributeNames: {
        '#pk': INDEX.partitionKey,
        '#sk': INDEX.sortKey,
        ...(filter?.names ?? {}),
      },
      ExpressionAttributeValues: {
        ':pk': partition,
        ':low': range.low,
        ':high': range.high,
        ...(filter?.values ?? {}),
      },
      ...(filter ? { FilterExpression: filter.expression } : {}),
      ScanIndexForward: false,
      Limit: page.limit,
      ...(page.start ? { ExclusiveStartKey: page.start } : {}),
    }),
  );
  return {
    items: (result.Items ?? []).filter(
      (item) => range.before === undefined || item[INDEX.sortKey] !== range.before,
    ),
    next: result.LastEvaluatedKey,
  };
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
  filter: ListingFilter | undefined,
): Promise<{ items: T[]; truncated: boolean }> {
  const keyRange = sortKeyRange(range);
  const found: T[] = [];
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES && found.length < range.limit; page++) {
    const result = await queryListingPage(db, tableName, partition, keyRange, filter, {
      limit: Math.max(range.limit, 25),
      start,
    });
    found.push(...(result.items as T[]));
    start = result.next;
    if (!start) break;
  }
  return {
    items: found.slice(0, range.limit),
    truncated: start !== undefined && found.length < range.limit,
  };
}

/**
 * An event's payload as `events show` prints it: a claim-checked body is read from S3 (and
 * checked against its SHA-256); if it cannot be, the view says why and shows the reference.
 */
export async function eventPayloadView(
  payload: string,
  readPayload: (ref: PayloadRef) => Promise<Buffer> = defaultReadPayload,
): Promise<PayloadView> {
  let ref: PayloadRef | undefined;
  try {
    const carried = payload ? unwrapBody(payload) : undefined;
    if (carried?.kind === 'ref') ref = carried.ref;
  } catch {
    ref = undefined;
  }
  if (!ref) return payloadView(payload);
  try {
    const bytes = await readPayload(ref);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (sha256 !== ref.sha256) throw new Error('the object does not match its SHA-256');
    return payloadView(payload, { fetched: bytes });
  } catch (error) {
    return payloadView(payload, {
      fetchError: error instanceof Error ? error.message : String(error),
    });
  }
}

async function defaultReadPayload(ref: PayloadRef): Promise<Buffer> {
  const { s3PayloadStore } = await import('#adapters/s3-payload-store');
  return s3PayloadStore(ref.bucket).get(ref);
}
