import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { errorResponse, jsonResponse } from '../http';
import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricPoint, type MetricsPublisher } from '../observability/metrics';
import type { EventPublisher, PayloadStore, WebhookLedger } from '../ports/webhooks';
import type { IngressErrorCode, MalformedReason } from '../reasons';
import { type Category, categoryOf } from './categories';
import { readEnvelope } from './envelope';
import {
  CLAIM_CHECK_BYTES,
  carriesAsText,
  messageSize,
  SQS_MAX_MESSAGE_BYTES,
  toMessageAttributes,
  wrapBytes,
  wrapRef,
} from './queue-message';
import { type VerifyResult, verifyWebhook, type WebhookSecret } from './signature';

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
  /**
   * Claim check for bodies too large for a queue message (S3). Without it, such a body gets 413
   * (and `maxBodyBytes` should stay below `CLAIM_CHECK_BYTES`).
   */
  readonly payloads?: PayloadStore;
  readonly clock: () => number;
  readonly newToken: () => string;
  readonly log: Logger;
  readonly metrics: MetricsPublisher;
}

/** What happened to one request: the answer, and what the metrics need to know about it. */
export interface IngressOutcome {
  readonly status: number;
  /** The error code of a non-200 answer. */
  readonly code?: IngressErrorCode;
  readonly verified: boolean;
  readonly secretLabel?: string;
  readonly category?: Category;
  readonly duplicate?: boolean;
  /** A verified body kept as a malformed event. */
  readonly malformed?: MalformedReason;
}

