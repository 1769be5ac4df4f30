import { describe, expect, it } from 'vitest';
import { buildAcceptBody, validateAcceptBody } from '#core/calls/accept-body';
import type { CallPolicy } from '#core/calls/call-policy';
import {
  DECISION_LEASE_MS,
  handleIncomingCall,
  type IncomingCallDeps,
} from '#core/calls/incoming-call';
import type { SessionConfig, ToolDefinition } from '#core/calls/session-config';
import type { ConsumedEvent } from '#core/webhooks/process-event';
import {
  apiError,
  CapturingLogger,
  FakeCallsApi,
  FakeClock,
  FakeServiceScaler,
  Gate,
  InMemoryCallStore,
  InMemorySignalPublisher,
  Journal,
  MetricsRecorder,
  settle,
  T0,
} from '../support/fakes';

/** The incoming-call use case against in-memory ports: no DynamoDB, no SQS, no network. */

const SESSION: SessionConfig = {
  model: 'gpt-realtime-2.1',
  instructions: 'Be brief.',
  voice: 'marin',
  greeting: 'Hello!',
  tools: ['lookup_order'],
};
const SALES = '+18005550199';
const TOOLS: ToolDefinition[] = [
  {
    name: 'lookup_order',
    description: 'Find an order.',
    parameters: { type: 'object', properties: { id: { type: 'string' } } },
  },
];
const TARGETS = ['support'];
const POLICY: CallPolicy = {
  callers: { deny: ['+1900*'] },
  dialled: { deny: ['+1900*'] },
  maxConcurrentCalls: 2,
  maxRingAgeSeconds: 30,
  rejectStatus: 603,
  sessions: { default: SESSION, [SALES]: { ...SESSION, voice: 'cedar' } },
};
const TTL = 90 * 24 * 3600;
const CALLER = '+14155550123';
const DIALLED = '+18005550100';

function calls(options: { policy?: Partial<CallPolicy>; scaler?: FakeServiceScaler } = {}) {
  const journal = new Journal();
  const clock = new FakeClock();
  const store = new InMemoryCallStore(journal);
  const api = new FakeCallsApi(journal);
  const signals = new InMemorySignalPublisher(journal);
  const metrics = new MetricsRecorder();
  const log = new CapturingLogger();
  const sleeps: number[] = [];
  let tokens = 0;
  const deps: IncomingCallDeps = {
    store,
    api,
    signals,
    ...(options.scaler ? { scaler: options.scaler } : {}),
    policy: { ...POLICY, ...options.policy },
    userTools: TOOLS,
    transferTargets: TARGETS,
    callTtlSeconds: TTL,
    clock: clock.read,
    metrics: metrics.publish,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    newToken: () => `tok_${++tokens}`,
  };
  const handle = (event: ConsumedEvent) => handleIncomingCall(deps, event, log);
  return { deps, handle, journal, clock, store, api, signals, metrics, log, sleeps };
}
type Calls = ReturnType<typeof calls>;

let sequence = 0;
/** A `realtime.call.incoming` as the consumer hands it over, rung 2 s before the fake now. */
function incoming(
  c: Calls,
  options: {
    callId?: string;
    from?: string;
    to?: string;
    createdAt?: number;
    headers?: { name: string; value: string }[];
  } = {},
): ConsumedEvent {
  sequence++;
  const callId = options.callId ?? `rtc_${sequence}`;
  return {
    eventId: `evt_${sequence}`,
    webhookId: `wh_${sequence}`,
    type: 'realtime.call.incoming',
    category: 'realtime',
    createdAt: options.createdAt ?? c.clock.seconds - 2,
    receivedAt: c.clock.now - 1500,
    data: {
      call_id: callId,
      sip_headers: [
        { name: 'From', value: `"Caller" <sip:${options.from ?? CALLER}@sip.example.com>;tag=1` },
        { name: 'To', value: `sip:${options.to ?? DIALLED}@sip.api.openai.com` },
        ...(options.headers ?? []),
      ],
    },
    attempt: 1,
  };
}
const callIdOf = (event: ConsumedEvent) => String(event.data.call_id);
/** A redelivery: after the queue's visibility timeout (60 s), so past any claim's lease. */
const REDELIVERY_MS = 60_000;

