import { isFinal } from '#core/calls/call-state';
import type { CallsConfig } from '#core/calls/calls-config';
import { errorMessage, type Logger } from '#core/observability/logger';
import { count, type MetricsPublisher } from '#core/observability/metrics';
import type { CallRecord, CallSignal, CallStore, SignalPublisher } from '#core/ports/calls';
import type { CallLeases, SignalQueue } from '#core/ports/sideband';
import type { AttachResult, SessionEnd } from '#core/sideband/call-session-machine';

/** One call's sideband as the worker holds it (`CallSession` on a real socket). */
export interface HeldCall {
  readonly callId: string;
  readonly record: CallRecord;
  /** Settles once the session is over: the call ended, or was handed off. */
  readonly ended: Promise<SessionEnd>;
  attach(): Promise<AttachResult>;
  /** Lets go of the socket without ending the call; settles when the session is over. */
  handOff(): Promise<void>;
}

export interface WorkerDeps {
  readonly queue: SignalQueue;
  readonly signals: SignalPublisher;
  readonly calls: CallStore;
  readonly leases: CallLeases;
  readonly config: Pick<CallsConfig, 'maxCallsPerTask'>;
  readonly owner: string;
  readonly createSession: (record: CallRecord, signal: CallSignal) => HeldCall;
  readonly clock: () => number;
  readonly log: Logger;
  readonly leaseTtlMs: number;
  /** How often this worker renews its lease (well within `leaseTtlMs`). */
  readonly leaseRenewalMs: number;
  readonly sweepIntervalMs: number;
  readonly metrics: MetricsPublisher;
}

/**
 * Takes call signals while it has capacity, claims each call with a lease, holds its sideband,
 * renews its worker lease, sweeps the leases of dead workers, and on SIGTERM hands every call to
 * another worker.
 */
export class SidebandWorker {
  readonly sessions = new Map<string, HeldCall>();
  private claiming = 0;
  private running = false;
  private draining = false;
  private readonly abort = new AbortController();
  /** Signals being handled right now; a drain waits for them before handing calls off. */
  private readonly inflight = new Set<Promise<void>>();
  private loops: Promise<void>[] = [];
  private timers: NodeJS.Timeout[] = [];
  /** Highest number of sessions held at once, for tests and metrics. */
  peakSessions = 0;

  constructor(private readonly deps: WorkerDeps) {}

  get activeCalls(): number {
    return this.sessions.size;
  }

  get ready(): boolean {
    return this.running && !this.draining;
  }

  async start(): Promise<void> {
    await this.deps.leases.registerWorker(this.deps.owner, this.deps.clock(), this.deps.leaseTtlMs);
    this.running = true;
    this.loops.push(this.pollSignals());
    this.timers.push(setInterval(() => void this.renewLease(), this.deps.leaseRenewalMs));
    this.timers.push(setInterval(() => void this.sweep(), this.deps.sweepIntervalMs));
  }