interface Handled {
  readonly response: LambdaFunctionURLResult;
  readonly outcome: IngressOutcome;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function createIngressHandler(deps: IngressDeps) {
  return (event: LambdaFunctionURLEvent) => receiveWebhook(deps, event);
}

/**
 * Verify, then parse, then claim the `webhook-id`, then queue; acknowledge only after that.
 * Every request ends with one set of metrics describing its outcome.
 */
export async function receiveWebhook(
  deps: IngressDeps,
  event: LambdaFunctionURLEvent,
): Promise<LambdaFunctionURLResult> {
  const started = deps.clock();
  const { response, outcome } = await handle(deps, event, started);
  deps.metrics(ingressMetrics(outcome, deps.clock() - started));
  return response;
}

/** The metric points for one request's outcome (README "Metrics"). */
export function ingressMetrics(outcome: IngressOutcome, latencyMs: number): MetricPoint[] {
  const points = [count('WebhooksReceived')];
  if (outcome.verified) points.push(count('WebhooksVerified'));
  if (outcome.secretLabel)
    points.push(count('SecretMatched', { name: 'Secret', value: outcome.secretLabel }));
  const reason = { name: 'Reason', value: outcome.code ?? 'unknown' } as const;
  if (outcome.status >= 500) points.push(count('WebhooksFailed', reason));
  else if (outcome.status >= 400) {
    points.push(count('WebhooksRejected', reason));
    if (outcome.status === 401) points.push(count('SignatureFailures'));
  } else if (outcome.duplicate) points.push(count('WebhooksDuplicate'));
  else if (outcome.category) {
    points.push(count('WebhooksAccepted', { name: 'Category', value: outcome.category }));
    points.push({ name: 'AckLatency', value: latencyMs });
  }
  return points;
}

/** An error answer, and its outcome. */
function refuse(
  status: number,
  code: IngressErrorCode,
  message: string,
  context: Omit<IngressOutcome, 'status' | 'code'> = { verified: false },
  headers: Record<string, string> = {},
): Handled {
  return {
    response: errorResponse(status, code, message, headers),
    outcome: { ...context, status, code },
  };
}

async function handle(
  deps: IngressDeps,
  event: LambdaFunctionURLEvent,
  started: number,
): Promise<Handled> {
  const { config, log, clock } = deps;
  const method = event.requestContext?.http?.method ?? 'POST';
  if (method !== 'POST') {
    return refuse(
      405,
      'method_not_allowed',
      'Webhooks must be sent with POST.',
      { verified: false },
      { allow: 'POST' },
    );
  }

  const rawBody = event.isBase64Encoded
    ? Buffer.from(event.body ?? '', 'base64')
    : (event.body ?? '');
  const size = typeof rawBody === 'string' ? Buffer.byteLength(rawBody, 'utf8') : rawBody.length;
  if (size > config.maxBodyBytes) {
    return refuse(413, 'body_too_large', `The body exceeds ${config.maxBodyBytes} bytes.`);
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
    return refuse(503, 'secret_unavailable', 'The webhook secret could not be loaded.');
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
    return refuse(verdict.status, verdict.code, verdict.message);
  }
  const verified = { verified: true, secretLabel: verdict.secretLabel };

  // Verified: from here on the body is OpenAI's, and it is kept however odd it is.
  const bytes = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
  let text: string | undefined;
  try {
    text = typeof rawBody === 'string' ? rawBody : strictUtf8.decode(rawBody);
  } catch {
    text = undefined;
  }
  const envelope = readEnvelope(text, { webhookId, receivedAt: started });
  const { id: eventId, type } = envelope.event;
  const category = categoryOf(type);
  const malformed = envelope.malformed;
  if (malformed)
    log.warn('malformed event kept', {
      reason: malformed.reason,
      detail: malformed.message,
      webhookId,
      eventId,
      category,
    });
  const meta = {
    webhookId,
    eventId,
    type,
    category,
    receivedAt: started,
    secretLabel: verdict.secretLabel,
  };
  const inline = text !== undefined && carriesAsText(text) ? text : wrapBytes(bytes);
  const claimCheck = messageSize(inline, toMessageAttributes(meta)) > CLAIM_CHECK_BYTES;
  if (
    claimCheck &&
    !deps.payloads &&
    messageSize(inline, toMessageAttributes(meta)) > SQS_MAX_MESSAGE_BYTES
  ) {
    return refuse(413, 'body_too_large', 'The event is too large to queue (1 MiB).', verified);
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
    return refuse(
      503,
      'store_unavailable',
      'The event could not be stored; retry later.',
      verified,
    );
  }
  if (claim.kind === 'duplicate') {
    if (claim.state === 'claimed') {
      // Another attempt is queueing it right now and may still fail: do not acknowledge yet.
      eventLog.info('webhook in progress elsewhere');
      return refuse(
        409,
        'delivery_in_progress',
        'This webhook-id is being processed by another delivery; retry later.',
        verified,
        { 'retry-after': String(config.claimTimeoutSeconds) },
      );
    }
    // Queued by an earlier attempt (or already consumed): durable, so acknowledge it again.
    eventLog.info('duplicate webhook', { state: claim.state, latencyMs: clock() - started });
    return {
      response: jsonResponse(200, { received: true, duplicate: true }),
      outcome: { ...verified, status: 200, category, duplicate: true },
    };
  }

  // Give the id back so OpenAI's retry is processed rather than taken for a duplicate.
  const release = () =>
    deps.ledger.release(webhookId, token).catch((releaseError: unknown) => {
      eventLog.error('claim release failed; it expires on its own', {
        error: errorMessage(releaseError),
      });
    });
  let body = inline;
  if (claimCheck && deps.payloads) {
    try {
      body = wrapRef(await deps.payloads.put(bytes));
    } catch (error) {
      eventLog.error('payload store failed', { error: errorMessage(error), bytes: bytes.length });
      await release();
      return refuse(
        503,
        'store_unavailable',
        'The event could not be stored; retry later.',
        verified,
      );
    }
  }
  try {
    await deps.publisher.publish({ ...meta, body });
  } catch (error) {
    eventLog.error('queueing failed', { error: errorMessage(error) });
    await release();
    return refuse(
      503,
      'queue_unavailable',
      'The event could not be queued; retry later.',
      verified,
    );
  }
  // Durable now: later deliveries are duplicates at once, not 409s until a consumer catches up.
  // If this write fails the event is still queued: they get 409 until the consumer marks it.
  try {
    await deps.ledger.markQueued(webhookId, token);
  } catch (error) {
    eventLog.error('could not mark the claim queued', { error: errorMessage(error) });
  }
  eventLog.info('webhook accepted', {
    secretLabel: verdict.secretLabel,
    latencyMs: clock() - started,
    ...(body !== inline ? { claimCheck: true, bytes: bytes.length } : {}),
  });
  return {
    response: jsonResponse(200, { received: true }),
    outcome: {
      ...verified,
      status: 200,
      category,
      ...(malformed ? { malformed: malformed.reason } : {}),
    },
  };
}

async function tryRefresh(deps: IngressDeps): Promise<boolean> {
  try {
    return await deps.secrets.forceRefresh();
  } catch (error) {
    deps.log.error('webhook secret refresh failed', { error: errorMessage(error) });
    return false;
  }
}
