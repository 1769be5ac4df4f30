import { afterEach, describe, expect, it } from 'vitest';
import { EcsTaskProtection } from '#adapters/ecs-task-protection';
import type { MetricPoint } from '#core/observability/metrics';
import type { CallRecord, CallSignal } from '#core/ports/calls';
import type { AttachResult } from '#core/sideband/call-session-machine';
import { SidebandWorker, type WorkerDeps } from '../../containers/sideband/src/worker';
import { CapturingLogger } from '../support/fakes';
import {
  callRecord,
  FakeCallLeases,
  FakeCallStore,
  FakeHeldCall,
  FakeSignalPublisher,
  FakeSignalQueue,
  FakeTaskProtection,
  memoryLogger,
  until,
} from '../support/sideband-fakes';
import { holdsFor } from '../support/webhooks';

/** The worker against in-memory ports: the queue, the leases, the call store, fake sessions. */

const OWNER = 'worker-1';

function signal(callId: string, reason: CallSignal['reason'] = 'incoming'): CallSignal {
  return { callId, reason, sessionKey: 'default', sentAt: Date.now() };
}

function setUp(
  options: {
    maxCallsPerTask?: number;
    attach?: (record: CallRecord) => AttachResult | 'pending' | 'throw';
    deps?: Partial<WorkerDeps>;
  } = {},
) {
  const queue = new FakeSignalQueue();
  const leases = new FakeCallLeases();
  const calls = new FakeCallStore();
  const signals = new FakeSignalPublisher();
  const log = memoryLogger();
  const metrics: MetricPoint[] = [];
  const sessions: FakeHeldCall[] = [];
  const worker = new SidebandWorker({
    queue,
    leases,
    calls,
    signals,
    log,
    metrics: (points) => metrics.push(...points),
    config: { maxCallsPerTask: options.maxCallsPerTask ?? 200 },
    owner: OWNER,
    clock: Date.now,
    leaseTtlMs: 4000,
    leaseRenewalMs: 20,
    maxClockSkewMs: 1000,
    sweepIntervalMs: 20,
    createSession: (record, s, lease) => {
      const session = new FakeHeldCall(record, s, options.attach?.(record) ?? 'attached', lease);
      sessions.push(session);
      return session;
    },
    ...options.deps,
  });
  workers.push(worker);
  const ring = (callId: string, status: CallRecord['status'] = 'accepted') => {
    calls.put(callRecord({ callId, status }));
    return queue.push(signal(callId));
  };
  return { worker, queue, leases, calls, signals, log, metrics, sessions, ring };
}

const workers: SidebandWorker[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) w.stop();
});

