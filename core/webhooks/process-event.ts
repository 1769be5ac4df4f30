import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricsPublisher } from '../observability/metrics';
import type { EventStore, HydrationResult, Hydrator, WebhookLedger } from '../ports/webhooks';
import type { Category } from './categories';
import { parseEnvelope } from './envelope';
import { isHydratable } from './hydration';
import {
  applyDetails,
  applyHydrationError,
  applyTransition,
  type ObjectRef,
  type ObjectState,
  objectRefOf,
} from './projection';
import { fromMessageAttributes, type QueuedWebhook } from './queue-message';

/** What a user handler receives: the verified, stored event, with its projected object. */
export interface ConsumedEvent {
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
}

export type UserHandler = (event: ConsumedEvent) => Promise<void>;

export interface ConsumerDeps {
  readonly store: EventStore;
  readonly ledger: Pick<WebhookLedger, 'markConsumed'>;
  readonly hydrator?: Hydrator;
  readonly userHandler?: UserHandler;
  /** Extra per-category work, such as call handling for `realtime`; runs before the user handler. */
  readonly categoryHandler?: (event: ConsumedEvent, log: Logger) => Promise<void>;
  readonly eventTtlSeconds: number;
  readonly clock: () => number;
  readonly log: Logger;
  readonly metrics: MetricsPublisher;
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
  const parsed = parseEnvelope(message.body);
  if (!parsed.ok) throw new Error(`Queued body is not an event envelope: ${parsed.message}`);
  const event = parsed.event;
  const ref = objectRefOf(event);
  const now = clock();
  const category = { name: 'Category', value: message.category } as const;

  const stored = await store.recordReceived({
    eventId: event.id,
    webhookId: message.webhookId,
    type: event.type,
    category: message.category,
    createdAt: event.created_at,
    receivedAt: message.receivedAt,
    secretLabel: message.secretLabel,
    payload: message.body,
    ...(ref ? { objectId: ref.objectId } : {}),
    status: 'received',
    attempts: attempt,
    expiresAt: Math.floor(now / 1000) + deps.eventTtlSeconds,
  });
  // From here on the event is durable on our side: the ingress may answer "duplicate".
  await deps.ledger.markConsumed(message.webhookId);
  if (message.replay === 'force') log.warn('forced replay', { previously: stored });
  else if (stored === 'processed') {
    log.info('event already processed; skipped');
    deps.metrics([count('EventsSkipped', category)]);
    return 'skipped';
  }

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
      eventId: event.id,
      webhookId: message.webhookId,
      type: event.type,
      category: message.category,
      createdAt: event.created_at,
      receivedAt: message.receivedAt,
      data: event.data,
      ...(object ? { object } : {}),
      attempt,
    };
    if (deps.categoryHandler) await deps.categoryHandler(consumed, log);
    if (deps.userHandler) await deps.userHandler(consumed);
    const done = clock();
    await store.markProcessed(event.id, attempt, done);
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
    log.error('event processing failed', { error: errorMessage(error) });
    deps.metrics([
      count('ProcessingFailures', category),
      { name: 'ProcessingTime', value: clock() - now, dimension: category },
    ]);
    await store
      .markFailed(event.id, errorMessage(error), attempt, clock())
      .catch((markError: unknown) =>
        log.error('could not record failure', { error: errorMessage(markError) }),
      );
    throw error;
  }
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