describe('handleIncomingCall: accepting', () => {
  it('accepts with the session body, records it, takes a slot and signals the worker', async () => {
    const c = calls();
    const event = incoming(c);
    const callId = callIdOf(event);
    // The accept takes 300 ms.
    const accept = c.api.accept.bind(c.api);
    c.api.accept = async (id, body) => {
      c.clock.advance(300);
      return accept(id, body);
    };

    expect(await c.handle(event)).toBe('accepted');

    const body = buildAcceptBody(SESSION, TOOLS, TARGETS);
    expect(validateAcceptBody(body)).toEqual([]);
    expect(c.api.accepts).toEqual([{ callId, body }]);
    expect(c.api.rejects).toEqual([]);
    expect(c.store.records.get(callId)).toEqual({
      callId,
      status: 'accepted',
      from: CALLER,
      to: DIALLED,
      callerSource: 'from',
      callerVerified: false,
      eventId: event.eventId,
      webhookId: event.webhookId,
      createdAt: event.createdAt,
      receivedAt: event.receivedAt,
      handledAt: T0,
      handledBy: 'tok_1',
      expiresAt: Math.floor(T0 / 1000) + TTL,
      holdsCapacity: true,
      sessionKey: 'default',
      acceptedAt: T0 + 300,
    });
    expect(c.store.active).toBe(1);
    expect(c.signals.signals).toEqual([
      { callId, reason: 'incoming', sessionKey: 'default', sentAt: T0 + 300 },
    ]);
    // The worker is signalled only once the call is recorded as accepted.
    expect(c.journal.entries).toEqual([
      'calls.create',
      'calls.reserveCapacity',
      'calls.transition:accepting',
      'api.accept',
      'calls.transition:accepted',
      'signals.signal',
    ]);
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsAccepted', 'AcceptLatency']);
    expect(c.metrics.value('AcceptLatency')).toBe(1800);
    const accepted = c.log.find('call accepted');
    expect(accepted?.fields).toMatchObject({
      callId,
      sessionKey: 'default',
      webhookToAcceptMs: 1800,
      coldWorker: false,
    });
  });

  it('uses the session of the dialled number', async () => {
    const c = calls();
    const event = incoming(c, { to: SALES });
    expect(await c.handle(event)).toBe('accepted');
    const body = c.api.accepts[0]?.body as { audio: { output: { voice: string } } };
    expect(body.audio.output.voice).toBe('cedar');
    expect(c.store.records.get(callIdOf(event))?.sessionKey).toBe(SALES);
    expect(c.signals.signals[0]?.sessionKey).toBe(SALES);
  });

  it('ignores other event types and a call without call_id', async () => {
    const c = calls();
    const event = incoming(c);
    expect(await c.handle({ ...event, type: 'realtime.call.ended' })).toBe('ignored');
    expect(await c.handle({ ...event, data: { sip_headers: [] } })).toBe('ignored');
    expect(c.log.messages('warn')).toEqual(['incoming call without call_id']);
    expect(c.journal.entries).toEqual([]);
    expect(c.metrics.points).toEqual([]);
  });
});