  /** SIGTERM: stop taking signals, then hand each call to another worker. */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // Let the last long poll finish rather than abort it: an aborted request can still take a
    // message on the server side (our own hand-off signal, say), which then stays invisible until
    // the visibility timeout. Whatever it returns is passed on (see handleSignal).
    await Promise.allSettled(this.loops);
    await Promise.allSettled([...this.inflight]);
    const { deps } = this;
    deps.log.info('draining: handing calls off', { activeCalls: this.sessions.size });
    await Promise.allSettled(
      [...this.sessions.values()].map(async (session) => {
        // Release first so the next worker can claim; then signal; then let go of the socket.
        await deps.leases.release(session.callId, deps.owner);
        await deps.signals.signal({
          callId: session.callId,
          reason: 'handoff',
          sessionKey: session.record.sessionKey ?? 'default',
          sentAt: deps.clock(),
        });
        await session.handOff();
        deps.metrics([count('Handoffs')]);
      }),
    );
    // A clean exit: nobody needs to sweep us.
    await deps.leases.retire(deps.owner).catch(() => undefined);
    this.stop();
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  private async pollSignals(): Promise<void> {
    const { deps } = this;
    while (this.running && !this.draining) {
      const free = deps.config.maxCallsPerTask - this.sessions.size - this.claiming;
      if (free <= 0) {
        // At capacity: take no signal; they wait in the queue for another worker.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      try {
        const received = await deps.queue.receive(Math.min(10, free), this.abort.signal);
        for (const message of received) {
          this.claiming++;
          const handling = this.handleSignal(message.body, message.receipt).finally(() => {
            this.claiming--;
            this.inflight.delete(handling);
          });
          this.inflight.add(handling);
        }
      } catch (error) {
        if (this.draining || !this.running) return;
        deps.log.error('signal poll failed', { error: errorMessage(error) });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async handleSignal(body: string, receipt: string): Promise<void> {
    const { deps } = this;
    let signal: CallSignal;
    try {
      signal = JSON.parse(body) as CallSignal;
    } catch {
      deps.log.error('unreadable signal dropped');
      await deps.queue.ack(receipt);
      return;
    }
    const log = deps.log.with({ callId: signal.callId, reason: signal.reason });
    try {
      const record = await deps.calls.get(signal.callId);
      if (!record || isFinal(record.status)) {
        log.info('signal for a finished call ignored');
        await deps.queue.ack(receipt);
        return;
      }
      if (
        this.sessions.has(signal.callId) ||
        !(await deps.leases.claim(signal.callId, deps.owner, deps.clock()))
      ) {
        log.info('call held by another worker');
        await deps.queue.ack(receipt);
        return;
      }
      await deps.queue.ack(receipt);
      if (this.draining) {
        // Took a signal while shutting down: pass it straight on.
        await deps.leases.release(signal.callId, deps.owner);
        await deps.signals.signal({ ...signal, reason: 'handoff', sentAt: deps.clock() });
        return;
      }
      const session = deps.createSession(record, signal);
      this.sessions.set(signal.callId, session);
      this.peakSessions = Math.max(this.peakSessions, this.sessions.size);
      const attached = await session.attach();
      log.info('sideband attach', {
        result: attached,
        signalToAttachMs: deps.clock() - signal.sentAt,
      });
      void session.ended.then(async () => {
        this.sessions.delete(signal.callId);
        await deps.leases.release(signal.callId, deps.owner).catch(() => undefined);
      });
    } catch (error) {
      // Leave the message: it becomes visible again and is retried (then dead-lettered).
      log.error('signal handling failed', { error: errorMessage(error) });
      await deps.leases.release(signal.callId, deps.owner).catch(() => undefined);
    }
  }

  private async renewLease(): Promise<void> {
    const { deps } = this;
    if (this.draining) return;
    try {
      if (await deps.leases.renewWorker(deps.owner, deps.clock(), deps.leaseTtlMs)) return;
      // Another worker declared us dead (we stalled past the TTL) and swept our leases. Come back,
      // keep each call whose lease we can still claim (claimed after the sweep), and let go of the
      // rest: the sweeper re-signalled them, so one other worker takes each.
      deps.log.error('declared dead by a sweeper; reclaiming what was not swept', {
        activeCalls: this.sessions.size,
      });
      await deps.leases.registerWorker(deps.owner, deps.clock(), deps.leaseTtlMs);
      await Promise.allSettled(
        [...this.sessions.values()].map(async (session) => {
          if (!(await deps.leases.claim(session.callId, deps.owner, deps.clock())))
            await session.handOff();
        }),
      );
    } catch (error) {
      deps.log.error('lease renewal failed', { error: errorMessage(error) });
    }
  }

  /** Re-signals every call of a worker that stopped renewing its lease (died without SIGTERM). */
  private async sweep(): Promise<void> {
    const { deps } = this;
    if (this.draining) return;
    try {
      for (const callId of await deps.leases.sweepDeadWorkers(deps.clock())) {
        const record = await deps.calls.get(callId);
        if (!record || isFinal(record.status)) continue;
        deps.log.warn('re-signalling a call whose worker died', {
          callId,
        });
        deps.metrics([count('SweeperReattaches')]);
        await deps.signals.signal({
          callId,
          reason: 'sweep',
          sessionKey: record.sessionKey ?? 'default',
          sentAt: deps.clock(),
        });
      }
    } catch (error) {
      deps.log.error('sweep failed', { error: errorMessage(error) });
    }
  }
}
