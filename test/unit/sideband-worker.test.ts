import { afterEach, describe, expect, it } from 'vitest';
import type { MetricPoint } from '#core/observability/metrics';
import type { CallRecord, CallSignal } from '#core/ports/calls';
import type { AttachResult } from '#core/sideband/call-session-machine';
import { SidebandWorker, type WorkerDeps } from '../../containers/sideband/src/worker';
import {
  callRecord,
  FakeCallLeases,
  FakeCallStore,
  FakeHeldCall,
  FakeSignalPublisher,
  FakeSignalQueue,
  memoryLogger,
  until,
} from '../support/sideband-fakes';

/** The worker against in-memory ports: the queue, the leases, the call store, fake sessions. */

const OWNER = 'worker-1';

function signal(callId: string, reason: CallSignal['reason'] = 'incoming'): CallSignal {
  return { callId, reason, sessionKey: 'default', sentAt: Date.now() };
}

function setUp(
  options: {
    maxCallsPerTask?: number;
    attach?: (record: CallRecord) => AttachResult;
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
    sweepIntervalMs: 20,
    createSession: (record, s) => {
      const session = new FakeHeldCall(record, s, options.attach?.(record) ?? 'attached');
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
    expect(t.leases.calls.get('rtc_1')).toBe(OWNER);
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
    t.leases.calls.set('rtc_other', 'worker-2');
    await t.worker.start();
    t.ring('rtc_other');
    t.ring('rtc_mine');
    await until(() => t.worker.activeCalls === 1);
    t.queue.push(signal('rtc_mine', 'sweep'));
    await until(() => t.queue.acked.length === 3, 2000, 'three acknowledgements');
    expect(t.sessions.map((s) => s.callId)).toEqual(['rtc_mine']);
    expect(t.leases.calls.get('rtc_other')).toBe('worker-2');
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
    t.queue.push(signal('rtc_1'));
    await until(() => t.log.lines.includes('error: signal handling failed'));
    expect(t.queue.acked).toEqual([]);
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
    expect(t.leases.workers.has(OWNER)).toBe(false);
    expect(t.metrics.filter((m) => m.name === 'Handoffs')).toHaveLength(2);
  });

  it('renews its lease; declared dead, it comes back and lets go of the calls it lost', async () => {
    const t = setUp();
    await t.worker.start();
    t.ring('rtc_kept');
    t.ring('rtc_lost');
    await until(() => t.worker.activeCalls === 2);
    await until(() => t.leases.renewals >= 2, 2000, 'lease renewals');
    // A sweeper took us for dead and took our calls; another worker then claimed one of them.
    t.leases.declareDead(OWNER);
    t.leases.calls.set('rtc_lost', 'worker-2');
    await until(() =>
      t.log.lines.includes('error: declared dead by a sweeper; reclaiming what was not swept'),
    );
    await until(() => t.worker.activeCalls === 1);
    expect(t.leases.workers.has(OWNER)).toBe(true);
    expect(t.sessions.find((s) => s.callId === 'rtc_lost')?.handOffs).toBe(1);
    expect(t.sessions.find((s) => s.callId === 'rtc_kept')?.handOffs).toBe(0);
    expect(t.leases.calls.get('rtc_kept')).toBe(OWNER);
  });

  it('re-signals the live calls of a worker whose lease expired', async () => {
    const t = setUp();
    const longAgo = Date.now() - 60_000;
    await t.leases.registerWorker('worker-dead', longAgo, 4000);
    t.leases.calls.set('rtc_live', 'worker-dead');
    t.leases.calls.set('rtc_over', 'worker-dead');
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