describe('handleIncomingCall: exactly one accept per call', () => {
  it('does not accept a redelivered event twice: it signals the worker again', async () => {
    const c = calls();
    const event = incoming(c);
    expect(await c.handle(event)).toBe('accepted');

    expect(await c.handle({ ...event, attempt: 2 })).toBe('resignaled');

    expect(c.api.accepts).toHaveLength(1);
    expect(c.signals.signals.map((s) => [s.callId, s.sessionKey])).toEqual([
      [callIdOf(event), 'default'],
      [callIdOf(event), 'default'],
    ]);
    expect(c.store.active).toBe(1);
    expect(c.metrics.names().filter((n) => n === 'CallsIncoming')).toHaveLength(1);
  });

  it('accepts once when the same event is delivered to two consumers at once', async () => {
    const c = calls();
    const event = incoming(c);
    const outcomes = await Promise.all([c.handle(event), c.handle(event)]);
    expect(outcomes).toContain('accepted');
    expect(outcomes.filter((o) => o === 'accepted')).toHaveLength(1);
    expect(c.api.accepts).toHaveLength(1);
    expect(c.store.active).toBe(1);
    expect(c.store.records.get(callIdOf(event))?.status).toBe('accepted');
    expect(outcomes).toContain('in_progress_elsewhere');
    expect(c.metrics.names().filter((n) => n === 'CallsIncoming')).toHaveLength(1);
  });

  it('rejects a denied call once when the same event reaches two consumers at once', async () => {
    const c = calls();
    const event = incoming(c, { from: '+19005550123' });
    const gate = new Gate();
    c.api.rejectGate = gate;
    const first = c.handle(event);
    await settle(() => c.api.rejects.length === 1, 'the first reject');
    c.api.rejectGate = undefined;
    // The duplicate arrives while the first delivery is inside /reject.
    expect(await c.handle(event)).toBe('in_progress_elsewhere');
    gate.open();
    expect(await first).toBe('rejected');

    expect(c.api.rejects).toEqual([{ callId: callIdOf(event), statusCode: 603 }]);
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsRejected{denied}']);
    expect(c.store.records.get(callIdOf(event))?.status).toBe('rejected');
  });

  it('decides once under two concurrent deliveries however they interleave', async () => {
    for (const from of ['+19005550123', CALLER]) {
      const c = calls();
      const event = incoming(c, { from });
      const outcomes = await Promise.all([c.handle(event), c.handle(event)]);
      expect(outcomes.filter((o) => o === 'in_progress_elsewhere')).toHaveLength(1);
      expect(c.api.rejects.length + c.api.accepts.length).toBe(1);
      expect(c.metrics.names().filter((n) => n === 'CallsIncoming')).toHaveLength(1);
      expect(c.metrics.names().filter((n) => /^Calls(Rejected|Accepted)/.test(n))).toHaveLength(1);
    }
  });

  it('leaves a call owned by another event alone', async () => {
    const c = calls();
    const first = incoming(c);
    expect(await c.handle(first)).toBe('accepted');
    const other = incoming(c, { callId: callIdOf(first) });
    expect(await c.handle(other)).toBe('owned_elsewhere');
    expect(c.api.accepts).toHaveLength(1);
    expect(c.signals.signals).toHaveLength(1);
    expect(c.log.messages()).toContain('call already owned by another delivery');
  });

  it('after a crash between accept and record, signals the worker instead of accepting again', async () => {
    const c = calls();
    const event = incoming(c);
    c.store.failTransitionTo = 'accepted';
    c.store.failTransitionTimes = 3;
    await expect(c.handle(event)).rejects.toThrow('DynamoDB unavailable');
    expect(c.store.records.get(callIdOf(event))?.status).toBe('accepting');
    expect(c.signals.signals).toEqual([]);

    // A duplicate within the lease leaves the claim alone: the first delivery may still be alive.
    expect(await c.handle({ ...event, attempt: 2 })).toBe('in_progress_elsewhere');
    c.clock.advance(REDELIVERY_MS);
    expect(await c.handle({ ...event, attempt: 2 })).toBe('resignaled');

    expect(c.api.accepts).toHaveLength(1);
    expect(c.signals.signals).toEqual([
      {
        callId: callIdOf(event),
        reason: 'incoming',
        sessionKey: 'default',
        sentAt: T0 + REDELIVERY_MS,
      },
    ]);
    expect(c.store.records.get(callIdOf(event))).toMatchObject({ handledBy: 'tok_3' });
  });

  it('retries a failed signal on redelivery, without a second accept', async () => {
    const c = calls();
    const event = incoming(c);
    c.signals.faults.fail('signal', new Error('SQS is down'), 3);
    await expect(c.handle(event)).rejects.toThrow('SQS is down');
    expect(c.store.records.get(callIdOf(event))?.status).toBe('accepted');

    expect(await c.handle({ ...event, attempt: 2 })).toBe('resignaled');
    expect(c.api.accepts).toHaveLength(1);
    expect(c.signals.signals).toHaveLength(1);
  });

  it('resumes a call still ringing after a crash before the accept', async () => {
    const c = calls({ policy: { maxRingAgeSeconds: 120 } });
    const event = incoming(c);
    c.store.faults.fail('reserveCapacity', new Error('DynamoDB unavailable'), 3);
    await expect(c.handle(event)).rejects.toThrow('DynamoDB unavailable');
    expect(c.store.records.get(callIdOf(event))?.status).toBe('ringing');

    c.clock.advance(REDELIVERY_MS);
    expect(await c.handle({ ...event, attempt: 2 })).toBe('accepted');
    expect(c.api.accepts).toHaveLength(1);
    expect(c.store.active).toBe(1);
  });
});

