import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricsPublisher } from '../observability/metrics';
import type {
  CallRecord,
  CallStore,
  CallsApi,
  ServiceScaler,
  SignalPublisher,
} from '../ports/calls';
import type { CallFailureReason, CallMissedReason, CallRejectReason } from '../reasons';
import type { ConsumedEvent } from '../webhooks/process-event';
import { type AcceptBody, buildAcceptBody, validateAcceptBody } from './accept-body';
import { type CallPolicy, decideCall } from './call-policy';
import type { CallStatus } from './call-state';
import type { SessionConfig, ToolDefinition } from './session-config';
import { callPartiesOf, sipHeadersOf, sipMediaSecurityOf } from './sip';

/**
 * How long a delivery's claim on a call's decision holds off other deliveries of the same event.
 * It must outlast the handler (a live attempt never runs longer than the realtime consumer's
 * Lambda timeout, at most 10 s when calls are on) and end before a redelivery can come (the
 * queue's visibility timeout, 60 s, after the receive): lib/constructs/category-fanout.ts checks
 * both at synth.
 */
export const DECISION_LEASE_MS = 20_000;

/** Attempts of each store, signal and `/reject` call within one delivery, and the waits between. */
export const IN_HANDLER_RETRY = { attempts: 3, delaysMs: [100, 300] } as const;

/** SIP status sent to a call that rang longer than `maxRingAge` before we saw it. */
export const STALE_REJECT_STATUS = 480;

export interface IncomingCallDeps {
  readonly store: CallStore;
  readonly api: CallsApi;
  readonly signals: SignalPublisher;
  /** Present when the sideband service may be scaled to zero. */
  readonly scaler?: ServiceScaler;
  readonly policy: CallPolicy;
  readonly userTools: readonly ToolDefinition[];
  /** Transfer target names the model may use (the worker maps them to URIs). */
  readonly transferTargets: readonly string[];
  readonly callTtlSeconds: number;
  readonly clock: () => number;
  readonly metrics: MetricsPublisher;
  /** @default DECISION_LEASE_MS */
  readonly decisionLeaseMs?: number;
  /** Waits between in-handler retries. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** A token unique to this delivery attempt. @default crypto.randomUUID */
  readonly newToken?: () => string;
}

export type IncomingCallOutcome =
  | 'accepted'
  /** `/accept` timed out or failed after it may have reached OpenAI: the worker finds out. */
  | 'accept_uncertain'
  | 'rejected'
  | 'missed'
  | 'gone'
  | 'accept_failed'
  | 'resignaled'
  | 'owned_elsewhere'
  /** Another delivery of the same event is deciding the call right now. */
  | 'in_progress_elsewhere'
  | 'ignored';

/** Everything one delivery's steps share. */
interface Delivery {
  readonly deps: IncomingCallDeps;
  readonly callId: string;
  readonly token: string;
  readonly log: Logger;
}

/**
 * Decides a `realtime.call.incoming`: exactly one accept or reject per call, under duplicate
 * deliveries, concurrent consumers and redelivery after a crash.
 * - The call record, created with a conditional write keyed by `call_id`, belongs to the event
 *   that created it; another event for the same call changes nothing.
 * - The decision is claimed by one guarded move out of `ringing` (to `accepting` or `rejecting`)
 *   before OpenAI is called, and only the delivery that wins it counts the call, accepts or
 *   rejects it.
 * - Deliveries of the same event respect each other's claim (`handledBy` since `handledAt`) for
 *   `DECISION_LEASE_MS`; a claim older than that belongs to a delivery that died, and its
 *   redelivery resumes where it stopped (`accepting`: signal the worker; `rejecting`: reject again).
 * - Transient store, signal and `/reject` failures are retried within the delivery first
 *   (`IN_HANDLER_RETRY`): a redelivery comes after the queue's visibility timeout, when the caller
 *   has usually hung up.
 */
