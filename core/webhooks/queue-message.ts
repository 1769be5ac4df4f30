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

export type AttributeMap = Record<string, { DataType: string; StringValue?: string }>;

const REPLAY_ATTRIBUTE = 'replay';

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
    body,
  };
}

function replayOf(value: string | undefined): Pick<QueuedWebhook, 'replay'> {
  return value === 'force' || value === 'normal' ? { replay: value } : {};
}
