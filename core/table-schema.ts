/**
 * One DynamoDB table holds everything, keyed by `pk`/`sk`. The CDK construct, local mode and the
 * adapters all read these names from here, so they cannot drift apart.
 */
export const TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  ttlAttribute: 'expiresAt',
  /**
   * The listing index, newest first. Events: gsi1pk = `EVENTS#<category>#<shard>` (one of
   * `EVENT_LISTING_SHARDS` partitions per category, picked by a hash of the event id, so that no
   * single index partition takes a whole category's write rate), gsi1sk = `<created_at>#<event id>`;
   * `owh events list` queries every shard and merges them by the sort key. Items written before
   * the sharding sit in `EVENTS#<category>` (`keys.legacyEventsByCategory`) and are listed too.
   * Calls: gsi1pk = `CALLS`, gsi1sk = `<created_at>#<call_id>` (the summary is read from the call
   * records themselves).
   *
   * Only an event's head item (written once, by the ingress) carries the index keys, and none of
   * its attributes ever changes, so each event costs exactly one index write. The projection below
   * is unchanged from before the head/body split (a GSI's projection cannot be changed in place);
   * `status` and `attempts` are no longer on the head: the listing reads them from the body.
   */
  eventsByCategoryIndex: {
    name: 'eventsByCategory',
    partitionKey: 'gsi1pk',
    sortKey: 'gsi1sk',
    // Listing needs the summary fields only; payloads stay in the base table.
    projectedAttributes: [
      'type',
      'category',
      'status',
      'webhookId',
      'eventId',
      'createdAt',
      'receivedAt',
      'objectId',
      'attempts',
    ],
  },
} as const;

/**
 * Index partitions per category. A partition takes at most 1,000 write units per second
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html),
 * and each event writes one index entry, so one partition per category capped a category near
 * 1,000 events/s, and a sustained 500/s was already half of it. 8 shards lift that to about
 * 8,000 events/s per category, past what the ingress's reserved concurrency lets in; a listing
 * page costs 9 small queries per category (the shards and the unsharded partition of older
 * events).
 */
export const EVENT_LISTING_SHARDS = 8;

/** The shard of an event: FNV-1a of its id, so every writer and reader agrees without a lookup. */
export function listingShard(eventId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < eventId.length; i++) {
    hash ^= eventId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % EVENT_LISTING_SHARDS;
}

export const keys = {
  /** Dedupe records of the ingress before the event head replaced them (read by nothing new). */
  webhook: (webhookId: string) => ({ pk: `WEBHOOK#${webhookId}`, sk: 'WEBHOOK' }),
  /**
   * An event's head: the dedupe record and the listing row, written once by the ingress once the
   * event is queued (never updated). Events stored before the head/body split have their whole
   * record (payload and status) on this key.
   */
  event: (eventId: string) => ({ pk: `EVENT#${eventId}`, sk: 'EVENT' }),
  /** An event's body: its payload (compressed) and processing status, beside the head. */
  eventBody: (eventId: string) => ({ pk: `EVENT#${eventId}`, sk: 'BODY' }),
  object: (objectId: string) => ({ pk: `OBJECT#${objectId}`, sk: 'STATE' }),
  /** The listing partition of an event: its category's shard. */
  eventsByCategory: (category: string, eventId: string) =>
    `EVENTS#${category}#${String(listingShard(eventId)).padStart(2, '0')}`,
  /** Every listing partition of a category, the unsharded one of older items last. */
  eventListingPartitions: (category: string) => [
    ...Array.from(
      { length: EVENT_LISTING_SHARDS },
      (_, shard) => `EVENTS#${category}#${String(shard).padStart(2, '0')}`,
    ),
    `EVENTS#${category}`,
  ],
  /** The listing partition of call records. Calls arrive at human rates: one partition is fine. */
  callsListing: 'CALLS',
  call: (callId: string) => ({ pk: `CALL#${callId}`, sk: 'CALL' }),
  /** Transcript lines, tool calls, usage and errors sit beside the call record. */
  callPart: (callId: string, sk: string) => ({ pk: `CALL#${callId}`, sk }),
  /** One counter of calls holding capacity, for the account-wide concurrency limit. */
  callCapacity: { pk: 'CALLS', sk: 'CAPACITY' },
  /** Which worker holds each call's sideband: one partition, listed only when a worker died. */
  lease: (callId: string) => ({ pk: 'LEASES', sk: callId }),
  leasePartition: 'LEASES',
  /** One lease-renewal item per worker: renewal costs one write, however many calls it holds. */
  worker: (owner: string) => ({ pk: 'WORKERS', sk: owner }),
  workerPartition: 'WORKERS',
  /**
   * A fixed-window request counter (the WebRTC session endpoint's per-IP limit in `open` mode):
   * one item per key and window start, expired by the table's TTL.
   */
  rateWindow: (key: string, windowStart: number) => ({
    pk: `RATE#${key}`,
    sk: String(windowStart),
  }),
} as const;

/** The attributes of an event's head item (`keys.event`): every one set once, never updated. */
export function eventHeadItem(head: {
  readonly eventId: string;
  readonly webhookId: string;
  readonly type: string;
  readonly category: string;
  readonly createdAt: number;
  readonly receivedAt: number;
  readonly secretLabel: string;
  readonly token?: string | undefined;
  readonly objectId?: string | undefined;
  readonly malformed?: string | undefined;
  readonly malformedMessage?: string | undefined;
  readonly expiresAt: number;
}): Record<string, string | number> {
  const index = TABLE_SCHEMA.eventsByCategoryIndex;
  return {
    ...keys.event(head.eventId),
    [index.partitionKey]: keys.eventsByCategory(head.category, head.eventId),
    [index.sortKey]: `${head.createdAt}#${head.eventId}`,
    eventId: head.eventId,
    webhookId: head.webhookId,
    type: head.type,
    category: head.category,
    createdAt: head.createdAt,
    receivedAt: head.receivedAt,
    secretLabel: head.secretLabel,
    ...(head.token ? { token: head.token } : {}),
    ...(head.objectId ? { objectId: head.objectId } : {}),
    ...(head.malformed ? { malformed: head.malformed } : {}),
    ...(head.malformedMessage ? { malformedMessage: head.malformedMessage.slice(0, 300) } : {}),
    expiresAt: head.expiresAt,
  };
}