export async function handleIncomingCall(
  deps: IncomingCallDeps,
  event: ConsumedEvent,
  log: Logger,
): Promise<IncomingCallOutcome> {
  if (event.type !== 'realtime.call.incoming') return 'ignored';
  const callId = event.data.call_id;
  if (typeof callId !== 'string' || callId.length === 0) {
    log.warn('incoming call without call_id');
    return 'ignored';
  }
  const callLog = log.with({ callId });
  const { store, clock, policy } = deps;
  const delivery: Delivery = {
    deps,
    callId,
    token: (deps.newToken ?? (() => globalThis.crypto.randomUUID()))(),
    log: callLog,
  };
  const parties = callPartiesOf(sipHeadersOf(event.data), {
    ...(policy.trustAssertedIdentity !== undefined
      ? { trustAssertedIdentity: policy.trustAssertedIdentity }
      : {}),
    ...(policy.defaultCountry !== undefined ? { defaultCountry: policy.defaultCountry } : {}),
  });
  const mediaSecurity = sipMediaSecurityOf(event.data);
  const startedAt = clock();

  const record: CallRecord = {
    callId,
    status: 'ringing',
    ...(parties.from ? { from: parties.from } : {}),
    ...(parties.to ? { to: parties.to } : {}),
    callerSource: parties.callerSource,
    callerVerified: parties.callerSource === 'asserted',
    ...(mediaSecurity ? { sipMediaSecurity: mediaSecurity } : {}),
    eventId: event.eventId,
    webhookId: event.webhookId,
    createdAt: event.createdAt,
    receivedAt: event.receivedAt,
    handledAt: startedAt,
    handledBy: delivery.token,
    expiresAt: Math.floor(startedAt / 1000) + deps.callTtlSeconds,
  };
  const created = await retrying(delivery, 'create', () => store.create(record));
  // A slot this call reserved before an earlier attempt died: it must neither count against the
  // call itself nor stay taken when the call is then rejected or missed.
  let resumedWithSlot = false;
  if (!created) {
    const existing = (await retrying(delivery, 'get', () => store.get(callId))) as
      | CallRecord
      | undefined;
    if (!existing || existing.eventId !== event.eventId) {
      callLog.info('call already owned by another delivery');
      return 'owned_elsewhere';
    }
    // Our own event again. Unless the record is our own write (a create retried after an
    // ambiguous failure), another delivery of it got here first.
    if (existing.handledBy !== delivery.token) {
      const resumed = await resumeOrYield(delivery, existing, startedAt);
      if (resumed !== undefined) return resumed;
    }
    if (existing.status !== 'ringing') return 'owned_elsewhere';
    resumedWithSlot = existing.holdsCapacity === true;
  }

  const nowSeconds = Math.floor(clock() / 1000);
  const activeCalls = await retrying(delivery, 'activeCalls', () => store.activeCalls());
  const decision = decideCall(
    { from: parties.from, to: parties.to, createdAt: event.createdAt },
    policy,
    nowSeconds,
    activeCalls - (resumedWithSlot ? 1 : 0),
  );
  if (decision.kind === 'missed') {
    callLog.info('stale call not accepted', { ageSeconds: nowSeconds - event.createdAt });
    return rejectCall(delivery, STALE_REJECT_STATUS, 'stale');
  }
  if (decision.kind === 'reject') return rejectCall(delivery, decision.status, decision.reason);
  if (
    !(await retrying(delivery, 'reserveCapacity', () =>
      store.reserveCapacity(callId, policy.maxConcurrentCalls),
    ))
  ) {
    return rejectCall(delivery, 486, 'busy');
  }
  const built = acceptBodyFor(deps, decision.session);
  if (!built.ok) {
    // Props are validated at synth; reaching this is a bug, and the caller must not ring forever.
    callLog.error('invalid session config', { problems: built.problems });
    return rejectCall(delivery, 503, 'invalid_session');
  }
  if (!(await move(delivery, ['ringing'], 'accepting', { sessionKey: decision.sessionKey })))
    return 'owned_elsewhere';
  // Counted once per call: only the delivery that claimed the decision gets here.
  deps.metrics([count('CallsIncoming')]);
  return acceptCall(delivery, event, built.body, decision.sessionKey, parties);
}

/**
 * Another delivery of the same event created or claimed the call. Returns the outcome when this
 * delivery is done (the call is decided, or is being decided right now), or `undefined` when it
 * took over a claim whose delivery died and the call is still `ringing` (decide it).
 */
