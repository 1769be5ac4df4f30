import type { EnvelopeFailureCode } from '../reasons';
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

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(code: EnvelopeFailureCode, message: string): Failure<EnvelopeFailureCode> {
  return { ok: false, status: 400, code, message };
}