describe('sideband worker', () => {
  it('registers its lease, takes a signal, claims the call, acknowledges it and attaches', async () => {
    const t = setUp();
    await t.worker.start();
    expect(t.leases.workers.has(OWNER)).toBe(true);
    expect(t.worker.ready).toBe(true);
    const receipt = t.ring('rtc_1');
    await until(() => t.worker.activeCalls === 1, 2000, 'the session');
    await until(() => t.log.lines.includes('info: sideband attach'));
    expect(t.queue.acked).toEqual([receipt]);
    // Held from other workers while the call attached (it was received invisible only briefly).
    expect(t.queue.delayed).toEqual([{ receipt, seconds: 60 }]);
    expect(t.leases.holder('rtc_1')).toBe(OWNER);
    expect(t.sessions[0]?.signal.reason).toBe('incoming');
    // The call ends: the session goes, and so does the lease.
    t.sessions[0]?.end();
    await until(() => t.worker.activeCalls === 0 && !t.leases.calls.has('rtc_1'));
  });

  it('acknowledges and ignores a signal for a call that is over, unknown, or unreadable', async () => {
    const t = setUp();
    await t.worker.start();
    const ended = t.ring('rtc_ended', 'ended');
    const unknown = t.queue.push(signal('rtc_unknown'));
    const garbage = t.queue.push('{not json');
    await until(() => t.queue.acked.length === 3, 2000, 'three acknowledgements');
    expect(t.queue.acked).toEqual(expect.arrayContaining([ended, unknown, garbage]));
    expect(t.sessions).toHaveLength(0);
    expect(t.log.lines).toContain('error: unreadable signal dropped');
    expect(
      t.log.lines.filter((l) => l === 'info: signal for a finished call ignored'),
    ).toHaveLength(2);
  });

  it('leaves a call another worker holds, and a second signal for a call it holds', async () => {
    const t = setUp();
    t.leases.give('rtc_other', 'worker-2');
    await t.worker.start();
    t.ring('rtc_other');
    t.ring('rtc_mine');
    await until(() => t.worker.activeCalls === 1);
    t.queue.push(signal('rtc_mine', 'sweep'));
    await until(() => t.queue.acked.length === 3, 2000, 'three acknowledgements');
    expect(t.sessions.map((s) => s.callId)).toEqual(['rtc_mine']);
    expect(t.leases.holder('rtc_other')).toBe('worker-2');
    expect(t.log.lines.filter((l) => l === 'info: call held by another worker')).toHaveLength(2);
  });

  it('forgets a call whose attach found it gone, and releases its lease', async () => {
    const t = setUp({ attach: () => 'gone' });
    await t.worker.start();
    t.ring('rtc_gone');
    await until(() => t.sessions.length === 1);
    await until(() => t.worker.activeCalls === 0 && !t.leases.calls.has('rtc_gone'));
  });

  it('leaves a signal it failed to handle in the queue, and releases the lease', async () => {
    const failing = new FakeCallStore();
    failing.get = async () => {
      throw new Error('table unavailable');
    };
    const t = setUp({ deps: { calls: failing } });
    await t.worker.start();
    const receipt = t.queue.push(signal('rtc_1'));
    await until(() => t.log.lines.includes('error: signal handling failed'));
    expect(t.queue.acked).toEqual([]);
    // Retried at the queue's usual pace, not at once.
    await until(() => t.queue.delayed.length === 1);
    expect(t.queue.delayed).toEqual([{ receipt, seconds: 30 }]);
    expect(t.leases.calls.size).toBe(0);
    expect(t.sessions).toHaveLength(0);
  });

  it('takes no more signals than it has room for', async () => {
    const t = setUp({ maxCallsPerTask: 2 });
    await t.worker.start();
    for (const id of ['rtc_a', 'rtc_b', 'rtc_c']) t.ring(id);
    await until(() => t.worker.activeCalls === 2);
    // The third waits in the queue for another worker (or a free slot).
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(t.queue.waiting).toHaveLength(1);
    expect(Math.max(...t.queue.asked)).toBeLessThanOrEqual(2);
    expect(t.worker.peakSessions).toBe(2);
    t.sessions[0]?.end();
    await until(() => t.queue.waiting.length === 0 && t.worker.activeCalls === 2);
    expect(t.worker.peakSessions).toBe(2);
  });

  it('drains on SIGTERM: releases each lease, re-signals the call, hands it off, and retires', async () => {
    const t = setUp();
    await t.worker.start();
    t.ring('rtc_1');
    t.ring('rtc_2');
    await until(() => t.worker.activeCalls === 2);
    await t.worker.drain();
    expect(t.worker.ready).toBe(false);
    expect(t.sessions.map((s) => s.handOffs)).toEqual([1, 1]);
    expect(t.signals.sent.map((s) => [s.callId, s.reason])).toEqual(
      expect.arrayContaining([
        ['rtc_1', 'handoff'],
        ['rtc_2', 'handoff'],
      ]),
    );
    expect(t.leases.calls.size).toBe(0);
    // Retired: marked expired at once, so a sweeper tidies up whatever a failed release left.
    expect(t.leases.workers.get(OWNER)?.deadAfter).toBe(0);
    expect(t.metrics.filter((m) => m.name === 'Handoffs')).toHaveLength(2);
  });

  it('fenced by a sweeper, lets go of every call without ending it, re-signals those not swept yet, and registers again', async () => {
    const t = setUp();
    await t.worker.start();
    t.ring('rtc_swept');
    t.ring('rtc_left');
    await until(() => t.worker.activeCalls === 2);
    await until(() => t.leases.renewals >= 2, 2000, 'lease renewals');
    // A sweeper took us for dead (we stalled): it fenced our epoch and had taken one call lease
    // (and re-signalled it) when we came back.
    const swept = t.leases.fence(OWNER, ['rtc_swept']);
    expect(swept).toEqual(['rtc_swept']);
    await until(() =>
      t.log.lines.includes(
        'error: lease lost: taken for dead by a sweeper; letting go of every call',
      ),
    );
    await until(() => t.log.lines.includes('info: registered again'));
    expect(t.worker.activeCalls).toBe(0);
    // Dropped the sockets without a hang-up or an end (a fake session counts it), not a hand-off.
    expect(t.sessions.map((s) => [s.callId, s.leasesLost, s.handOffs])).toEqual([
      ['rtc_swept', 1, 0],
      ['rtc_left', 1, 0],
    ]);
    // Only the call no sweeper had taken is re-signalled by us; its lease is given back.
    expect(t.signals.sent.map((s) => [s.callId, s.reason])).toEqual([['rtc_left', 'sweep']]);
    expect(t.leases.calls.size).toBe(0);
    // A new epoch: above the fenced one.
    expect(t.leases.workers.get(OWNER)?.epoch).toBe(3);
    expect(t.metrics.filter((m) => m.name === 'LeasesLost')).toEqual([
      { name: 'LeasesLost', value: 2 },
    ]);
    // Back in business under the new epoch.
    t.ring('rtc_next');
    await until(() => t.worker.activeCalls === 1);
    expect(t.leases.calls.get('rtc_next')).toEqual({ owner: OWNER, epoch: 3 });
  });

  it('hands a signal back at once when its claim is refused because the worker was fenced', async () => {
    const t = setUp({ deps: { leaseRenewalMs: 60_000, leaseTtlMs: 120_000 } });
    await t.worker.start();
    t.leases.fence(OWNER, []);
    const receipt = t.ring('rtc_1');
    await until(() => t.queue.delayed.length === 1, 2000, 'the hand-back');
    expect(t.queue.delayed).toEqual([{ receipt, seconds: 0 }]);
    expect(t.queue.acked).toEqual([]);
    // And it found out at once, rather than at its next renewal a minute later.
    await until(() => t.log.lines.includes('info: registered again'));
  });

  it('holds its sessions while its lease is in doubt, renews at once, and resumes them once renewed', async () => {
    let mono = 0;
    const t = setUp({ deps: { monotonic: () => mono } });
    await t.worker.start();
    t.ring('rtc_1');
    await until(() => t.worker.activeCalls === 1);
    const lease = t.sessions[0]?.lease;
    expect(lease?.held()).toBe(true);
    // DynamoDB unreachable, and the lease unconfirmed for longer than its TTL less the tolerated
    // skew (4000 - 1000 ms): the session must not act.
    t.leases.failRenewals = true;
    mono = 2999;
    expect(lease?.held()).toBe(true);
    mono = 3000;
    expect(lease?.held()).toBe(false);
    const before = t.leases.renewals;
    lease?.doubt();
    await until(() => t.leases.renewals > before, 2000, 'a renewal at once');
    expect(lease?.held()).toBe(false);
    const resumes = t.sessions[0]?.resumes ?? 0;
    t.leases.failRenewals = false;
    await until(() => lease?.held() === true, 2000, 'the lease confirmed');
    await until(() => (t.sessions[0]?.resumes ?? 0) > resumes, 2000, 'the session resumed');
    expect(t.sessions[0]?.leasesLost).toBe(0);
  });

  it('refuses lease timings that leave no room for the tolerated clock skew', () => {
    expect(() =>
      setUp({ deps: { leaseTtlMs: 4000, leaseRenewalMs: 2000, maxClockSkewMs: 2000 } }),
    ).toThrow(/clock skew/);
  });

  it('re-signals the live calls of a worker whose lease expired', async () => {
    const t = setUp();
    const longAgo = Date.now() - 60_000;
    await t.leases.registerWorker('worker-dead', longAgo, 4000);
    t.leases.give('rtc_live', 'worker-dead');
    t.leases.give('rtc_over', 'worker-dead');
    t.calls.put(callRecord({ callId: 'rtc_live', status: 'active', sessionKey: 'vip' }));
    t.calls.put(callRecord({ callId: 'rtc_over', status: 'ended' }));
    await t.worker.start();
    await until(() => t.signals.sent.length === 1, 2000, 'the re-signal');
    expect(t.signals.sent[0]).toMatchObject({
      callId: 'rtc_live',
      reason: 'sweep',
      sessionKey: 'vip',
    });
    expect(t.metrics.filter((m) => m.name === 'SweeperReattaches')).toHaveLength(1);
    expect(t.leases.workers.has('worker-dead')).toBe(false);
  });
});