async function resumeOrYield(
  delivery: Delivery,
  existing: CallRecord,
  startedAt: number,
): Promise<IncomingCallOutcome | undefined> {
  const { deps, log } = delivery;
  const status = existing.status;
  if (status === 'accepted') {
    // Accepted and recorded: only the signal may be missing (it failed, or the delivery died).
    // Never accept twice: the worker attaches and the sideband tells whether the call lives.
    await signalWorker(delivery, existing.sessionKey ?? 'default');
    return 'resignaled';
  }
  if (status !== 'ringing' && status !== 'accepting' && status !== 'rejecting')
    return 'owned_elsewhere';
  if (startedAt - (existing.handledAt ?? 0) < (deps.decisionLeaseMs ?? DECISION_LEASE_MS)) {
    log.info('call being decided by another delivery of the same event', { status });
    return 'in_progress_elsewhere';
  }
  // The claim is stale: its delivery died. Take it over, guarded by the status it left.
  const claim: Partial<CallRecord> = { handledAt: startedAt, handledBy: delivery.token };
  if (!(await move(delivery, [status], status, claim))) return 'owned_elsewhere';
  log.info('resuming a call whose delivery stopped', { status });
  if (status === 'accepting') {
    // A crash mid-accept is never followed by a second accept: the worker finds out.
    await signalWorker(delivery, existing.sessionKey ?? 'default');
    return 'resignaled';
  }
  if (status === 'rejecting') {
    return finishReject(
      delivery,
      existing.rejectStatus ?? deps.policy.rejectStatus,
      existing.rejectReason ?? 'denied',
    );
  }
  return undefined;
}

/** Accepts the claimed call (`accepting`), then signals the worker. */
async function acceptCall(
  delivery: Delivery,
  event: ConsumedEvent,
  body: AcceptBody,
  sessionKey: string,
  parties: { readonly from: string | undefined; readonly to: string | undefined },
): Promise<IncomingCallOutcome> {
  const { deps, callId, log } = delivery;
  const { clock } = deps;
  // The call never got a sideband: end it and give its capacity slot back.
  const endUnanswered = async (endReason: CallFailureReason) => {
    deps.metrics([count('CallsFailed', { name: 'Reason', value: endReason })]);
    await move(
      delivery,
      ['accepting'],
      'ended',
      { endReason, endedAt: clock() },
      { release: true },
    );
  };
  let accepted: 'accepted' | 'gone';
  let cold = false;
  try {
    const [result, wasCold] = await Promise.all([
      deps.api.accept(callId, body),
      ensureWorker(deps, log),
    ]);
    accepted = result;
    cold = wasCold;
  } catch (error) {
    if (acceptMayHaveSucceeded(error)) {
      // A timeout, a network error or a 5xx: OpenAI may have taken the call. Ending it here could
      // strand an accepted caller in silence, and accepting again is never safe. The worker
      // attaches; a 404 on attach ends the call and gives the slot back.
      log.warn('accept outcome unknown: signalling the worker to find out', {
        error: errorMessage(error),
      });
      await signalWorker(delivery, sessionKey);
      return 'accept_uncertain';
    }
    log.error('accept refused', { error: errorMessage(error) });
    await endUnanswered('accept_failed');
    return 'accept_failed';
  }
  if (accepted === 'gone') {
    log.info('call gone before accept (404 call_id_not_found)');
    await endUnanswered('gone_before_accept');
    return 'gone';
  }
  const acceptedAt = clock();
  await move(delivery, ['accepting'], 'accepted', {
    acceptedAt,
    ...(cold ? { waitedForColdWorker: true } : {}),
  });
  await signalWorker(delivery, sessionKey);
  deps.metrics([
    count('CallsAccepted'),
    { name: 'AcceptLatency', value: acceptedAt - event.receivedAt },
  ]);
  log.info('call accepted', {
    from: parties.from,
    to: parties.to,
    sessionKey,
    webhookToAcceptMs: acceptedAt - event.receivedAt,
    coldWorker: cold,
  });
  return 'accepted';
}

/**
 * Whether a failed `/accept` may still have been taken by OpenAI. Only a definite answer says
 * no: an error with an HTTP `status` of 4xx (a 404 is answered as `gone` before it gets here).
 * An adapter marks `mayHaveSucceeded` when an earlier attempt of a retried request was itself
 * uncertain (a timeout, then a 4xx to the retry). Anything else (timeouts, network errors, 5xx,
 * errors without a status) may have reached OpenAI.
 */
export function acceptMayHaveSucceeded(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return true;
  const { mayHaveSucceeded, status } = error as { mayHaveSucceeded?: unknown; status?: unknown };
  if (typeof mayHaveSucceeded === 'boolean') return mayHaveSucceeded;
  return !(typeof status === 'number' && status >= 400 && status < 500);
}

/**
 * Claims the decision (`ringing → rejecting`, with the status and reason on the record), so that
 * a concurrent delivery neither rejects nor counts the call again, then rejects it.
 */
