import { errorMessage, type Logger } from '../observability/logger';
import { count, type MetricsPublisher } from '../observability/metrics';
import type { CallStore, CallsApi, ServiceScaler, SignalPublisher } from '../ports/calls';
import type { CallFailureReason, CallRejectReason } from '../reasons';
import type { ConsumedEvent } from '../webhooks/process-event';
import { type AcceptBody, buildAcceptBody, validateAcceptBody } from './accept-body';
import { type CallPolicy, decideCall } from './call-policy';
import type { SessionConfig, ToolDefinition } from './session-config';
import { callPartiesOf, sipHeadersOf, sipMediaSecurityOf } from './sip';

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
}

export type IncomingCallOutcome =
  | 'accepted'
  | 'rejected'
  | 'missed'
  | 'gone'
  | 'accept_failed'
  | 'resignaled'
  | 'owned_elsewhere'
  | 'ignored';

/**
 * Decides a `realtime.call.incoming`: exactly one accept or reject per call, under duplicate
 * deliveries, concurrent consumers and redelivery after a crash. The call record, created with a
 * conditional write keyed by `call_id`, is the single owner: only the delivery of the event that
 * created it may decide, and each step is a guarded status transition.
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
  const { store, clock } = deps;
  const parties = callPartiesOf(sipHeadersOf(event.data));
  const mediaSecurity = sipMediaSecurityOf(event.data);

  const created = await store.create({
    callId,
    status: 'ringing',
    ...(parties.from ? { from: parties.from } : {}),
    ...(parties.to ? { to: parties.to } : {}),
    ...(mediaSecurity ? { sipMediaSecurity: mediaSecurity } : {}),
    eventId: event.eventId,
    webhookId: event.webhookId,
    createdAt: event.createdAt,
    receivedAt: event.receivedAt,
    handledAt: clock(),
    expiresAt: Math.floor(clock() / 1000) + deps.callTtlSeconds,
  });
  // A slot this call reserved before an earlier attempt died: it must neither count against the
  // call itself nor stay taken when the call is then rejected or missed.
  let resumedWithSlot = false;
  if (!created) {
    const existing = await store.get(callId);
    if (!existing || existing.eventId !== event.eventId) {
      callLog.info('call already owned by another delivery');
      return 'owned_elsewhere';
    }
    // Our own event again: a crash or a failure interrupted us. Resume where we stopped.
    if (existing.status === 'accepting' || existing.status === 'accepted') {
      // Never accept twice: let a worker attach; the sideband tells whether the call is alive.
      await signalWorker(deps, callId, existing.sessionKey ?? 'default', callLog);
      return 'resignaled';
    }
    if (existing.status !== 'ringing') return 'owned_elsewhere';
    resumedWithSlot = existing.holdsCapacity === true;
  }

  const nowSeconds = Math.floor(clock() / 1000);
  const decision = decideCall(
    { ...parties, createdAt: event.createdAt },
    deps.policy,
    nowSeconds,
    (await store.activeCalls()) - (resumedWithSlot ? 1 : 0),
  );
  // Counted once per call: only the delivery that owns the ringing record gets here.
  deps.metrics([count('CallsIncoming')]);
  if (decision.kind === 'missed') {
    await store.transition(
      callId,
      ['ringing'],
      'missed',
      { rejectReason: 'stale', endedAt: clock() },
      { release: true },
    );
    callLog.info('stale call not accepted', { ageSeconds: nowSeconds - event.createdAt });
    deps.metrics([count('CallsMissed')]);
    return 'missed';
  }
  if (
    decision.kind === 'accept' &&
    !(await store.reserveCapacity(callId, deps.policy.maxConcurrentCalls))
  ) {
    return reject(deps, callId, 486, 'busy', callLog);
  }
  if (decision.kind === 'reject')
    return reject(deps, callId, decision.status, decision.reason, callLog);

  const built = acceptBodyFor(deps, decision.session);
  if (!built.ok) {
    // Props are validated at synth; reaching this is a bug, and the caller must not ring forever.
    callLog.error('invalid session config', { problems: built.problems });
    return reject(deps, callId, 503, 'invalid_session', callLog);
  }
  const body = built.body;
  if (
    !(await store.transition(callId, ['ringing'], 'accepting', { sessionKey: decision.sessionKey }))
  )
    return 'owned_elsewhere';

  // The call never got a sideband: end it and give its capacity slot back.
  const endUnanswered = async (endReason: CallFailureReason) => {
    deps.metrics([count('CallsFailed', { name: 'Reason', value: endReason })]);
    await store.transition(
      callId,
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
      ensureWorker(deps, callLog),
    ]);
    accepted = result;
    cold = wasCold;
  } catch (error) {
    callLog.error('accept failed', { error: errorMessage(error) });
    await endUnanswered('accept_failed');
    return 'accept_failed';
  }
  if (accepted === 'gone') {
    callLog.info('call gone before accept (404 call_id_not_found)');
    await endUnanswered('gone_before_accept');
    return 'gone';
  }
  const acceptedAt = clock();
  await store.transition(callId, ['accepting'], 'accepted', {
    acceptedAt,
    ...(cold ? { waitedForColdWorker: true } : {}),
  });
  await signalWorker(deps, callId, decision.sessionKey, callLog);
  deps.metrics([
    count('CallsAccepted'),
    { name: 'AcceptLatency', value: acceptedAt - event.receivedAt },
  ]);
  callLog.info('call accepted', {
    from: parties.from,
    to: parties.to,
    sessionKey: decision.sessionKey,
    webhookToAcceptMs: acceptedAt - event.receivedAt,
    coldWorker: cold,
  });
  return 'accepted';
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

async function reject(
  deps: IncomingCallDeps,
  callId: string,
  status: number,
  reason: CallRejectReason,
  log: Logger,
): Promise<'rejected' | 'gone'> {
  const result = await deps.api.reject(callId, status);
  // With `release`, a slot the call holds (reserved before a crash, or before an invalid
  // session was found) is given back in the same write; a call without one just moves.
  await deps.store.transition(
    callId,
    ['ringing'],
    'rejected',
    { rejectReason: reason, rejectStatus: status, endedAt: deps.clock() },
    { release: true },
  );
  log.info('call rejected', { reason, status, gone: result === 'gone' });
  deps.metrics([count('CallsRejected', { name: 'Reason', value: reason })]);
  return result === 'gone' ? 'gone' : 'rejected';
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

function signalWorker(
  deps: IncomingCallDeps,
  callId: string,
  sessionKey: string,
  log: Logger,
): Promise<void> {
  log.debug('signalling the sideband service');
  return deps.signals.signal({ callId, reason: 'incoming', sessionKey, sentAt: deps.clock() });
}