describe('signals are acknowledged once the call is attached or settled', () => {
  it('keeps the signal while the attach is retried, and acknowledges it once settled', async () => {
    const t = setUp({ attach: () => 'pending' });
    await t.worker.start();
    const receipt = t.ring('rtc_1');
    await until(() => t.worker.activeCalls === 1);
    // Proves that the signal is not acknowledged while the attach is still under way: the fake
    // attach never settles by itself, and an acknowledgement takes a few ms here (in memory).
    await holdsFor(() => t.queue.acked.length === 0, 100, 'no acknowledgement');
    // The attach gives up (hung up and recorded by the session): settled.
    t.sessions[0]?.end({ reason: 'attach_failed_503', code: 0 });
    await until(() => t.queue.acked.length === 1);
    expect(t.queue.acked).toEqual([receipt]);
    expect(t.worker.activeCalls).toBe(0);
  });

  it('a session whose attach threw holds no slot, keeps its signal for a retry, and never blocks a drain', async () => {
    const t = setUp({
      maxCallsPerTask: 1,
      attach: (r) => (r.callId === 'rtc_bad' ? 'throw' : 'attached'),
    });
    await t.worker.start();
    t.ring('rtc_bad');
    await until(() => t.log.lines.includes('error: sideband attach threw'));
    expect(t.worker.activeCalls).toBe(0);
    expect(t.leases.calls.size).toBe(0);
    expect(t.queue.acked).toEqual([]);
    // Its slot is free: the next call gets it.
    t.ring('rtc_good');
    await until(() => t.worker.activeCalls === 1);
    await t.worker.drain();
    expect(t.sessions.find((s) => s.callId === 'rtc_good')?.handOffs).toBe(1);
  });

  it('a drain hands off a call still attaching and acknowledges its signal', async () => {
    const t = setUp({ attach: () => 'pending' });
    await t.worker.start();
    const receipt = t.ring('rtc_1');
    await until(() => t.worker.activeCalls === 1);
    await t.worker.drain();
    expect(t.sessions[0]?.handOffs).toBe(1);
    expect(t.signals.sent.map((s) => [s.callId, s.reason])).toEqual([['rtc_1', 'handoff']]);
    await until(() => t.queue.acked.length === 1);
    expect(t.queue.acked).toEqual([receipt]);
  });
});