describe('handleIncomingCall: a slot reserved before a crash is never leaked', () => {
  it('does not count its own slot against itself on resume (maxConcurrentCalls 1)', async () => {
    const c = calls({ policy: { maxConcurrentCalls: 1, maxRingAgeSeconds: 120 } });
    const event = incoming(c);
    // The slot is taken, then the store fails on the move to accepting: the attempt dies.
    c.store.failTransitionTo = 'accepting';
    c.store.failTransitionTimes = 3;
    await expect(c.handle(event)).rejects.toThrow();
    expect(c.store.active).toBe(1);

    c.clock.advance(REDELIVERY_MS);
    expect(await c.handle({ ...event, attempt: 2 })).toBe('accepted');
    expect(c.api.accepts).toHaveLength(1);
    expect(c.api.rejects).toHaveLength(0);
    expect(c.store.active).toBe(1);
  });

  it('gives the slot back when a resumed call has gone stale and is recorded as missed', async () => {
    const c = calls();
    const event = incoming(c);
    c.store.failTransitionTo = 'accepting';
    c.store.failTransitionTimes = 3;
    await expect(c.handle(event)).rejects.toThrow();
    expect(c.store.active).toBe(1);

    c.clock.advance(REDELIVERY_MS);
    expect(await c.handle({ ...event, attempt: 2 })).toBe('missed');
    expect(c.store.records.get(callIdOf(event))?.status).toBe('missed');
    expect(c.api.rejects).toEqual([{ callId: callIdOf(event), statusCode: 480 }]);
    expect(c.store.active).toBe(0);
  });

  it('rejects with 503, records it and holds no slot when the accept body cannot be built', async () => {
    const c = calls();
    const broken = { ...c.deps, userTools: [] as ToolDefinition[] };
    const event = incoming(c);
    const outcome = await handleIncomingCall(broken, event, c.log);
    expect(outcome).toBe('rejected');
    expect(c.api.rejects).toEqual([expect.objectContaining({ statusCode: 503 })]);
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'rejected',
      rejectReason: 'invalid_session',
    });
    expect(c.store.active).toBe(0);
  });
});

