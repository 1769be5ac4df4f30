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
): Promise<EventSummary[]> {
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
  const perCategory = await Promise.all(
    categories.map((category) =>
      queryListing<EventSummary>(db, tableName, keys.eventsByCategory(category), filter, {
        filters,
        names,
        values,
      }),
    ),
  );
  return perCategory
    .flat()
    .sort((a, b) => b.createdAt - a.createdAt || b.eventId.localeCompare(a.eventId))
    .slice(0, filter.limit);
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
  const listed = await queryListing<{ pk: string; sk: string; status?: string }>(
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

async function queryListing<T>(
  db: DynamoDBDocumentClient,
  tableName: string,
  partition: string,
  range: { since?: number; until?: number; limit: number },
  filter: { filters: string[]; names: Record<string, string>; values: Record<string, unknown> },
): Promise<T[]> {
  // The sort key starts with created_at in Unix seconds; '~' sorts after every id character.
  const low = range.since !== undefined ? String(Math.floor(range.since / 1000)) : '0';
  const high = range.until !== undefined ? `${Math.floor(range.until / 1000)}#~` : '~';
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
    found.push(...((result.Items ?? []) as T[]));
    start = result.LastEvaluatedKey;
    if (!start) break;
  }
  return found.slice(0, range.limit);
}
