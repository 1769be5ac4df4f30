/**
 * The WebRTC session endpoint and the attach API, behind ports: the session Lambda
 * (lambdas/webrtc-session/handler.ts) and local mode (local/session-endpoint.ts) both run this.
 *
 * `POST /session` (body: the browser's SDP offer, `application/sdp`): the offer goes to OpenAI's
 * `POST /v1/realtime/calls` with the project key and the profile's session (multipart `sdp` +
 * `session`, openapi.yaml create-realtime-call); the call id comes from the answer's `Location`;
 * the call takes a capacity slot, gets its record (`channel: 'webrtc'`) and the sideband fleet is
 * signalled exactly as for a SIP call (reason `incoming`, session key = the profile). The browser
 * gets OpenAI's `201` with the SDP answer, and the call id in `Location` (the same
 * `/v1/realtime/calls/<id>` OpenAI gives, so the WebRTC guide's snippet works unchanged) and
 * `X-Call-Id`. The key, the instructions and the tools never reach the browser.
 *
 * `POST /calls/{call_id}/attach` (body `{ profile?, metadata? }`): for a team that did the SDP
 * exchange itself. 202 once the signal is queued, 409 when the call already has a record (an
 * owner, or an attach on its way), 400 for a malformed call id.
 */

import type { SessionConfig, ToolDefinition } from '../calls/session-config';
import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricsPublisher } from '../observability/metrics';
import type { CallRecord, CallStore, ServiceScaler, SignalPublisher } from '../ports/calls';
import {
  CALL_ID,
  CALL_ID_HEADER,
  callIdFromLocation,
  checkOffer,
  createCallRequest,
  type Headers,
  openAiFailureResponse,
  parseAttachBody,
  sdpProblem,
  selectProfile,
  type WebRtcErrorCode,
  webRtcSessionBody,
} from './session-request';
import type { AuthKind } from './webrtc-config';

/** OpenAI's `POST /realtime/calls`, as the adapter reports it. Throws when there is no answer. */
export interface RealtimeCallsCreator {
  create(request: { readonly contentType: string; readonly body: string }): Promise<{
    readonly status: number;
    readonly location: string | undefined;
    readonly body: string;
  }>;
}

/** A fixed-window counter per key (kept in the table in AWS): true while under `limit`. */
export interface RateLimiter {
  take(key: string, limit: number, windowSeconds: number): Promise<boolean>;
}

export interface WebRtcEndpointDeps {
  /** The profiles a browser may pick: the allowlist, name → session config. */
  readonly profiles: Readonly<Record<string, SessionConfig>>;
  /** The profile used when a request names none. @default none: a name is required */
  readonly defaultProfile?: string;
  readonly userTools: readonly ToolDefinition[];
  /**
   * Browser sessions at once. A session takes a slot of the account-wide call counter (the one
   * SIP calls take, given back by the worker when the call ends) and is admitted only while fewer
   * than this many calls hold one: browser sessions never exceed it.
   */
  readonly maxConcurrentSessions: number;
  readonly maxSdpBytes?: number;
  /** How API Gateway authenticates each route; checked again here. @default 'open' (local mode) */
  readonly auth?: { readonly session: AuthKind; readonly attach: AuthKind };
  /** Per source IP (the `open` mode): at most `limit` session requests per `windowSeconds`. */
  readonly perIp?: {
    readonly limiter: RateLimiter;
    readonly limit: number;
    readonly windowSeconds: number;
  };
  readonly recordTtlSeconds: number;
  readonly openAi: RealtimeCallsCreator;
  /** `/hangup`, for a call created at OpenAI that cannot be served (no slot, no signal). */
  readonly hangup: (callId: string) => Promise<unknown>;
  readonly store: CallStore;
  readonly signals: SignalPublisher;
  readonly scaler?: ServiceScaler;
  readonly clock: () => number;
  readonly metrics: MetricsPublisher;
  readonly log: Logger;
  /** A multipart boundary. @default a random one */
  readonly boundary?: () => string;
}

