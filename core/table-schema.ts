/**
 * One DynamoDB table holds everything, keyed by `pk`/`sk`. The CDK construct, local mode and the
 * adapters all read these names from here, so they cannot drift apart.
 */
export const TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  ttlAttribute: 'expiresAt',
  /**
   * The listing index, newest first. Events per category: gsi1pk = `EVENTS#<category>`, gsi1sk =
   * `<created_at>#<event id>`. Calls: gsi1pk = `CALLS`, gsi1sk = `<created_at>#<call_id>` (the
   * summary is read from the call records themselves).
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

export const keys = {
  webhook: (webhookId: string) => ({ pk: `WEBHOOK#${webhookId}`, sk: 'WEBHOOK' }),
  event: (eventId: string) => ({ pk: `EVENT#${eventId}`, sk: 'EVENT' }),
  object: (objectId: string) => ({ pk: `OBJECT#${objectId}`, sk: 'STATE' }),
  eventsByCategory: (category: string) => `EVENTS#${category}`,
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
} as const;
