import type { WebhookEvent } from '#core/webhooks/envelope';
import { signWebhook, type WebhookSecret } from '#core/webhooks/signature';

export interface SignedWebhookRequest {
  readonly webhookId: string;
  readonly timestamp: number;
  readonly body: string;
  readonly headers: Record<string, string>;
}

/** A webhook delivery signed exactly as OpenAI signs it (Standard Webhooks v1). */
export function signedWebhookRequest(
  secret: WebhookSecret,
  event: WebhookEvent | string,
  options: { webhookId?: string; timestamp?: number } = {},
): SignedWebhookRequest {
  const body = typeof event === 'string' ? event : JSON.stringify(event);
  const webhookId =
    options.webhookId ??
    (typeof event === 'string'
      ? `wh_${Math.random().toString(36).slice(2)}${Date.now()}`
      : `wh_${event.id.replace(/^evt_/, '')}`);
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    webhookId,
    timestamp,
    body,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)',
      'webhook-id': webhookId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(secret, webhookId, timestamp, body),
    },
  };
}