export interface EndpointRequest {
  readonly method: string;
  /** The path without the stage, e.g. `/session`. */
  readonly path: string;
  /** Lower-cased names. */
  readonly headers: Headers;
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly body: string | undefined;
  readonly sourceIp: string | undefined;
  /**
   * Who API Gateway authenticated (its authorizer's result in the request context): a JWT's
   * subject or an IAM caller. Absent when no authorizer ran.
   */
  readonly authorizer?:
    | { readonly kind: 'jwt'; readonly subject: string | undefined }
    | { readonly kind: 'iam'; readonly caller: string | undefined };
}

export interface EndpointResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Timings of one session request, for logs and the bench. */
export interface SessionTimings {
  readonly openAiMs: number;
  readonly totalMs: number;
}

const ATTACH_PATH = /^\/calls\/([^/]*)\/attach$/;

/** The signal is sent again only while its first attempt began less than this long ago. */
export const SIGNAL_RETRY_WINDOW_MS = 2000;

function errorOf(
  statusCode: number,
  code: WebRtcErrorCode | string,
  message: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): EndpointResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ error: { code, message, ...extra } }),
  };
}

/** Routes one request; never throws (an unexpected failure is a 500 with no detail). */
export async function handleWebRtcRequest(
  deps: WebRtcEndpointDeps,
  request: EndpointRequest,
  onTimings?: (timings: SessionTimings) => void,
): Promise<EndpointResponse> {
  try {
    if (request.path === '/session') {
      if (request.method !== 'POST')
        return errorOf(405, 'method_not_allowed', 'POST the SDP offer.', {}, { allow: 'POST' });
      const refused = unauthenticated(deps.auth?.session ?? 'open', request);
      if (refused) {
        deps.metrics([
          count('WebRtcSessionsRefused', { name: 'Reason', value: 'unauthenticated' }),
        ]);
        return refused;
      }
      return await openSession(deps, request, onTimings);
    }
    const attach = ATTACH_PATH.exec(request.path);
    if (attach) {
      if (request.method !== 'POST')
        return errorOf(405, 'method_not_allowed', 'POST to attach.', {}, { allow: 'POST' });
      const refused = unauthenticated(deps.auth?.attach ?? 'open', request);
      if (refused) return refused;
      return await attachCall(deps, request, decodeURIComponent(attach[1] ?? ''));
    }
    return errorOf(
      404,
      'not_found',
      'No such route: POST /session or POST /calls/{call_id}/attach.',
    );
  } catch (error) {
    deps.log.error('webrtc endpoint failed', { error: errorMessage(error) });
    return errorOf(500, 'unavailable', 'The session could not be opened; try again.');
  }
}

/**
 * A 401 unless the request came through the route's authorizer. API Gateway refuses
 * unauthenticated requests before the Lambda runs; this catches a route that lost its authorizer
 * (added or edited outside the construct): the function then refuses rather than serving anyone.
 */
function unauthenticated(kind: AuthKind, request: EndpointRequest): EndpointResponse | undefined {
  if (kind === 'open' || request.authorizer?.kind === kind) return undefined;
  return errorOf(
    401,
    'unauthenticated',
    kind === 'jwt'
      ? 'A valid bearer token (JWT) is required.'
      : 'A SigV4-signed request from an allowed principal is required.',
  );
}

