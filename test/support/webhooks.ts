import { inject } from 'vitest';
import type { WebhookEvent } from '#core/webhooks/envelope';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { LocalPipeline, type LocalPipelineOptions } from '../../local/pipeline';
import { type SignedWebhookRequest, signedWebhookRequest } from '../../local/signing';

/** A local pipeline on the shared stand-ins, quiet unless a test asks for logs. */
export function startPipeline(options: LocalPipelineOptions = {}): Promise<LocalPipeline> {
  return LocalPipeline.start({
    dynamoEndpoint: inject('dynamoEndpoint'),
    sqsEndpoint: inject('sqsEndpoint'),
    logLevel: 'error',
    visibilityTimeoutSeconds: 1,
    ...options,
  });
}

export type Delivery = SignedWebhookRequest;

/** Signs an event exactly as OpenAI does. */
export function signedDelivery(
  secret: string,
  event: WebhookEvent | string,
  options: { webhookId?: string; timestamp?: number } = {},
): Delivery {
  const request = signedWebhookRequest(parseWebhookSecret(secret, 'test'), event, options);
  // Tests read the headers without the user agent, as a minimal OpenAI delivery.
  const { 'user-agent': _agent, ...headers } = request.headers;
  return { ...request, headers };
}

export async function post(
  url: string,
  delivery: { headers: Record<string, string>; body: string },
) {
  const response = await fetch(url, {
    method: 'POST',
    headers: delivery.headers,
    body: delivery.body,
  });
  return {
    status: response.status,
    body: (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined,
  };
}

export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Asserts that `condition` keeps holding for `windowMs`, checking it every 25 ms and failing as
 * soon as it does not. This is for proving that something does NOT happen: no event marks the
 * moment it can no longer happen, so the window is the bounded time we give it to go wrong, and
 * each caller says why its window is long enough.
 */
export async function holdsFor(
  condition: () => boolean | Promise<boolean>,
  windowMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + windowMs;
  for (;;) {
    if (!(await condition())) throw new Error(`Expected ${what} to hold for ${windowMs} ms.`);
    if (Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