describe('handleIncomingCall: rejecting', () => {
  it.each([
    ['a denied caller', { from: '+19005550123' }, {}, 603, 'denied'],
    ['a denied dialled number', { to: '+19005550100' }, {}, 603, 'denied'],
    ['a caller not on the allow list', {}, { callers: { allow: ['+1212*'] } }, 603, 'not_allowed'],
    [
      'a dialled number not on the allow list',
      {},
      { dialled: { allow: ['+1888*'] } },
      603,
      'not_allowed',
    ],
    ['a reject status of choice', { from: '+19005550123' }, { rejectStatus: 486 }, 486, 'denied'],
  ] as const)('rejects %s with the reason', async (_name, parties, policy, status, reason) => {
    const c = calls({ policy });
    const event = incoming(c, parties);
    const callId = callIdOf(event);

    expect(await c.handle(event)).toBe('rejected');

    expect(c.api.rejects).toEqual([{ callId, statusCode: status }]);
    expect(c.api.accepts).toEqual([]);
    expect(c.store.records.get(callId)).toMatchObject({
      status: 'rejected',
      rejectReason: reason,
      rejectStatus: status,
      endedAt: T0,
    });
    expect(c.store.records.get(callId)?.holdsCapacity).toBeUndefined();
    expect(c.store.active).toBe(0);
    expect(c.signals.signals).toEqual([]);
    expect(c.metrics.names()).toEqual(['CallsIncoming', `CallsRejected{${reason}}`]);
    expect(c.log.find('call rejected')?.fields).toMatchObject({ reason, status, gone: false });
  });

  it('accepts a caller on the allow list', async () => {
    const c = calls({ policy: { callers: { allow: ['+1415*'] } } });
    expect(await c.handle(incoming(c))).toBe('accepted');
  });

  it('claims the decision (rejecting) before /reject, then records the rejection', async () => {
    const c = calls();
    const event = incoming(c, { from: '+19005550123' });
    expect(await c.handle(event)).toBe('rejected');
    expect(c.journal.entries).toEqual([
      'calls.create',
      'calls.transition:rejecting',
      'api.reject',
      'calls.transition:rejected',
    ]);
  });

  it('finishes a rejection after a crash between the claim and /reject, rejecting once more only then', async () => {
    const c = calls();
    const event = incoming(c, { from: '+19005550123' });
    c.api.rejectResult = apiError(0, 'POST /reject failed: TimeoutError');
    await expect(c.handle(event)).rejects.toThrow('TimeoutError');
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'rejecting',
      rejectReason: 'denied',
      rejectStatus: 603,
    });
    expect(c.api.rejects).toHaveLength(3);

    c.api.rejectResult = 'rejected';
    expect(await c.handle({ ...event, attempt: 2 })).toBe('in_progress_elsewhere');
    expect(c.api.rejects).toHaveLength(3);
    c.clock.advance(REDELIVERY_MS);
    expect(await c.handle({ ...event, attempt: 2 })).toBe('rejected');

    expect(c.api.rejects).toHaveLength(4);
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'rejected',
      rejectReason: 'denied',
    });
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsRejected{denied}']);
    expect(await c.handle({ ...event, attempt: 3 })).toBe('owned_elsewhere');
  });

  it('rejects with 486 busy when the account is at its concurrent-call limit', async () => {
    const c = calls({ policy: { maxConcurrentCalls: 1 } });
    c.store.occupy('rtc_other');
    const event = incoming(c);
    expect(await c.handle(event)).toBe('rejected');
    expect(c.api.rejects).toEqual([{ callId: callIdOf(event), statusCode: 486 }]);
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'rejected',
      rejectReason: 'busy',
      rejectStatus: 486,
    });
    expect(c.store.active).toBe(1);
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsRejected{busy}']);
  });

  it('rejects with 486 busy when the last slot is taken between the count and the reservation', async () => {
    const c = calls({ policy: { maxConcurrentCalls: 1 } });
    c.store.beforeReserve = () => c.store.occupy('rtc_faster');
    const event = incoming(c);
    expect(await c.handle(event)).toBe('rejected');
    expect(c.api.accepts).toEqual([]);
    expect(c.api.rejects).toEqual([{ callId: callIdOf(event), statusCode: 486 }]);
    expect(c.store.records.get(callIdOf(event))?.rejectReason).toBe('busy');
    expect(c.store.active).toBe(1);
  });

  it('frees a slot when a call ends, so the next call gets it', async () => {
    const c = calls({ policy: { maxConcurrentCalls: 1 } });
    c.api.acceptResult = 'gone';
    expect(await c.handle(incoming(c))).toBe('gone');
    c.api.acceptResult = 'accepted';
    expect(await c.handle(incoming(c))).toBe('accepted');
  });

  it('reports a call that hung up before the reject as gone, still recorded as rejected', async () => {
    const c = calls();
    c.api.rejectResult = 'gone';
    const event = incoming(c, { from: '+19005550123' });
    expect(await c.handle(event)).toBe('gone');
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'rejected',
      rejectReason: 'denied',
    });
    expect(c.log.find('call rejected')?.fields.gone).toBe(true);
  });

  it('rejects with 503 and gives the slot back when the session config is invalid', async () => {
    const c = calls({
      policy: { sessions: { default: { ...SESSION, voice: 'robot' as SessionConfig['voice'] } } },
    });
    const event = incoming(c);
    expect(await c.handle(event)).toBe('rejected');
    expect(c.api.accepts).toEqual([]);
    expect(c.api.rejects).toEqual([{ callId: callIdOf(event), statusCode: 503 }]);
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'rejected',
      rejectReason: 'invalid_session',
      rejectStatus: 503,
      holdsCapacity: false,
    });
    expect(c.store.active).toBe(0);
    expect(c.log.find('invalid session config')?.level).toBe('error');
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsRejected{invalid_session}']);
  });
});

