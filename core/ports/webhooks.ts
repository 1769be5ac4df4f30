import type { MalformedReason } from '../reasons';
import type { Category } from '../webhooks/categories';
import type { ObjectState } from '../webhooks/projection';
import type { PayloadRef, QueuedWebhook } from '../webhooks/queue-message';

/** Dedupe on `webhook-id`: one delivery claims it, later ones see it. */
export interface WebhookLedger {
  claim(claim: WebhookClaim): Promise<ClaimOutcome>;
  /** Undoes our own claim (matched by token) when the event could not be queued. */
  release(webhookId: string, token: string): Promise<void>;
  /**
   * Records that our own claim (matched by token) queued the event: from then on every delivery
   * of this `webhook-id` is a duplicate, whatever the consumer's lag.
   */
  markQueued(webhookId: string, token: string): Promise<void>;
  /** Called by the consumer once the event is durably in the pipeline. */
  markConsumed(webhookId: string): Promise<void>;
}

export interface WebhookClaim {
  readonly webhookId: string;
  readonly eventId: string;
  readonly type: string;
  readonly category: Category;
  readonly token: string;
  /** Epoch ms. */
  readonly now: number;
  /** A claim older than this (epoch ms) was left by an attempt that died: take it over. */
  readonly staleBefore: number;
  /** Epoch seconds, for DynamoDB TTL. */
  readonly expiresAt: number;
}

export type ClaimOutcome =
  | { readonly kind: 'claimed' }
  /**
   * `queued`: an attempt queued it (and answered 200). `consumed`: a consumer has it. `claimed`:
   * another attempt is in flight right now and may still fail to queue it.
   */
  | {
      readonly kind: 'duplicate';
      readonly state: 'consumed' | 'queued' | 'claimed';
      readonly eventId?: string;
    };

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

export interface EventStore {
  /**
   * Stores the event if it is new. Returns `processed` when an earlier delivery already finished
   * it, so the caller can skip it with no second effect.
   */
  recordReceived(record: StoredEventRecord): Promise<'new' | 'pending' | 'processed'>;
  markProcessed(eventId: string, attempt: number, now: number): Promise<void>;
  markFailed(eventId: string, error: string, attempt: number, now: number): Promise<void>;
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
