import type { Category } from '../webhooks/categories';
import type { ObjectState } from '../webhooks/projection';
import type { QueuedWebhook } from '../webhooks/queue-message';

/** Dedupe on `webhook-id`: one delivery claims it, later ones see it. */
export interface WebhookLedger {
  claim(claim: WebhookClaim): Promise<ClaimOutcome>;
  /** Undoes our own claim (matched by token) when the event could not be queued. */
  release(webhookId: string, token: string): Promise<void>;
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
  /** `consumed`: a consumer has it. `claimed`: another attempt is in flight right now. */
  | {
      readonly kind: 'duplicate';
      readonly state: 'consumed' | 'claimed';
      readonly eventId?: string;
    };

export interface EventPublisher {
  publish(message: QueuedWebhook): Promise<void>;
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
  readonly payload: string;
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