describe('handleIncomingCall: calls that are never answered', () => {
  it('rejects a call older than maxRingAge (480), then records it as missed', async () => {
    const c = calls();
    const event = incoming(c, { createdAt: c.clock.seconds - POLICY.maxRingAgeSeconds - 1 });
    expect(await c.handle(event)).toBe('missed');
    expect(c.api.accepts).toEqual([]);
    expect(c.api.rejects).toEqual([{ callId: callIdOf(event), statusCode: 480 }]);
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'missed',
      rejectReason: 'stale',
      rejectStatus: 480,
      endedAt: T0,
    });
    expect(c.store.active).toBe(0);
    expect(c.signals.signals).toEqual([]);
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsMissed']);
    expect(c.log.find('stale call not accepted')?.fields.ageSeconds).toBe(31);
  });

  it('records a stale call that is already gone (404 on /reject) as missed', async () => {
    const c = calls();
    c.api.rejectResult = 'gone';
    const event = incoming(c, { createdAt: c.clock.seconds - 120 });
    expect(await c.handle(event)).toBe('missed');
    expect(c.store.records.get(callIdOf(event))?.status).toBe('missed');
    expect(c.log.find('stale call rejected and recorded as missed')?.fields.gone).toBe(true);
  });

  it('still accepts a call exactly maxRingAge old', async () => {
    const c = calls();
    const event = incoming(c, { createdAt: c.clock.seconds - POLICY.maxRingAgeSeconds });
    expect(await c.handle(event)).toBe('accepted');
  });

  it('ends a call gone before the accept (404) and gives its slot back', async () => {
    const c = calls();
    c.api.acceptResult = 'gone';
    const event = incoming(c);
    expect(await c.handle(event)).toBe('gone');
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'ended',
      endReason: 'gone_before_accept',
      endedAt: T0,
      holdsCapacity: false,
    });
    expect(c.store.active).toBe(0);
    expect(c.signals.signals).toEqual([]);
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsFailed{gone_before_accept}']);
  });

  it('ends a call whose accept was refused (4xx), gives its slot back and never accepts it again', async () => {
    const c = calls();
    c.api.acceptResult = apiError(400, 'POST /accept: 400 invalid session');
    const event = incoming(c);
    expect(await c.handle(event)).toBe('accept_failed');
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      status: 'ended',
      endReason: 'accept_failed',
      holdsCapacity: false,
    });
    expect(c.store.active).toBe(0);
    expect(c.signals.signals).toEqual([]);
    expect(c.metrics.names()).toEqual(['CallsIncoming', 'CallsFailed{accept_failed}']);
    expect(c.log.find('accept refused')?.fields.error).toContain('400');

    c.api.acceptResult = 'accepted';
    expect(await c.handle({ ...event, attempt: 2 })).toBe('owned_elsewhere');
    expect(c.api.accepts).toHaveLength(1);
  });

  it.each([
    ['a timeout', apiError(0, 'POST /accept failed: TimeoutError')],
    ['a network error after sending', apiError(0, 'POST /accept failed: TypeError')],
    ['a 5xx', apiError(502, 'POST /accept: 502')],
    ['a 4xx after an uncertain first attempt', apiError(409, 'POST /accept: 409', true)],
    ['an error without a status', new Error('socket hang up')],
  ])(
    'after %s, signals the worker and keeps the call and its slot: it may be live',
    async (_name, error) => {
      const c = calls();
      c.api.acceptResult = error;
      const event = incoming(c);
      expect(await c.handle(event)).toBe('accept_uncertain');
      expect(c.store.records.get(callIdOf(event))).toMatchObject({
        status: 'accepting',
        holdsCapacity: true,
        sessionKey: 'default',
      });
      expect(c.store.active).toBe(1);
      expect(c.signals.signals).toEqual([
        { callId: callIdOf(event), reason: 'incoming', sessionKey: 'default', sentAt: T0 },
      ]);
      expect(c.metrics.names()).toEqual(['CallsIncoming']);
      expect(c.log.find('accept outcome unknown: signalling the worker to find out')?.level).toBe(
        'warn',
      );
      expect(c.api.accepts).toHaveLength(1);
    },
  );
});

