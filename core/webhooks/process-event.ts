import { createHash } from 'node:crypto';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricsPublisher } from '../observability/metrics';
import type {
  EventStore,
  HydrationResult,
  Hydrator,
  PayloadStore,
  StoredEventRecord,
} from '../ports/webhooks';
import type { Category } from './categories';
import { type Malformed, readEnvelope } from './envelope';
import { isHydratable } from './hydration';
import {
  applyDetails,
  applyHydrationError,
  applyTransition,
  type ObjectRef,
  type ObjectState,
  objectRefOf,
} from './projection';
import {
  fromMessageAttributes,
  type PayloadRef,
  type QueuedWebhook,
  unwrapBody,
} from './queue-message';
import { decodeUtf8 } from './utf8';

/**
 * What a user handler receives: the verified, stored event, with its projected object.
 *
 * Delivery is at least once: the same event can reach your handler more than once (an SQS
 * redelivery, a retry after your handler or a later step failed, a consumer that timed out, or
 * an operator's `owh events replay --force`). Make the handler idempotent on `eventId`.
 */
export interface ConsumedEvent {
  /**
   * The event's id (`evt_…`): the idempotency key. Every delivery of one event carries the same
   * id, so record it with your side effect (a conditional write, a unique key) and skip the event
   * when it is already there. A malformed event without a usable id gets `malformed_<webhook-id>`,
   * stable across deliveries too.
   */
  readonly eventId: string;
  readonly webhookId: string;
  readonly type: string;
  readonly category: Category;
  /** Unix seconds, from the event. */
  readonly createdAt: number;
  /** Epoch ms when the ingress accepted it. */
  readonly receivedAt: number;
  readonly data: Readonly<Record<string, unknown>>;
  /** The object state after this event (and hydration), when the event names an object. */
  readonly object?: ObjectState;
  /** 1 on the first delivery; use `eventId` as your idempotency key. */
  readonly attempt: number;
  /**
   * Set when the verified body was not a well-formed event (invalid JSON, a type outside the
   * usual pattern, a fractional `created_at`, `data` that is not an object): it is kept and
   * routed anyway. `data` is then `{}` unless the body had a `data` object, and `object` is set
   * only when the type and data were as sent.
   */
  readonly malformed?: Malformed;
}

export type UserHandler = (event: ConsumedEvent) => Promise<void>;

export interface ConsumerDeps {
  readonly store: EventStore;
  readonly hydrator?: Hydrator;
  /** Where claim-checked bodies are read from (S3); needed only for those. */
  readonly payloads?: PayloadStore;
  readonly userHandler?: UserHandler;
  /** Extra per-category work, such as call handling for `realtime`; runs before the user handler. */
  readonly categoryHandler?: (event: ConsumedEvent, log: Logger) => Promise<void>;
  readonly eventTtlSeconds: number;
  readonly clock: () => number;
  readonly log: Logger;
  readonly metrics: MetricsPublisher;
  /**
   * The queue's `maxReceiveCount`, when known: a failure on that attempt is the last one (SQS
   * moves the message to the DLQ), and is logged and counted as dead-lettered.
   */
  readonly maxReceiveCount?: number;
}

const MAX_PROJECTION_RACES = 8;

export function createConsumerHandler(deps: ConsumerDeps) {
  return (event: SQSEvent) => consumeBatch(deps, event);
}

/** Processes records concurrently and reports each failure alone (partial batch response). */
export async function consumeBatch(deps: ConsumerDeps, event: SQSEvent): Promise<SQSBatchResponse> {
  const results = await Promise.allSettled(
    event.Records.map((record) => consumeRecord(deps, record)),
  );
  const batchItemFailures = results.flatMap((result, index) =>
    result.status === 'rejected' ? [{ itemIdentifier: event.Records[index]?.messageId ?? '' }] : [],
  );
  return { batchItemFailures };
}

async function consumeRecord(deps: ConsumerDeps, record: SQSRecord): Promise<void> {
  const message = fromMessageAttributes(record.body, record.messageAttributes);
  const attempt = Number(record.attributes?.ApproximateReceiveCount ?? '1');
  await processMessage(deps, message, attempt);
}