describe('ECS task scale-in protection', () => {
  it('protects on the first call, renews while calls are held, and unprotects at none', async () => {
    const protection = new FakeTaskProtection();
    const t = setUp({ deps: { protection, protectionMinutes: 15, protectionRenewalMs: 40 } });
    await t.worker.start();
    expect(protection.requests).toEqual([]);
    t.ring('rtc_1');
    await until(() => protection.requests.length === 1);
    expect(protection.requests).toEqual(['protect:15']);
    t.ring('rtc_2');
    await until(() => t.worker.activeCalls === 2);
    // Renewed every 40 ms while calls are held, with nothing in between.
    await until(() => protection.requests.length >= 3, 2000, 'renewals');
    expect(new Set(protection.requests)).toEqual(new Set(['protect:15']));
    t.sessions[0]?.end();
    await until(() => t.worker.activeCalls === 1);
    expect(protection.requests.includes('unprotect')).toBe(false);
    t.sessions[1]?.end();
    await until(() => protection.requests.at(-1) === 'unprotect', 2000, 'the unprotect');
    const settled = protection.requests.length;
    // Nothing held: no more renewals (they came every 40 ms while calls were held).
    await holdsFor(() => protection.requests.length === settled, 150, 'no more protection');
  });

  it('on SIGTERM hands every call off, then unprotects', async () => {
    const protection = new FakeTaskProtection();
    const order: string[] = [];
    const t = setUp({ deps: { protection, protectionRenewalMs: 60_000 } });
    const protect = protection.protect.bind(protection);
    const unprotect = protection.unprotect.bind(protection);
    protection.protect = (m) => {
      order.push('protect');
      return protect(m);
    };
    protection.unprotect = () => {
      order.push(`unprotect after ${t.sessions.filter((s) => s.handOffs > 0).length} hand-offs`);
      return unprotect();
    };
    await t.worker.start();
    t.ring('rtc_1');
    t.ring('rtc_2');
    await until(() => t.worker.activeCalls === 2);
    await t.worker.drain();
    expect(order[0]).toBe('protect');
    expect(order.at(-1)).toBe('unprotect after 2 hand-offs');
  });

  it('says once (info), with heldBackUntil, when the budget refuses protection, and again after the next stretch', async () => {
    // The real adapter with a budget of 1 minute, then 15 minutes' rest, in front of a stand-in
    // for the ECS agent endpoint (its answer shape: adapters/ecs-task-protection.ts).
    const T = Date.parse('2027-01-15T08:00:00Z');
    let now = T;
    const asked: unknown[] = [];
    const protection = new EcsTaskProtection('http://agent.invalid/api/task', {
      budget: { maxProtectedMinutes: 1, restMinutes: 15 },
      clock: () => now,
      fetch: (async (_url: string, init?: RequestInit) => {
        const body = JSON.parse(String(init?.body)) as { ProtectionEnabled: boolean };
        asked.push(body);
        return new Response(
          JSON.stringify({
            protection: { ProtectionEnabled: body.ProtectionEnabled, ExpirationDate: null },
          }),
          { status: 200 },
        );
      }) as typeof fetch,
    });
    const log = new CapturingLogger();
    const t = setUp({ deps: { protection, protectionRenewalMs: 20, log } });
    const heldBack = () =>
      log.lines.filter((l) => l.message === 'task protection held back: its budget is spent');
    await t.worker.start();
    t.ring('rtc_1');
    await until(() => asked.length === 1);
    expect(asked[0]).toEqual({ ProtectionEnabled: true, ExpiresInMinutes: 1 });
    // Past the stretch: every renewal is refused until the rest is over, and said once.
    now = T + 2 * 60_000;
    const refusedFrom = asked.length;
    await until(() => asked.length >= refusedFrom + 4, 2000, 'renewals past the budget');
    expect(asked.slice(refusedFrom)).toContainEqual({ ProtectionEnabled: false });
    expect(heldBack()).toEqual([
      {
        level: 'info',
        message: 'task protection held back: its budget is spent',
        fields: expect.objectContaining({ heldBackUntil: '2027-01-15T08:16:00.000Z' }),
      },
    ]);
    // The rest is over: a new stretch is granted, then refused again, and said again.
    now = T + 20 * 60_000;
    await until(
      () => JSON.stringify(asked.at(-1)) === '{"ProtectionEnabled":true,"ExpiresInMinutes":1}',
      2000,
      'a new stretch',
    );
    now = T + 22 * 60_000;
    await until(() => heldBack().length === 2, 2000, 'the second refusal');
    expect(heldBack()[1]?.fields.heldBackUntil).toBe('2027-01-15T08:36:00.000Z');
    expect(t.worker.activeCalls).toBe(1);
  });

  it('logs a protection that fails and goes on taking calls', async () => {
    const protection = new FakeTaskProtection();
    protection.failing = true;
    const t = setUp({ deps: { protection } });
    await t.worker.start();
    t.ring('rtc_1');
    await until(() => t.log.lines.includes('error: task protection failed'));
    expect(t.worker.activeCalls).toBe(1);
    t.sessions[0]?.end();
    await until(() => t.log.lines.includes('error: task unprotection failed'));
    t.ring('rtc_2');
    await until(() => t.worker.activeCalls === 1 && t.sessions.length === 2);
  });
});
