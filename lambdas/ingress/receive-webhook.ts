import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { categoryOf } from '../shared/core/categories';
import { parseEnvelope } from '../shared/core/envelope';
import { errorResponse, jsonResponse } from '../shared/core/http';
import {
  messageSize,
  SQS_MAX_MESSAGE_BYTES,
  toMessageAttributes,
} from '../shared/core/queue-message';
import { type VerifyResult, verifyWebhook, type WebhookSecret } from '../shared/core/signature';
import { errorMessage, type Logger } from '../shared/logger';
import type { EventPublisher, WebhookLedger } from '../shared/ports';

export interface IngressConfig {
  /** Replay window, both directions. */
  readonly toleranceSeconds: number;
  readonly maxBodyBytes: number;
  /** How long a `webhook-id` is remembered; OpenAI retries for up to 72 h. */
  readonly dedupeTtlSeconds: number;
  /** A claim older than this belongs to an attempt that died; must exceed the function timeout. */
  readonly claimTimeoutSeconds: number;
}

export interface WebhookSecrets {
  get(): Promise<readonly WebhookSecret[]>;
  /** Reloads after a rotation; rate-limited, false when it did not reload. */
  forceRefresh(): Promise<boolean>;
}

export interface IngressDeps {
  readonly config: IngressConfig;
  readonly secrets: WebhookSecrets;
  readonly ledger: WebhookLedger;
  readonly publisher: EventPublisher;
  readonly clock: () => number;
  readonly newToken: () => string;
  readonly log: Logger;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function createIngressHandler(deps: IngressDeps) {
  return (event: LambdaFunctionURLEvent) => receiveWebhook(deps, event);
}

/** Verify, then parse, then claim the `webhook-id`, then queue; acknowledge only after that. */
export async function receiveWebhook(
  deps: IngressDeps,
  event: LambdaFunctionURLEvent,
): Promise<LambdaFunctionURLResult> {
  const { config, log, clock } = deps;
  const started = clock();
  const method = event.requestContext?.http?.method ?? 'POST';
  if (method !== 'POST') {
    return errorResponse(405, 'method_not_allowed', 'Webhooks must be sent with POST.', {
      allow: 'POST',
    });
  }

  const rawBody = event.isBase64Encoded
    ? Buffer.from(event.body ?? '', 'base64')
    : (event.body ?? '');
  const size = typeof rawBody === 'string' ? Buffer.byteLength(rawBody, 'utf8') : rawBody.length;
  if (size > config.maxBodyBytes) {
    return errorResponse(413, 'body_too_large', `The body exceeds ${config.maxBodyBytes} bytes.`);
  }

  const headers = event.headers ?? {};
  const request = {
    webhookId: headers['webhook-id'],
    timestamp: headers['webhook-timestamp'],
    signature: headers['webhook-signature'],
    body: rawBody,
  };

  let secrets: readonly WebhookSecret[];
  try {
    secrets = await deps.secrets.get();
  } catch (error) {
    log.error('webhook secret unavailable', { error: errorMessage(error) });
    return errorResponse(503, 'secret_unavailable', 'The webhook secret could not be loaded.');
  }
  const nowSeconds = Math.floor(clock() / 1000);
  let verdict: VerifyResult = verifyWebhook(request, secrets, nowSeconds, config.toleranceSeconds);
  if (!verdict.ok && verdict.code === 'invalid_signature' && (await tryRefresh(deps))) {
    // The secret may have been rotated since we cached it.
    verdict = verifyWebhook(request, await deps.secrets.get(), nowSeconds, config.toleranceSeconds);
  }
  const webhookId = request.webhookId ?? '';
  if (!verdict.ok) {
    log.warn('webhook rejected', { reason: verdict.code, status: verdict.status, webhookId });
    return errorResponse(verdict.status, verdict.code, verdict.message);
  }

  let text: string;
  try {
    text = typeof rawBody === 'string' ? rawBody : strictUtf8.decode(rawBody);
  } catch {
    return errorResponse(400, 'invalid_encoding', 'The body is not valid UTF-8.');
  }
  const parsed = parseEnvelope(text);
  if (!parsed.ok) {
    log.warn('webhook rejected', { reason: parsed.code, status: 400, webhookId });
    return errorResponse(parsed.status, parsed.code, parsed.message);
  }
  const { id: eventId, type } = parsed.event;
  const category = categoryOf(type);
  const meta = {
    webhookId,
    eventId,
    type,
    category,
    receivedAt: started,
    secretLabel: verdict.secretLabel,
  };
  if (messageSize(text, toMessageAttributes(meta)) > SQS_MAX_MESSAGE_BYTES) {
    return errorResponse(413, 'body_too_large', 'The event is too large to queue (1 MiB).');
  }
  const eventLog = log.with({ webhookId, eventId, type, category });

  const token = deps.newToken();
  let claim: Awaited<ReturnType<WebhookLedger['claim']>>;
  try {
    claim = await deps.ledger.claim({
      webhookId,
      eventId,
      type,
      category,
      token,
      now: started,
      staleBefore: started - config.claimTimeoutSeconds * 1000,
      expiresAt: Math.floor(started / 1000) + config.dedupeTtlSeconds,
    });
  } catch (error) {
    eventLog.error('dedupe write failed', { error: errorMessage(error) });
    return errorResponse(503, 'store_unavailable', 'The event could not be stored; retry later.');
  }
  if (claim.kind === 'duplicate') {
    if (claim.state === 'claimed') {
      // Another attempt is queueing it right now and may still fail: do not acknowledge yet.
      eventLog.info('webhook in progress elsewhere');
      return errorResponse(
        409,
        'delivery_in_progress',
        'This webhook-id is being processed by another delivery; retry later.',
        { 'retry-after': String(config.claimTimeoutSeconds) },
      );
    }
    eventLog.info('duplicate webhook', { latencyMs: clock() - started });
    return jsonResponse(200, { received: true, duplicate: true });
  }

  try {
    await deps.publisher.publish({ ...meta, body: text });
  } catch (error) {
    eventLog.error('queueing failed', { error: errorMessage(error) });
    // Give the id back so OpenAI's retry is processed rather than taken for a duplicate.
    await deps.ledger.release(webhookId, token).catch((releaseError: unknown) => {
      eventLog.error('claim release failed; it expires on its own', {
        error: errorMessage(releaseError),
      });
    });
    return errorResponse(503, 'queue_unavailable', 'The event could not be queued; retry later.');
  }
  eventLog.info('webhook accepted', {
    secretLabel: verdict.secretLabel,
    latencyMs: clock() - started,
  });
  return jsonResponse(200, { received: true });
}

async function tryRefresh(deps: IngressDeps): Promise<boolean> {
  try {
    return await deps.secrets.forceRefresh();
  } catch (error) {
    deps.log.error('webhook secret refresh failed', { error: errorMessage(error) });
    return false;
  }
}