async function openSession(
  deps: WebRtcEndpointDeps,
  request: EndpointRequest,
  onTimings?: (timings: SessionTimings) => void,
): Promise<EndpointResponse> {
  const started = deps.clock();
  const refuse = (status: number, code: WebRtcErrorCode, message: string, headers = {}) => {
    deps.metrics([count('WebRtcSessionsRefused', { name: 'Reason', value: code })]);
    return errorOf(status, code, message, {}, headers);
  };
  const offer = checkOffer(request.headers, request.body, deps.maxSdpBytes);
  if (!offer.ok) return refuse(offer.status, offer.code, offer.message);
  const picked = selectProfile(request.query, request.headers, deps.profiles, deps.defaultProfile);
  if (!picked.ok) return refuse(picked.status, picked.code, picked.message);
  if (deps.perIp && request.sourceIp) {
    const { limiter, limit, windowSeconds } = deps.perIp;
    if (!(await limiter.take(`ip#${request.sourceIp}`, limit, windowSeconds)))
      return refuse(
        429,
        'rate_limited',
        `At most ${limit} sessions per ${windowSeconds} s from one address.`,
        {
          'retry-after': String(windowSeconds),
        },
      );
  }
  // A cheap read first: a full house answers 429 without creating a call at OpenAI.
  if ((await deps.store.activeCalls()) >= deps.maxConcurrentSessions)
    return refuse(429, 'too_many_sessions', 'Too many sessions right now; try again shortly.', {
      'retry-after': '5',
    });
  const session = webRtcSessionBody(picked.profile, deps.userTools);
  if (!session.ok) {
    // Props are validated at synth; reaching this is a bug.
    deps.log.error('invalid profile session', { profile: picked.name, problems: session.problems });
    return errorOf(500, 'unavailable', 'The profile cannot be used; see the logs.');
  }
  const boundary = deps.boundary?.() ?? `owh-${globalThis.crypto.randomUUID()}`;
  const upstream = createCallRequest(offer.sdp, session.body, boundary);
  const sentAt = deps.clock();
  let answer: Awaited<ReturnType<RealtimeCallsCreator['create']>>;
  try {
    answer = await deps.openAi.create(upstream);
  } catch (error) {
    deps.log.warn('OpenAI unreachable for a WebRTC call', { error: errorMessage(error) });
    deps.metrics([count('WebRtcSessionsRefused', { name: 'Reason', value: 'openai_unreachable' })]);
    return errorOf(502, 'openai_unreachable', 'OpenAI could not be reached; try again.');
  }
  const openAiMs = deps.clock() - sentAt;
  if (answer.status !== 201 && answer.status !== 200) {
    const mapped = openAiFailureResponse({ status: answer.status, body: answer.body });
    deps.log.warn('OpenAI refused a WebRTC call', {
      openaiStatus: answer.status,
      code: mapped.body.error.code,
    });
    deps.metrics([count('WebRtcSessionsRefused', { name: 'Reason', value: 'openai_error' })]);
    return {
      statusCode: 502,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(mapped.body),
    };
  }
  const callId = callIdFromLocation(answer.location);
  if (!callId || sdpProblem(answer.body) !== undefined) {
    deps.log.error('OpenAI answered without a call id or an SDP', { location: answer.location });
    if (callId) await deps.hangup(callId).catch(() => undefined);
    deps.metrics([count('WebRtcSessionsRefused', { name: 'Reason', value: 'invalid_answer' })]);
    return errorOf(502, 'invalid_answer', 'OpenAI answered without a call id or an SDP answer.');
  }
  const log = deps.log.with({ callId, profile: picked.name });
  const admitted = await admit(deps, log, callId, picked.name, started, undefined);
  if (admitted !== 'ok') {
    await deps
      .hangup(callId)
      .catch((error: unknown) =>
        log.warn('hangup of an unserved call failed', { error: errorMessage(error) }),
      );
    return admitted === 'full'
      ? refuse(429, 'too_many_sessions', 'Too many sessions right now; try again shortly.', {
          'retry-after': '5',
        })
      : errorOf(503, 'unavailable', 'The session could not be handed to a worker; try again.');
  }
  const totalMs = deps.clock() - started;
  deps.metrics([count('WebRtcSessionsOpened'), { name: 'WebRtcAnswerLatency', value: totalMs }]);
  log.info('webrtc session opened', { openAiMs, totalMs });
  onTimings?.({ openAiMs, totalMs });
  return {
    statusCode: 201,
    headers: {
      'content-type': 'application/sdp',
      location: `/v1/realtime/calls/${callId}`,
      [CALL_ID_HEADER]: callId,
      'cache-control': 'no-store',
    },
    body: answer.body,
  };
}