describe('handleIncomingCall: a sideband service scaled to zero', () => {
  it('starts a worker while accepting, and records that the call waited for it', async () => {
    const scaler = new FakeServiceScaler(false);
    const c = calls({ scaler });
    const gate = new Gate();
    c.api.acceptGate = gate;
    const event = incoming(c);
    const handled = c.handle(event);
    // The scale-up does not wait for the accept: both are under way at once.
    await settle(() => scaler.calls === 1, 'the scale-up');
    expect(c.api.accepts).toHaveLength(1);
    gate.open();

    expect(await handled).toBe('accepted');
    expect(scaler.running).toBe(true);
    expect(c.store.records.get(callIdOf(event))?.waitedForColdWorker).toBe(true);
    expect(c.signals.signals).toHaveLength(1);
    expect(c.log.find('call accepted')?.fields.coldWorker).toBe(true);

    // The next call finds the worker running.
    c.api.acceptGate = undefined;
    const next = incoming(c);
    expect(await c.handle(next)).toBe('accepted');
    expect(scaler.calls).toBe(2);
    expect(c.store.records.get(callIdOf(next))?.waitedForColdWorker).toBeUndefined();
  });

  it('still accepts and signals when the service cannot be scaled', async () => {
    const scaler = new FakeServiceScaler(false);
    scaler.faults.fail('ensureRunning', new Error('ECS throttled'));
    const c = calls({ scaler });
    const event = incoming(c);
    expect(await c.handle(event)).toBe('accepted');
    expect(c.store.records.get(callIdOf(event))?.waitedForColdWorker).toBeUndefined();
    expect(c.signals.signals).toHaveLength(1);
    expect(c.log.find('could not scale the sideband service')?.fields.error).toContain(
      'ECS throttled',
    );
  });
});