export async function processMessage(
  deps: ConsumerDeps,
  message: QueuedWebhook,
  attempt: number,
): Promise<'processed' | 'skipped'> {
  const { store, clock } = deps;
  const log = deps.log.with({
    webhookId: message.webhookId,
    eventId: message.eventId,
    type: message.type,
    attempt,
  });
  const now = clock();
  const category = { name: 'Category', value: message.category } as const;
  const failed = (error: unknown): never => {
    reportFailure(deps, log, message, attempt, error, now);
    throw error;
  };
  // Reading the payload and storing the body can fail too: on the last attempt that is a dead
  // letter like any other, so it is logged and counted the same way.
  const prepared = await prepare(deps, message, attempt, now).catch(failed);
  if (prepared.kind === 'skipped') {
    log.info(prepared.why);
    deps.metrics([count('EventsSkipped', category)]);
    return 'skipped';
  }
  const { record, event, ref, envelope } = prepared;
  if (message.replay === 'force') log.warn('forced replay', { previously: prepared.previously });

  try {
    let object: ObjectState | undefined;
    if (ref) {
      // Fetch first, so projection and details land in one read-modify-write.
      const hydration =
        deps.hydrator && isHydratable(ref.objectType)
          ? { fetchedAt: clock(), result: await hydrate(deps, deps.hydrator, ref, category) }
          : undefined;
      if (hydration?.result.kind === 'rejected') {
        log.warn('hydration rejected', { error: hydration.result.error });
        deps.metrics([count('HydrationErrors', category)]);
      }
      object = await project(
        deps,
        ref,
        {
          status: ref.status,
          type: event.type,
          eventId: event.id,
          createdAt: event.created_at,
          receivedAt: message.receivedAt,
        },
        hydration,
      );
    }
    const consumed: ConsumedEvent = {
      ...identityOf(event, message),
      data: event.data,
      ...(object ? { object } : {}),
      attempt,
      ...(envelope.malformed ? { malformed: envelope.malformed } : {}),
    };
    if (deps.categoryHandler) await deps.categoryHandler(consumed, log);
    if (deps.userHandler) await deps.userHandler(consumed);
    const done = clock();
    await store.markProcessed(record, attempt, done);
    deps.metrics([
      count('EventsProcessed', category),
      { name: 'ProcessingTime', value: done - now, dimension: category },
      { name: 'EventLatency', value: done - message.receivedAt, dimension: category },
    ]);
    log.info('event processed', {
      category: message.category,
      objectId: ref?.objectId,
      status: object?.status,
      latencyMs: clock() - message.receivedAt,
    });
    return 'processed';
  } catch (error) {
    reportFailure(deps, log, message, attempt, error, now);
    await store
      .markFailed(record, errorMessage(error), attempt, clock())
      .catch((markError: unknown) =>
        log.error('could not record failure', { error: errorMessage(markError) }),
      );
    throw error;
  }
}

/** What `prepare` found: the event to process, or why the message is skipped. */
type Prepared =
  | { readonly kind: 'skipped'; readonly why: string }
  | {
      readonly kind: 'process';
      readonly record: StoredEventRecord;
      readonly event: ReturnType<typeof readEnvelope>['event'];
      readonly envelope: ReturnType<typeof readEnvelope>;
      readonly ref: ReturnType<typeof objectRefOf> | undefined;
      readonly previously: string;
    };

/** The event's identity, as the store keeps it and the handlers receive it. */
function identityOf(event: ReturnType<typeof readEnvelope>['event'], message: QueuedWebhook) {
  return {
    eventId: event.id,
    webhookId: message.webhookId,
    type: event.type,
    category: message.category,
    createdAt: event.created_at,
    receivedAt: message.receivedAt,
  };
}

/** Reads the message's payload and stores the event's body: everything before the handler. */
async function prepare(
  deps: ConsumerDeps,
  message: QueuedWebhook,
  attempt: number,
  now: number,
): Promise<Prepared> {
  const carried = unwrapBody(message.body);
  let text: string | undefined;
  if (carried.kind === 'raw') text = carried.text;
  else
    text = decodeUtf8(
      carried.kind === 'bytes' ? carried.bytes : await readPayload(deps, carried.ref),
    );
  const envelope = readEnvelope(text, {
    webhookId: message.webhookId,
    receivedAt: message.receivedAt,
  });
  const event = envelope.event;
  const ref = envelope.projectable ? objectRefOf(event) : undefined;
  const record: StoredEventRecord = {
    ...identityOf(event, message),
    secretLabel: message.secretLabel,
    ...(message.token ? { token: message.token } : {}),
    payload: message.body,
    ...(carried.kind === 'ref' ? { payloadRef: carried.ref } : {}),
    ...(envelope.malformed
      ? { malformed: envelope.malformed.reason, malformedMessage: envelope.malformed.message }
      : {}),
    ...(ref ? { objectId: ref.objectId } : {}),
    status: 'received',
    attempts: attempt,
    expiresAt: Math.floor(now / 1000) + deps.eventTtlSeconds,
  };
  // The first attempt writes the body once, with its outcome; a retry (or a replay) writes it
  // first as well, so an event whose attempts keep dying still has its payload stored.
  const stored = await deps.store.recordReceived(record, {
    storeFirst: attempt > 1 || message.replay !== undefined,
  });
  // Racing ingress attempts both queued it; the event's head names the other message.
  if (stored === 'duplicate')
    return { kind: 'skipped', why: 'second message of a queued event; dropped' };
  if (stored === 'processed' && message.replay !== 'force')
    return { kind: 'skipped', why: 'event already processed; skipped' };
  return { kind: 'process', record, event, envelope, ref, previously: stored };
}