async function attachCall(
  deps: WebRtcEndpointDeps,
  request: EndpointRequest,
  callId: string,
): Promise<EndpointResponse> {
  if (!CALL_ID.test(callId))
    return errorOf(
      400,
      'invalid_call_id',
      'The call id must look like rtc_… (letters, digits, _).',
    );
  const body = parseAttachBody(request.body);
  if (!body.ok) return errorOf(body.status, body.code, body.message);
  const picked = selectProfile(
    body.profile === undefined ? {} : { profile: body.profile },
    {},
    deps.profiles,
    deps.defaultProfile,
  );
  if (!picked.ok) return errorOf(picked.status, picked.code, picked.message);
  const log = deps.log.with({ callId, profile: picked.name });
  const existing = await deps.store.get(callId);
  if (existing)
    return errorOf(
      409,
      'already_attached',
      'The call already has an owner (or an attach on its way).',
      {
        status: existing.status,
      },
    );
  if ((await deps.store.activeCalls()) >= deps.maxConcurrentSessions)
    return errorOf(
      429,
      'too_many_sessions',
      'Too many sessions right now; try again shortly.',
      {},
      {
        'retry-after': '5',
      },
    );
  const admitted = await admit(deps, log, callId, picked.name, deps.clock(), body.metadata);
  if (admitted === 'exists')
    return errorOf(
      409,
      'already_attached',
      'The call already has an owner (or an attach on its way).',
    );
  if (admitted === 'full')
    return errorOf(
      429,
      'too_many_sessions',
      'Too many sessions right now; try again shortly.',
      {},
      {
        'retry-after': '5',
      },
    );
  if (admitted !== 'ok')
    return errorOf(503, 'unavailable', 'The attach could not be queued; try again.');
  deps.metrics([count('WebRtcAttaches')]);
  return {
    statusCode: 202,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ call_id: callId, profile: picked.name, status: 'queued' }),
  };
}

/**
 * The call's record (`accepted`: OpenAI has the call), its capacity slot and the worker's signal.
 * `exists`: the record was there already; `full`: no slot (the record is ended, `busy`);
 * `unsignalled`: the signal could not be sent (the record is ended and the slot given back).
 */
async function admit(
  deps: WebRtcEndpointDeps,
  log: Logger,
  callId: string,
  profile: string,
  receivedAt: number,
  metadata: Record<string, string> | undefined,
): Promise<'ok' | 'exists' | 'full' | 'unsignalled'> {
  const now = deps.clock();
  const record: CallRecord = {
    callId,
    status: 'accepted',
    channel: 'webrtc',
    profile,
    sessionKey: profile,
    ...(metadata && Object.keys(metadata).length > 0 ? { metadata } : {}),
    eventId: `webrtc:${callId}`,
    webhookId: 'none',
    createdAt: Math.floor(now / 1000),
    receivedAt,
    handledAt: now,
    acceptedAt: now,
    expiresAt: Math.floor(now / 1000) + deps.recordTtlSeconds,
  };
  if (!(await deps.store.create(record))) return 'exists';
  if (!(await deps.store.reserveCapacity(callId, deps.maxConcurrentSessions))) {
    await deps.store.transition(callId, ['accepted'], 'ended', {
      endedAt: deps.clock(),
      rejectReason: 'busy',
    });
    log.info('webrtc session refused: full');
    return 'full';
  }
  const [cold] = await Promise.all([
    deps.scaler?.ensureRunning().catch((error: unknown) => {
      log.error('could not scale the sideband service', { error: errorMessage(error) });
      return false;
    }),
  ]);
  // Retries are for quick failures (a throttle, a refused connection). A send that stalls has
  // already had the SDK's own attempts (3, each cut at 2 s: adapters/aws-clients.ts); another
  // round of those would outlast the function's timeout, and the call would stay up at OpenAI
  // with nobody to hang it up.
  const firstAttempt = deps.clock();
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await deps.signals.signal({
        callId,
        reason: 'incoming',
        sessionKey: profile,
        sentAt: deps.clock(),
      });
      if (cold)
        await deps.store.transition(callId, ['accepted'], 'accepted', {
          waitedForColdWorker: true,
        });
      return 'ok';
    } catch (error) {
      log.warn('signal failed', { attempt, error: errorMessage(error) });
      if (deps.clock() - firstAttempt >= SIGNAL_RETRY_WINDOW_MS) break;
      if (attempt < 3) await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
  await deps.store.transition(
    callId,
    ['accepted'],
    'ended',
    { endedAt: deps.clock(), endReason: 'attach_failed' },
    { release: true },
  );
  return 'unsignalled';
}
