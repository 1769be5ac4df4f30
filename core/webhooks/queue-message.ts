import type { Category } from './categories';

/**
 * What the ingress puts on a category queue. The SQS message body is the raw webhook body,
 * byte for byte, so the event stays re-verifiable and nothing is re-serialised; the delivery
 * facts travel as message attributes.
 */
export interface QueuedWebhook {
  readonly webhookId: string;
  readonly eventId: string;
  readonly type: string;
  readonly category: Category;
  /** Epoch milliseconds when the ingress accepted the delivery. */
  readonly receivedAt: number;
  /** Which webhook secret matched: "current" or "previous". */
  readonly secretLabel: string;
  /** Set by the operator CLI: `force` processes the event again even if it was processed. */
  readonly replay?: 'normal' | 'force';
  /**
   * The ingress attempt's token, matched against the event's head by the consumer: of two
   * messages queued by racing attempts, only the one the head names is processed. Absent on
   * replays and on messages queued before tokens existed (always processed).
   */
  readonly token?: string;
  readonly body: string;
}

export const MESSAGE_ATTRIBUTES = {
  webhookId: 'webhook-id',
  eventId: 'event-id',
  type: 'event-type',
  category: 'category',
  receivedAt: 'received-at',
  secretLabel: 'secret-label',
} as const;

/** SQS rejects messages over 1 MiB (body plus attributes). */
export const SQS_MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * Bodies whose queue message would be larger than this travel by claim check: the body goes to
 * the stack's S3 bucket and the message (and the event item) carry a reference to it. The bound
 * keeps every message small enough that
 * - ten of them fit one SendMessageBatch (`owh redrive`), whose entries may total at most
 *   1,048,576 bytes (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api-actions.html);
 * - the event item stays far below DynamoDB's 400 KB item limit
 *   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html), which a
 *   600 KB to 1 MiB body, incompressible, could never fit;
 * - a batch of ten records stays far below Lambda's 6 MB invocation payload.
 */
export const CLAIM_CHECK_BYTES = 96 * 1024;

/** Where a claim-checked body is kept (S3). */
export interface PayloadRef {
  readonly bucket: string;
  readonly key: string;
  readonly bytes: number;
  /** Hex SHA-256 of the body, checked when it is read back. */
  readonly sha256: string;
}

/**
 * A queue message body (and stored payload) is the raw webhook body whenever it can be: valid
 * UTF-8, not empty, only characters SQS accepts, and small enough. Otherwise it is a wrapper
 * object with the single key `owh_body`: `{"owh_body":{"ref":PayloadRef}}` for a claim check, or
 * `{"owh_body":{"base64":"…"}}` for a verified body SQS could not carry as text (not UTF-8, empty,
 * or with control characters). OpenAI's events never have that shape (they carry `id`, `type`,
 * `created_at` and `data`), and only a signed body reaches a queue, so a wrapper is always ours.
 */
export type CarriedBody =
  | { readonly kind: 'raw'; readonly text: string }
  | { readonly kind: 'bytes'; readonly bytes: Buffer }
  | { readonly kind: 'ref'; readonly ref: PayloadRef };

const WRAPPER_PREFIX = '{"owh_body":';

// The characters SQS accepts in a message (#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
// #x10000 to #x10FFFF): https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
function sqsAccepts(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x20 && c <= 0xd7ff) continue;
    if (c === 0x09 || c === 0x0a || c === 0x0d) continue;
    if (c >= 0xe000 && c <= 0xfffd) continue;
    // A surrogate pair is a character from U+10000 to U+10FFFF; a lone surrogate is not.
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    return false;
  }
  return true;
}

/** Whether `text` can travel as the message body itself. */
export function carriesAsText(text: string): boolean {
  return text.length > 0 && !text.startsWith(WRAPPER_PREFIX) && sqsAccepts(text);
}

export function wrapBytes(bytes: Uint8Array): string {
  return JSON.stringify({ owh_body: { base64: Buffer.from(bytes).toString('base64') } });
}

export function wrapRef(ref: PayloadRef): string {
  return JSON.stringify({ owh_body: { ref } });
}

/** What a queue message body (or stored payload) carries. */
export function unwrapBody(body: string): CarriedBody {
  if (!body.startsWith(WRAPPER_PREFIX)) return { kind: 'raw', text: body };
  const wrapper = (JSON.parse(body) as { owh_body?: { base64?: unknown; ref?: unknown } }).owh_body;
  if (typeof wrapper?.base64 === 'string')
    return { kind: 'bytes', bytes: Buffer.from(wrapper.base64, 'base64') };
  const ref = wrapper?.ref as Partial<PayloadRef> | undefined;
  if (
    typeof ref?.bucket === 'string' &&
    typeof ref.key === 'string' &&
    typeof ref.bytes === 'number' &&
    typeof ref.sha256 === 'string'
  )
    return {
      kind: 'ref',
      ref: { bucket: ref.bucket, key: ref.key, bytes: ref.bytes, sha256: ref.sha256 },
    };
  throw new Error('Queue message body is an unreadable owh_body wrapper.');
}

export type AttributeMap = Record<string, { DataType: string; StringValue?: string }>;

const REPLAY_ATTRIBUTE = 'replay';
const TOKEN_ATTRIBUTE = 'token';

export function toMessageAttributes(message: Omit<QueuedWebhook, 'body'>): AttributeMap {
  const attributes: AttributeMap = {};
  for (const [field, name] of Object.entries(MESSAGE_ATTRIBUTES)) {
    const value = message[field as keyof typeof MESSAGE_ATTRIBUTES];
    attributes[name] = {
      DataType: typeof value === 'number' ? 'Number' : 'String',
      StringValue: String(value),
    };
  }
  if (message.replay)
    attributes[REPLAY_ATTRIBUTE] = { DataType: 'String', StringValue: message.replay };
  if (message.token)
    attributes[TOKEN_ATTRIBUTE] = { DataType: 'String', StringValue: message.token };
  return attributes;
}

/** Bytes SQS counts for a message: the body plus each attribute's name, type and value. */
export function messageSize(body: string, attributes: AttributeMap): number {
  let size = Buffer.byteLength(body, 'utf8');
  for (const [name, value] of Object.entries(attributes)) {
    size +=
      Buffer.byteLength(name) + value.DataType.length + Buffer.byteLength(value.StringValue ?? '');
  }
  return size;
}

export function fromMessageAttributes(
  body: string,
  attributes: Readonly<Record<string, { stringValue?: string | undefined } | undefined>>,
): QueuedWebhook {
  const read = (field: keyof typeof MESSAGE_ATTRIBUTES): string => {
    const value = attributes[MESSAGE_ATTRIBUTES[field]]?.stringValue;
    if (value === undefined) throw new Error(`Queue message lacks the "${field}" attribute.`);
    return value;
  };
  return {
    webhookId: read('webhookId'),
    eventId: read('eventId'),
    type: read('type'),
    category: read('category') as Category,
    receivedAt: Number(read('receivedAt')),
    secretLabel: read('secretLabel'),
    ...replayOf(attributes[REPLAY_ATTRIBUTE]?.stringValue),
    ...tokenOf(attributes[TOKEN_ATTRIBUTE]?.stringValue),
    body,
  };
}

function replayOf(value: string | undefined): Pick<QueuedWebhook, 'replay'> {
  return value === 'force' || value === 'normal' ? { replay: value } : {};
}

function tokenOf(value: string | undefined): Pick<QueuedWebhook, 'token'> {
  return value ? { token: value } : {};
}
