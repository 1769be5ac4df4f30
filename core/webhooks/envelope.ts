import type { EnvelopeFailureCode, MalformedReason } from '../reasons';
import type { Failure } from '../result';

/** The OpenAI webhook envelope. `data` is typed per event type further in. */
export interface WebhookEvent {
  readonly id: string;
  readonly type: string;
  readonly created_at: number;
  readonly data: Readonly<Record<string, unknown>>;
  readonly object?: string;
}

// Types become DynamoDB attributes and metric dimensions: keep them short and printable.
const TYPE_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;
const MAX_ID_LENGTH = 256;

export type EnvelopeResult =
  | { readonly ok: true; readonly event: WebhookEvent }
  | Failure<EnvelopeFailureCode>;

/** Parses the verified body. Called only after the signature has been checked. */
export function parseEnvelope(body: string): EnvelopeResult {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return fail('invalid_json', 'The body is not valid JSON.');
  }
  if (!isPlainObject(value)) return fail('invalid_envelope', 'The body must be a JSON object.');
  const { id, type, created_at: createdAt, data } = value;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) {
    return fail('invalid_envelope', 'The event needs a string "id" of 1 to 256 characters.');
  }
  if (typeof type !== 'string' || !TYPE_PATTERN.test(type)) {
    return fail('invalid_envelope', 'The event needs a "type" such as "batch.completed".');
  }
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || createdAt < 0) {
    return fail('invalid_envelope', 'The event needs "created_at" as unix seconds.');
  }
  if (!isPlainObject(data)) return fail('invalid_envelope', 'The event needs a "data" object.');
  return { ok: true, event: value as unknown as WebhookEvent };
}

/** A verified body that is not a well-formed envelope: kept, with why. */
export interface Malformed {
  readonly reason: MalformedReason;
  readonly message: string;
}

/** The event a verified body stands for, well-formed or not. */
export interface Envelope {
  /**
   * Well-formed: the event as sent. Malformed: what could be read of it, with stand-ins for the
   * rest: the id `malformed_<webhook-id>` (stable across redeliveries), the type with characters
   * outside `[A-Za-z0-9_.:-]` replaced by `_` (`unknown` if none), `created_at` rounded down (the
   * delivery time if unusable), and `{}` for `data` that is not an object.
   */
  readonly event: WebhookEvent;
  readonly malformed?: Malformed;
  /** The type and data are as sent, so the event may be projected and hydrated. */
  readonly projectable: boolean;
}

/** What a malformed body's stand-ins are made from: the delivery's own facts. */
export interface DeliveryFacts {
  readonly webhookId: string;
  /** Epoch ms. */
  readonly receivedAt: number;
}

/**
 * Reads a verified body as an event, and never refuses it: a body `parseEnvelope` rejects is kept
 * as a malformed event (see `Envelope`). `text` is undefined when the bytes were not UTF-8.
 */
export function readEnvelope(text: string | undefined, facts: DeliveryFacts): Envelope {
  const parsed: EnvelopeResult =
    text === undefined
      ? { ok: false, status: 400, code: 'invalid_json', message: 'The body is not UTF-8.' }
      : parseEnvelope(text);
  if (parsed.ok) return { event: parsed.event, projectable: true };
  let value: unknown;
  try {
    value = text === undefined ? undefined : JSON.parse(text);
  } catch {
    value = undefined;
  }
  const o: Record<string, unknown> = isPlainObject(value) ? value : {};
  const { id, type, created_at: createdAt, data } = o;
  const typeOk = typeof type === 'string' && TYPE_PATTERN.test(type);
  const dataOk = isPlainObject(data);
  const event: WebhookEvent = {
    id:
      typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH
        ? id
        : `malformed_${facts.webhookId}`,
    type: typeOk ? type : standInType(type),
    created_at:
      typeof createdAt === 'number' && Number.isFinite(createdAt) && createdAt >= 0
        ? Math.min(Math.floor(createdAt), Number.MAX_SAFE_INTEGER)
        : Math.floor(facts.receivedAt / 1000),
    data: dataOk ? data : {},
    ...(typeof o.object === 'string' ? { object: o.object } : {}),
  };
  return {
    event,
    malformed:
      text === undefined
        ? { reason: 'invalid_encoding', message: 'The body is not valid UTF-8.' }
        : { reason: parsed.code, message: parsed.message },
    projectable: typeOk && dataOk,
  };
}

/** A printable type for routing and metrics: `batch completed` → `batch_completed`. */
function standInType(type: unknown): string {
  if (typeof type !== 'string') return 'unknown';
  const cleaned = type.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 128);
  if (cleaned === '') return 'unknown';
  return /^[A-Za-z0-9_]/.test(cleaned) ? cleaned : `_${cleaned}`.slice(0, 128);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(code: EnvelopeFailureCode, message: string): Failure<EnvelopeFailureCode> {
  return { ok: false, status: 400, code, message };
}