describe('handleIncomingCall: transient failures are retried within the delivery', () => {
  it('retries the store twice, 100 ms then 300 ms apart, and still accepts in the ring', async () => {
    const c = calls();
    c.store.faults.fail('create', new Error('ProvisionedThroughputExceeded'));
    c.store.faults.fail('reserveCapacity', new Error('DynamoDB unavailable'), 2);
    const event = incoming(c);
    expect(await c.handle(event)).toBe('accepted');
    expect(c.sleeps).toEqual([100, 100, 300]);
    expect(c.api.accepts).toHaveLength(1);
    expect(c.log.messages('warn')).toEqual([
      'retrying a failed step',
      'retrying a failed step',
      'retrying a failed step',
    ]);
  });

  it('takes a create whose answer was lost for its own, not for another delivery', async () => {
    const c = calls();
    const event = incoming(c);
    const create = c.store.create.bind(c.store);
    let first = true;
    c.store.create = async (record) => {
      const created = await create(record);
      if (first) {
        first = false;
        throw new Error('socket hang up');
      }
      return created;
    };
    expect(await c.handle(event)).toBe('accepted');
    expect(c.api.accepts).toHaveLength(1);
  });

  it('takes a transition whose answer was lost as applied', async () => {
    const c = calls();
    c.store.loseAnswerOfTransitionTo = 'accepting';
    const event = incoming(c);
    expect(await c.handle(event)).toBe('accepted');
    expect(c.api.accepts).toHaveLength(1);
    expect(c.metrics.names().filter((n) => n === 'CallsIncoming')).toHaveLength(1);
  });

  it('retries a failed /reject and a failed signal', async () => {
    const c = calls();
    const reject = c.api.reject.bind(c.api);
    c.api.reject = async (id, status) => {
      const result = await reject(id, status);
      if (c.api.rejects.length < 3) throw apiError(503);
      return result;
    };
    expect(await c.handle(incoming(c, { from: '+19005550123' }))).toBe('rejected');
    expect(c.api.rejects).toHaveLength(3);

    c.signals.faults.fail('signal', new Error('SQS throttled'), 2);
    expect(await c.handle(incoming(c))).toBe('accepted');
    expect(c.signals.signals).toHaveLength(1);
  });

  it('gives up after three attempts so the queue redelivers', async () => {
    const c = calls();
    c.store.faults.fail('create', new Error('DynamoDB unavailable'), 3);
    await expect(c.handle(incoming(c))).rejects.toThrow('DynamoDB unavailable');
    expect(c.sleeps).toEqual([100, 300]);
  });

  it('holds a claim for DECISION_LEASE_MS, and lets a later delivery take it over', async () => {
    const c = calls({ policy: { maxRingAgeSeconds: 120 } });
    const event = incoming(c);
    c.store.faults.fail('reserveCapacity', new Error('DynamoDB unavailable'), 3);
    await expect(c.handle(event)).rejects.toThrow();
    c.clock.advance(DECISION_LEASE_MS - 1);
    expect(await c.handle(event)).toBe('in_progress_elsewhere');
    c.clock.advance(1);
    expect(await c.handle(event)).toBe('accepted');
    expect(c.log.find('resuming a call whose delivery stopped')?.fields.status).toBe('ringing');
  });
});

describe('handleIncomingCall: who the caller is', () => {
  const PAI = { name: 'P-Asserted-Identity', value: '<sip:+14155550999@carrier.example>' };

  it('records the caller from From as unverified', async () => {
    const c = calls();
    const event = incoming(c, { headers: [PAI] });
    expect(await c.handle(event)).toBe('accepted');
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      from: CALLER,
      callerSource: 'from',
      callerVerified: false,
    });
  });

  it('with a trusted trunk, records the caller from P-Asserted-Identity as verified', async () => {
    const c = calls({ policy: { trustAssertedIdentity: true } });
    const event = incoming(c, { headers: [PAI] });
    expect(await c.handle(event)).toBe('accepted');
    expect(c.store.records.get(callIdOf(event))).toMatchObject({
      from: '+14155550999',
      callerSource: 'asserted',
      callerVerified: true,
    });
  });

  it('matches the caller lists against the asserted caller, not From', async () => {
    const c = calls({
      policy: { trustAssertedIdentity: true, callers: { deny: ['+1415555099*'] } },
    });
    expect(await c.handle(incoming(c, { headers: [PAI] }))).toBe('rejected');
  });

  it('normalises numbers with the default country before matching and choosing a session', async () => {
    const c = calls({ policy: { defaultCountry: '1', callers: { deny: ['+1900*'] } } });
    const denied = incoming(c, { from: '0019005550123' });
    expect(await c.handle(denied)).toBe('rejected');
    const sales = incoming(c, { to: '18005550199' });
    expect(await c.handle(sales)).toBe('accepted');
    expect(c.store.records.get(callIdOf(sales))).toMatchObject({ to: SALES, sessionKey: SALES });
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    'dialled as sip:%s@…, selects the default session',
    async (name) => {
      const c = calls();
      const event = incoming(c, { to: name });
      expect(await c.handle(event)).toBe('accepted');
      expect(c.store.records.get(callIdOf(event))?.sessionKey).toBe('default');
      expect(c.api.accepts[0]?.body).toEqual(buildAcceptBody(SESSION, TOOLS, TARGETS));
    },
  );
});