async function rejectCall(
  delivery: Delivery,
  status: number,
  reason: CallRejectReason | CallMissedReason,
): Promise<IncomingCallOutcome> {
  if (
    !(await move(delivery, ['ringing'], 'rejecting', {
      rejectReason: reason,
      rejectStatus: status,
    }))
  )
    return 'owned_elsewhere';
  delivery.deps.metrics([count('CallsIncoming')]);
  return finishReject(delivery, status, reason);
}

/**
 * `/reject` for a call in `rejecting`, then its final status: `missed` for a stale call (a gone
 * call answers 404, which is fine), else `rejected`. With `release`, a slot the call holds
 * (reserved before a crash, or before an invalid session was found) is given back in the same
 * write. Only the delivery whose final move applies counts the outcome.
 */
async function finishReject(
  delivery: Delivery,
  status: number,
  reason: CallRejectReason | CallMissedReason,
): Promise<IncomingCallOutcome> {
  const { deps, callId, log } = delivery;
  const result = await retrying(delivery, 'reject', () => deps.api.reject(callId, status));
  const final = reason === 'stale' ? 'missed' : 'rejected';
  const moved = await move(
    delivery,
    ['rejecting'],
    final,
    { endedAt: deps.clock() },
    { release: true },
  );
  if (!moved) return 'owned_elsewhere';
  if (reason === 'stale') {
    deps.metrics([count('CallsMissed')]);
    log.info('stale call rejected and recorded as missed', { status, gone: result === 'gone' });
    return 'missed';
  }
  log.info('call rejected', { reason, status, gone: result === 'gone' });
  deps.metrics([count('CallsRejected', { name: 'Reason', value: reason })]);
  return result === 'gone' ? 'gone' : 'rejected';
}

/** The accept body, or why it cannot be sent (an unknown tool name throws while building). */
function acceptBodyFor(
  deps: IncomingCallDeps,
  session: SessionConfig,
): { ok: true; body: AcceptBody } | { ok: false; problems: string[] } {
  try {
    const body = buildAcceptBody(session, deps.userTools, deps.transferTargets);
    const problems = validateAcceptBody(body);
    return problems.length === 0 ? { ok: true, body } : { ok: false, problems };
  } catch (error) {
    return { ok: false, problems: [errorMessage(error)] };
  }
}

async function ensureWorker(deps: IncomingCallDeps, log: Logger): Promise<boolean> {
  if (!deps.scaler) return false;
  try {
    return await deps.scaler.ensureRunning();
  } catch (error) {
    // The signal still waits in the queue for whichever worker comes up.
    log.error('could not scale the sideband service', { error: errorMessage(error) });
    return false;
  }
}

function signalWorker(delivery: Delivery, sessionKey: string): Promise<void> {
  const { deps, callId, log } = delivery;
  log.debug('signalling the sideband service');
  return retrying(delivery, 'signal', () =>
    deps.signals.signal({ callId, reason: 'incoming', sessionKey, sentAt: deps.clock() }),
  );
}

/**
 * A guarded status move, retried on failure. A retried move that finds its guard gone checks
 * whether the failed attempt had in fact applied (the record is at `to` and still ours).
 */
async function move(
  delivery: Delivery,
  from: readonly CallStatus[],
  to: CallStatus,
  fields: Partial<CallRecord> = {},
  options: { release?: boolean } = {},
): Promise<boolean> {
  const { deps, callId, token } = delivery;
  let failedBefore = false;
  const applied = await retrying(
    delivery,
    `transition to ${to}`,
    () => deps.store.transition(callId, from, to, fields, options),
    () => {
      failedBefore = true;
    },
  );
  if (applied || !failedBefore) return applied;
  const record = (await retrying(delivery, 'get', () => deps.store.get(callId))) as
    | CallRecord
    | undefined;
  return record?.status === to && record.handledBy === token;
}

/** Runs `op`, retrying a throw `IN_HANDLER_RETRY.attempts` times in all, then rethrows. */
async function retrying<T>(
  delivery: Delivery,
  what: string,
  op: () => Promise<T>,
  onFailure: () => void = () => undefined,
): Promise<T> {
  const sleep = delivery.deps.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (error) {
      onFailure();
      if (attempt >= IN_HANDLER_RETRY.attempts) throw error;
      delivery.log.warn('retrying a failed step', {
        step: what,
        attempt,
        error: errorMessage(error),
      });
      await sleep(IN_HANDLER_RETRY.delaysMs[attempt - 1] ?? 300);
    }
  }
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
