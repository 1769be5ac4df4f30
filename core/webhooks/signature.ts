/**
 * Standard Webhooks v1 (HMAC-SHA256) verification, as OpenAI signs its webhooks.
 *
 * Differs from the official SDK on purpose:
 * - several secrets (current and previous) are tried, for zero-downtime rotation, and the one that
 *   matched is reported;
 * - the timestamp must be plain digits (the SDK's `parseInt` accepts "123abc");
 * - every signature entry needs its `v1,` version prefix (the SDK also tries bare base64);
 * - secrets must carry the `whsec_` prefix (the SDK treats anything else as raw UTF-8 key bytes,
 *   a classic way to end up with the wrong key).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { VerifyFailureCode } from '../reasons';
import type { Failure } from '../result';

export interface WebhookSecret {
  /** Which secret this is, reported when it matches: "current" or "previous". */
  readonly label: string;
  readonly key: Buffer;
}

export interface SignedRequest {
  readonly webhookId: string | undefined;
  readonly timestamp: string | undefined;
  readonly signature: string | undefined;
  /** The exact raw body. A string is hashed as UTF-8, which is what it was decoded from. */
  readonly body: string | Buffer;
}

export type VerifyResult =
  | { readonly ok: true; readonly secretLabel: string; readonly timestamp: number }
  | Failure<VerifyFailureCode>;

export const DEFAULT_TOLERANCE_SECONDS = 300;
const SECRET_PREFIX = 'whsec_';
const SHA256_BYTES = 32;
// Bounds so a hostile header cannot make us do unbounded work.
const MAX_WEBHOOK_ID_LENGTH = 256;
const MAX_SIGNATURE_HEADER_LENGTH = 4096;
const MAX_SIGNATURE_ENTRIES = 16;
const WEBHOOK_ID_PATTERN = /^[\x21-\x7e]+$/;
const TIMESTAMP_PATTERN = /^\d{1,12}$/;
const ENTRY_PATTERN = /^(v[0-9a-z]+),(\S+)$/;

/** Decodes a `whsec_<base64>` secret. Throws on anything else, so a bad secret fails loudly at load. */
export function parseWebhookSecret(secret: string, label: string): WebhookSecret {
  if (!secret.startsWith(SECRET_PREFIX)) {
    throw new Error(`The ${label} webhook secret must start with "${SECRET_PREFIX}".`);
  }
  const encoded = secret.slice(SECRET_PREFIX.length);
  const key = Buffer.from(encoded, 'base64');
  if (key.length < 16 || key.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) {
    throw new Error(`The ${label} webhook secret is not valid base64 of at least 16 bytes.`);
  }
  return { label, key };
}

/**
 * Reads the secret string stored in Secrets Manager: either one bare `whsec_…` value, or JSON
 * `{"current":"whsec_…","previous":"whsec_…"}` while a rotation is under way.
 */
export function parseWebhookSecrets(stored: string): WebhookSecret[] {
  const trimmed = stored.trim();
  if (trimmed.startsWith(SECRET_PREFIX)) return [parseWebhookSecret(trimmed, 'current')];
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    throw new Error('The webhook secret must be "whsec_…" or JSON {"current":…,"previous":…}.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('The webhook secret JSON must be an object {"current":…,"previous":…}.');
  }
  const { current, previous } = value as Record<string, unknown>;
  if (typeof current !== 'string') throw new Error('The webhook secret JSON needs "current".');
  const secrets = [parseWebhookSecret(current, 'current')];
  if (previous !== undefined && previous !== null && previous !== '') {
    if (typeof previous !== 'string') throw new Error('"previous" must be a string.');
    secrets.push(parseWebhookSecret(previous, 'previous'));
  }
  return secrets;
}

/** Signs like OpenAI does. Used by local mode, the sender and tests. */
export function signWebhook(
  secret: WebhookSecret,
  webhookId: string,
  timestamp: string | number,
  body: string | Buffer,
): string {
  const hmac = createHmac('sha256', secret.key);
  hmac.update(`${webhookId}.${timestamp}.`);
  hmac.update(body);
  return `v1,${hmac.digest('base64')}`;
}

export function verifyWebhook(
  request: SignedRequest,
  secrets: readonly WebhookSecret[],
  nowSeconds: number,
  toleranceSeconds: number = DEFAULT_TOLERANCE_SECONDS,
): VerifyResult {
  const { webhookId, timestamp, signature } = request;
  if (webhookId === undefined || timestamp === undefined || signature === undefined) {
    const missing = [
      webhookId === undefined && 'webhook-id',
      timestamp === undefined && 'webhook-timestamp',
      signature === undefined && 'webhook-signature',
    ].filter(Boolean);
    return reject(400, 'missing_header', `Missing required header: ${missing.join(', ')}.`);
  }
  if (webhookId.length > MAX_WEBHOOK_ID_LENGTH || !WEBHOOK_ID_PATTERN.test(webhookId)) {
    return reject(400, 'malformed_header', 'webhook-id must be 1 to 256 printable characters.');
  }
  if (!TIMESTAMP_PATTERN.test(timestamp)) {
    return reject(400, 'malformed_header', 'webhook-timestamp must be unix seconds.');
  }
  const candidates = parseSignatureHeader(signature);
  if (candidates === undefined) {
    return reject(400, 'malformed_header', 'webhook-signature must be a list of "v1,<base64>".');
  }
  const ts = Number(timestamp);
  if (Math.abs(nowSeconds - ts) > toleranceSeconds) {
    return reject(401, 'timestamp_out_of_tolerance', 'webhook-timestamp is outside the tolerance.');
  }
  if (candidates.length > 0) {
    for (const secret of secrets) {
      const expected = createHmac('sha256', secret.key)
        .update(`${webhookId}.${timestamp}.`)
        .update(request.body)
        .digest();
      // Compare against every candidate so the time taken does not reveal which one matched.
      let matched = false;
      for (const candidate of candidates) {
        if (timingSafeEqual(candidate, expected)) matched = true;
      }
      if (matched) return { ok: true, secretLabel: secret.label, timestamp: ts };
    }
  }
  return reject(401, 'invalid_signature', 'No webhook signature matched.');
}

/**
 * Returns the decoded 32-byte `v1` signatures. Entries of other versions (such as `v1a` for
 * ed25519) and unreadable entries are ignored; `undefined` means no entry has the
 * `<version>,<signature>` shape at all, so the header is malformed.
 */
function parseSignatureHeader(header: string): Buffer[] | undefined {
  if (header.length === 0 || header.length > MAX_SIGNATURE_HEADER_LENGTH) return undefined;
  const entries = header.split(' ').filter((entry) => entry.length > 0);
  if (entries.length === 0 || entries.length > MAX_SIGNATURE_ENTRIES) return undefined;
  const v1: Buffer[] = [];
  let wellFormed = 0;
  for (const entry of entries) {
    const match = ENTRY_PATTERN.exec(entry);
    // Skip what we cannot read, as the SDKs do, so a new entry format never fails a delivery.
    if (!match) continue;
    wellFormed++;
    if (match[1] !== 'v1') continue;
    const bytes = Buffer.from(match[2] ?? '', 'base64');
    if (bytes.length === SHA256_BYTES) v1.push(bytes);
  }
  return wellFormed === 0 ? undefined : v1;
}

function reject(
  status: number,
  code: VerifyFailureCode,
  message: string,
): Failure<VerifyFailureCode> {
  return { ok: false, status, code, message };
}
