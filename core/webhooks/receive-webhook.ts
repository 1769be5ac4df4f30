import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { errorResponse, jsonResponse } from '../http';
import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricPoint, type MetricsPublisher } from '../observability/metrics';
import type { EventPublisher, PayloadStore, WebhookLedger } from '../ports/webhooks';
import type { IngressErrorCode, MalformedReason } from '../reasons';
import { type Category, categoryOf } from './categories';
import { readEnvelope } from './envelope';
import { objectRefOf } from './projection';
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
  /** How long a `webhook-id` is remembered at least; OpenAI retries for up to 72 h. */
  readonly dedupeTtlSeconds: number;
  /**
   * How long the event's head (its listing row and dedupe record) is kept: the stack's
   * `eventRetention`, like the body. The head lives for the longer of this and `dedupeTtlSeconds`.
   * @default 90 days
   */
  readonly eventTtlSeconds?: number;
  /**
   * The longest the ingress waits on each event-head call (the dedupe read before queueing, the
   * head write after). Neither decides durability (the queue does), so a stalled table must not
   * hold the answer, or an ingress slot, for the SDK's three attempts: past this the read counts
   * as "not seen" and the write is left to the consumer. @default 1500
   */
  readonly ledgerWaitMs?: number;
}

/** `ledgerWaitMs` when not configured. */
export const DEFAULT_LEDGER_WAIT_MS = 1500;

/** What `within` gives back when the deadline came first. */
const timedOut = Symbol('timed out');

/** A promise's outcome if it settles within `ms`; `timedOut` otherwise (the promise runs on). */
async function within<T>(ms: number, promise: Promise<T>): Promise<T | typeof timedOut> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(() => resolve(timedOut), ms);
  });
  // A rejection after the deadline has nobody waiting on it: keep it from going unhandled.
  promise.catch(() => undefined);
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface WebhookSecrets {
  get(): Promise<readonly WebhookSecret[]>;
  /** Reloads after a rotation; rate-limited, false when it did not reload. */
  forceRefresh(): Promise<boolean>;
}

export interface IngressDeps {
  readonly config: IngressConfig;
  readonly secrets: WebhookSecrets;
  /** The event heads: dedupe, written after queueing (see `WebhookLedger`). */
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

/** The consumers' default event retention (`consumer-from-env.ts`), for a head without config. */
const DEFAULT_EVENT_TTL_SECONDS = 90 * 24 * 3600;

export function createIngressHandler(deps: IngressDeps) {
  return (event: LambdaFunctionURLEvent) => receiveWebhook(deps, event);
}

/**
 * Verify, then parse, then queue, then write the event's head (the dedupe record); acknowledge
 * only once queued. Every request ends with one set of metrics describing its outcome.
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
    // Verified but not a well-formed event: kept, routed and acknowledged, and counted here.
    if (outcome.malformed) points.push(count('WebhooksMalformed'));
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
  // This attempt's token travels with its message (see `WebhookLedger`), so it counts in its size.
  const token = deps.newToken();
  const inline = text !== undefined && carriesAsText(text) ? text : wrapBytes(bytes);
  const attributes = toMessageAttributes({ ...meta, token });
  const claimCheck = messageSize(inline, attributes) > CLAIM_CHECK_BYTES;
  if (claimCheck && !deps.payloads && messageSize(inline, attributes) > SQS_MAX_MESSAGE_BYTES) {
    return refuse(413, 'body_too_large', 'The event is too large to queue (1 MiB).', verified);
  }
  const eventLog = log.with({ webhookId, eventId, type, category });
  const duplicate = (): Handled => {
    eventLog.info('duplicate webhook', { latencyMs: clock() - started });
    return {
      response: jsonResponse(200, { received: true, duplicate: true }),
      outcome: { ...verified, status: 200, category, duplicate: true },
    };
  };

  // A head means an earlier attempt queued the event: durable, so acknowledge it again. An
  // eventually consistent read, so a hint only: the conditional put below decides.
  const ledgerWaitMs = config.ledgerWaitMs ?? DEFAULT_LEDGER_WAIT_MS;
  try {
    const seen = await within(ledgerWaitMs, deps.ledger.seen(eventId));
    if (seen === timedOut) eventLog.warn('dedupe read too slow; queueing anyway', { ledgerWaitMs });
    else if (seen) return duplicate();
  } catch (error) {
    eventLog.warn('dedupe read failed; queueing anyway', { error: errorMessage(error) });
  }

  let body = inline;
  if (claimCheck && deps.payloads) {
    try {
      body = wrapRef(await deps.payloads.put(bytes));
    } catch (error) {
      eventLog.error('payload store failed', { error: errorMessage(error), bytes: bytes.length });
      return refuse(
        503,
        'store_unavailable',
        'The event could not be stored; retry later.',
        verified,
      );
    }
  }
  try {
    await deps.publisher.publish({ ...meta, token, body });
  } catch (error) {
    eventLog.error('queueing failed', { error: errorMessage(error) });
    return refuse(
      503,
      'queue_unavailable',
      'The event could not be queued; retry later.',
      verified,
    );
  }
  // Queued, so durable: from here on the answer is 200. The head makes later deliveries
  // duplicates at once; if it cannot be written, the consumer writes it from this message.
  const ref = envelope.projectable ? objectRefOf(envelope.event) : undefined;
  const ttlSeconds = Math.max(
    config.dedupeTtlSeconds,
    config.eventTtlSeconds ?? DEFAULT_EVENT_TTL_SECONDS,
  );
  try {
    const head = await within(
      ledgerWaitMs,
      deps.ledger.record({
        ...meta,
        createdAt: envelope.event.created_at,
        token,
        ...(ref ? { objectId: ref.objectId } : {}),
        ...(malformed ? { malformed: malformed.reason, malformedMessage: malformed.message } : {}),
        expiresAt: Math.floor(started / 1000) + ttlSeconds,
      }),
    );
    // Another attempt queued it first: its message counts, ours is dropped by the consumer.
    if (head === timedOut)
      eventLog.warn('event head write too slow; the consumer writes it', { ledgerWaitMs });
    else if (head.kind === 'duplicate') return duplicate();
  } catch (error) {
    eventLog.error('could not write the event head; the consumer writes it', {
      error: errorMessage(error),
    });
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