/**
 * Logs and counts a failed attempt; on the queue's last receive (`maxReceiveCount`) SQS moves the
 * message to the DLQ next, so that is logged and counted as a dead letter too.
 */
function reportFailure(
  deps: ConsumerDeps,
  log: Logger,
  message: QueuedWebhook,
  attempt: number,
  error: unknown,
  startedAt: number,
): void {
  const category = { name: 'Category', value: message.category } as const;
  log.error('event processing failed', { error: errorMessage(error) });
  const last = deps.maxReceiveCount !== undefined && attempt >= deps.maxReceiveCount;
  if (last)
    log.error('event dead-lettered', {
      category: message.category,
      maxReceiveCount: deps.maxReceiveCount,
      error: errorMessage(error),
      next: 'SQS moves the message to the DLQ; owh events show, then owh redrive',
    });
  deps.metrics([
    count('ProcessingFailures', category),
    { name: 'ProcessingTime', value: deps.clock() - startedAt, dimension: category },
    ...(last ? [count('EventsDeadLettered', category)] : []),
  ]);
}

/** A claim-checked body, checked against its SHA-256. A failure retries the message. */
async function readPayload(deps: ConsumerDeps, ref: PayloadRef): Promise<Buffer> {
  if (!deps.payloads)
    throw new Error(`No payload store to read the claim-checked ${ref.key} from.`);
  const bytes = await deps.payloads.get(ref);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== ref.sha256 || bytes.length !== ref.bytes)
    throw new Error(`The claim-checked body ${ref.key} does not match its reference.`);
  return bytes;
}

/** A retryable hydration failure is counted, then thrown: the message is retried. */
async function hydrate(
  deps: ConsumerDeps,
  hydrator: Hydrator,
  ref: ObjectRef,
  category: { readonly name: 'Category'; readonly value: string },
): Promise<HydrationResult> {
  try {
    return await hydrator.hydrate(ref.objectType, ref.objectId);
  } catch (error) {
    deps.metrics([count('HydrationErrors', category)]);
    throw error;
  }
}

/**
 * Applies the transition and any fetched details in one read-modify-write; on a lost race it
 * reads again. Duplicate transitions change nothing, but fresh details are still recorded.
 */
async function project(
  deps: ConsumerDeps,
  ref: ObjectRef,
  transition: Parameters<typeof applyTransition>[2],
  hydration: { fetchedAt: number; result: HydrationResult } | undefined,
): Promise<ObjectState> {
  return updateObject(deps, ref.objectId, (previous) => {
    const applied = applyTransition(previous, ref, transition, deps.clock());
    let next = applied.state;
    if (hydration?.result.kind === 'fetched') {
      next = applyDetails(next, hydration.result.details, hydration.fetchedAt);
    } else if (hydration?.result.kind === 'rejected') {
      next = applyHydrationError(next, hydration.result.error);
    }
    return applied.changed || next !== applied.state ? next : undefined;
  });
}

async function updateObject(
  deps: ConsumerDeps,
  objectId: string,
  change: (previous: ObjectState | undefined) => ObjectState | undefined,
): Promise<ObjectState> {
  for (let race = 0; race < MAX_PROJECTION_RACES; race++) {
    const previous = await deps.store.getObject(objectId);
    const next = change(previous);
    if (next === undefined) {
      if (previous === undefined) throw new Error(`No state for object ${objectId}.`);
      return previous;
    }
    if (await deps.store.putObject(next, previous?.version)) return next;
  }
  throw new Error(`Object ${objectId} kept changing under us; will retry.`);
}
