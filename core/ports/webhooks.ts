import type { MalformedReason } from '../reasons';
import type { Category } from '../webhooks/categories';
import type { ObjectState } from '../webhooks/projection';
import type { PayloadRef, QueuedWebhook } from '../webhooks/queue-message';

/**
 * Dedupe, written after queueing: the event's head (`core/table-schema.ts` `keys.event`), put
 * once by the attempt that queued the event. A head means a message for the event is durably on
 * its queue, so every later delivery of the event is answered `200 duplicate`, whatever the
 * consumer's lag; and since nothing is written before queueing, no attempt ever holds a claim
 * that another must wait for (no 409). Two attempts racing both queue the event: the head keeps
 * one token, and the consumer drops the message whose token it does not name.
 *
 * The head is keyed by the event id: a signed body fixes its event id, so one `webhook-id` is one
 * event id (Standard Webhooks: the id stays the same when a message is re-sent); a resend under a
 * new `webhook-id` is the same event and is a duplicate too.
 */
export interface WebhookLedger {
  /** Whether a head is already there (an eventually consistent read: a hint, never a decision). */
  seen(eventId: string): Promise<boolean>;
  /** Puts the head if there is none; `duplicate` when another attempt's head is there. */
  record(head: EventHead): Promise<HeadOutcome>;
}

/** What an event's head holds: the listing row, and the token of the message that counts. */
export interface EventHead {
  readonly eventId: string;
  readonly webhookId: string;
  readonly type: string;
  readonly category: Category;
  /** Unix seconds, from the event. */
  readonly createdAt: number;
  /** Epoch ms when the ingress accepted the delivery. */
  readonly receivedAt: number;
  readonly secretLabel: string;
  /** The queued message's token (also a message attribute); absent on heads of older messages. */
  readonly token?: string;
  readonly objectId?: string;
  readonly malformed?: MalformedReason;
  readonly malformedMessage?: string;
  /** Epoch seconds, for DynamoDB TTL. */
  readonly expiresAt: number;
}

export type HeadOutcome =
  | { readonly kind: 'recorded' }
  | { readonly kind: 'duplicate'; readonly webhookId?: string };

export interface EventPublisher {
  publish(message: QueuedWebhook): Promise<void>;
}

/** Claim check: bodies too large for a queue message or an item are kept here (S3). */
export interface PayloadStore {
  /** Stores the exact bytes; the same bytes always get the same reference. */
  put(body: Uint8Array): Promise<PayloadRef>;
  /** The bytes, checked against the reference's SHA-256. */
  get(ref: PayloadRef): Promise<Buffer>;
}

export interface SecretSource {
  getSecretString(secretId: string): Promise<string>;
}

export type EventStatus = 'received' | 'processed' | 'failed';

export interface StoredEventRecord {
  readonly eventId: string;
  readonly webhookId: string;
  readonly type: string;
  readonly category: Category;
  readonly createdAt: number;
  readonly receivedAt: number;
  readonly secretLabel: string;
  /** The token of the message the head names (see `WebhookLedger`). */
  readonly token?: string;
  /**
   * The queue message body: the raw webhook body, or an `owh_body` wrapper (see
   * `core/webhooks/queue-message.ts`): a claim check's reference, or base64 for a body that is
   * not text. `owh replay` sends it back as it is.
   */
  readonly payload: string;
  /** Where a claim-checked body is (also inside `payload`). */
  readonly payloadRef?: PayloadRef;
  /** Why a verified body was not a well-formed event; kept, routed and acknowledged anyway. */
  readonly malformed?: MalformedReason;
  readonly malformedMessage?: string;
  readonly objectId?: string;
  readonly status: EventStatus;
  readonly attempts: number;
  readonly lastError?: string;
  readonly processedAt?: number;
  readonly expiresAt: number;
}

/**
 * Events as the consumer keeps them: the head (written by the ingress, or here if the message
 * came first) and the body (payload and status). The body is written once per attempt, with the
 * outcome; a retry writes it first as well, so an event that keeps failing keeps its payload.
 */
export interface EventStore {
  /**
   * Before processing. Writes the head if there is none, and with `storeFirst` the body (status
   * `received`) if there is none. Returns `processed` when an earlier delivery already finished
   * the event, so the caller can skip it with no second effect, and `duplicate` when the head
   * names another message's token (a second message queued by racing attempts).
   */
  recordReceived(
    record: StoredEventRecord,
    options: { readonly storeFirst: boolean },
  ): Promise<'new' | 'pending' | 'processed' | 'duplicate'>;
  /** Writes the body with status `processed` (the payload with it). */
  markProcessed(record: StoredEventRecord, attempt: number, now: number): Promise<void>;
  /** Writes the body with status `failed`, unless a delivery already processed it. */
  markFailed(record: StoredEventRecord, error: string, attempt: number, now: number): Promise<void>;
  getEvent(eventId: string): Promise<StoredEventRecord | undefined>;
  getObject(objectId: string): Promise<ObjectState | undefined>;
  /** Writes only if the stored version is still `expectedVersion`; false on a lost race. */
  putObject(state: ObjectState, expectedVersion: number | undefined): Promise<boolean>;
}

export type HydrationResult =
  | { readonly kind: 'fetched'; readonly details: Record<string, unknown> }
  | { readonly kind: 'unsupported' }
  /** The API answered with a client error (such as 404) that retrying will not fix. */
  | { readonly kind: 'rejected'; readonly error: string };

/** Fetches the object a webhook names (see `core/webhooks/hydration.ts` for which ones). */
export interface Hydrator {
  hydrate(objectType: string, objectId: string): Promise<HydrationResult>;
}
