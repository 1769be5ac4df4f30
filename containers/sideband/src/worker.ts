import { isFinal } from '#core/calls/call-state';
import type { CallsConfig } from '#core/calls/calls-config';
import { errorMessage, type Logger } from '#core/observability/logger';
import { count, type MetricsPublisher } from '#core/observability/metrics';
import type { CallRecord, CallSignal, CallStore, SignalPublisher } from '#core/ports/calls';
import type { CallLeases, SignalQueue } from '#core/ports/sideband';
import type { TaskProtection } from '#core/ports/task-protection';
import type { AttachResult, SessionEnd } from '#core/sideband/call-session-machine';

/** One call's sideband as the worker holds it (`CallSession` on a real socket). */
export interface HeldCall {
  readonly callId: string;
  readonly record: CallRecord;
  /** Settles once the session is over: the call ended, or was handed off. */
  readonly ended: Promise<SessionEnd>;
  /**
   * Opens the sideband (retrying within the attach window); settles once the call is attached or
   * settled: `gone` (404), `failed` (hung up after the retries), `handed_off` (let go meanwhile).
   */
  attach(): Promise<AttachResult>;
  /** Lets go of the socket without ending the call; settles when the session is over. */
  handOff(): Promise<void>;
  /** The worker's lease was confirmed: carry on with what was held back while it was in doubt. */
  resume(): void;
  /**
   * The worker's lease was fenced (a sweeper took it for dead): drop what was held back, drop the
   * socket without hanging up and without ending the call; settles when the session is over.
   */
  loseLease(): Promise<void>;
  /**
   * A call-control command for this call is pending (a nudge on the worker's control queue): read
   * it and apply it if it still is (issue 16). Optional: a session without call control ignores it.
   */
  command?(commandId: string, item?: unknown): void;
}

/** The worker's own control queue (adapters/sqs-control-queue.ts): nudges for its calls. */
export interface ControlInbox {
  receive(abort: AbortSignal): Promise<readonly { body: string; receipt: string }[]>;
  ack(receipt: string): Promise<void>;
}

/**
 * What a held call asks before it acts on anything (an event from its socket, a timer, a command's
 * result): whether its worker's lease is known to be held. Checked on the worker's monotonic clock,
 * so a process that was stopped or starved knows on waking that it must not act until a renewal
 * has confirmed the lease.
 */
export interface LeaseGuard {
  /** True while the lease was confirmed less than `leaseTtlMs - maxClockSkewMs` ago. */
  held(): boolean;
  /** The session found the lease in doubt: renew now (the answer resumes or fences it). */
  doubt(): void;
  /** The epoch the call was claimed under: a command's claim is guarded by it (issue 16). */
  readonly epoch?: number;
}

export interface WorkerDeps {
  readonly queue: SignalQueue;
  readonly signals: SignalPublisher;
  readonly calls: CallStore;
  readonly leases: CallLeases;
  readonly config: Pick<CallsConfig, 'maxCallsPerTask'>;
  readonly owner: string;
  readonly createSession: (record: CallRecord, signal: CallSignal, lease: LeaseGuard) => HeldCall;
  /** Wall-clock epoch ms: written into leases, which other workers compare with theirs. */
  readonly clock: () => number;
  /** A monotonic clock in ms for the worker's own view of its lease. @default performance.now */
  readonly monotonic?: () => number;
  readonly log: Logger;
  readonly leaseTtlMs: number;
  /** How often this worker renews its lease (well within `leaseTtlMs`). */
  readonly leaseRenewalMs: number;
  /**
   * The clock skew between workers the leases tolerate (see `SidebandWorker`). Must leave room for
   * a renewal: `leaseRenewalMs + maxClockSkewMs < leaseTtlMs`.
   */
  readonly maxClockSkewMs: number;
  readonly sweepIntervalMs: number;
  /**
   * How long a claimed call's signal is kept invisible while the call attaches (beyond the attach
   * window); it is acknowledged once the call is attached or settled. @default 60
   */
  readonly signalHoldSeconds?: number;
  readonly metrics: MetricsPublisher;
  /** ECS task scale-in protection while calls are held; undefined outside ECS. */
  readonly protection?: TaskProtection;
  /** How long each protection lasts. @default 15 minutes */
  readonly protectionMinutes?: number;
  /** How often a protection is renewed while calls are held. @default 5 minutes */
  readonly protectionRenewalMs?: number;
  /**
   * This worker's control queue (issue 16): each nudge names a held call with a pending command,
   * which the call's session then reads and applies. Undefined: no call control.
   */
  readonly control?: ControlInbox;
}

/** How long a signal whose handling failed waits before it is tried again (any worker). */
const SIGNAL_RETRY_SECONDS = 30;

interface Held {
  readonly session: HeldCall;
  /** The worker's epoch when it claimed the call: the call lease's. */
  readonly epoch: number;
}

/**
 * Takes call signals while it has capacity, claims each call with a lease, holds its sideband,
 * renews its worker lease, sweeps the leases of dead workers, and on SIGTERM hands every call to
 * another worker.
 *
 * **One worker per call.** Leases are fenced by epochs (`CallLeases`): a sweeper fences a worker
 * whose lease expired before it takes that worker's calls, so the worker's next renewal fails and it
 * lets go of every call: it drops each socket without hanging up and without recording an end,
 * gives back the call leases no sweeper took yet (re-signalling those calls itself), and registers
 * again under a new epoch. A worker that was stopped or starved must not act on what it finds on
 * waking either: each session holds back everything (socket events, timers, results) while the
 * lease is in doubt, i.e. unconfirmed for `leaseTtlMs - maxClockSkewMs` on the monotonic clock,
 * then replays it once a renewal confirms the lease, or drops it once the renewal is refused.
 *
 * **Clock skew.** A sweeper compares a worker's `deadAfter` (that worker's clock at its renewal,
 * plus `leaseTtlMs`) with its own clock. If the worker's clock is behind the sweeper's by `s`, the
 * sweeper may take its calls `s` before the lease really ends; the worker stops acting
 * `maxClockSkewMs` before it ends, so calls never have two acting owners while `s <=
 * maxClockSkewMs`, and a healthy worker (renewing every `leaseRenewalMs`) is never taken for dead
 * while `s < leaseTtlMs - leaseRenewalMs`. With the defaults (15 s lease, 5 s renewal, 5 s skew):
 * 5 s. Beyond that a healthy worker can lose its calls to a sweeper; they move to another worker,
 * and the fencing still bounds the overlap by one renewal period. A clock ahead only delays sweeps.
 */
export class SidebandWorker {
  private readonly held = new Map<string, Held>();
  private claiming = 0;
  private running = false;
  private draining = false;
  private retired = false;
  private readonly abort = new AbortController();
  /** Signals being handled right now; a drain waits for them before handing calls off. */
  private readonly inflight = new Set<Promise<void>>();
  private loops: Promise<void>[] = [];
  /** The control queue's poll; aborted on a drain (a nudge lost then is read on the next attach). */
  private controlLoop: Promise<void> | undefined;
  private readonly controlAbort = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private epoch = 0;
  /** `lost`: fenced, letting go of the calls and registering again. */
  private leaseState: 'held' | 'lost' = 'held';
  /** Monotonic time at which the last confirmed renewal (or the registration) started. */
  private confirmedAt = Number.NEGATIVE_INFINITY;
  private renewing: Promise<void> | undefined;
  private sweeping = false;
  private readonly monotonic: () => number;
  private readonly protection: ProtectionKeeper | undefined;
  /** Highest number of sessions held at once, for tests and metrics. */
  peakSessions = 0;

  constructor(private readonly deps: WorkerDeps) {
    if (!(deps.leaseRenewalMs + deps.maxClockSkewMs < deps.leaseTtlMs))
      throw new Error(
        'The lease renewal period plus the tolerated clock skew must be under the lease TTL.',
      );
    this.monotonic = deps.monotonic ?? (() => performance.now());
    this.protection = deps.protection
      ? new ProtectionKeeper(
          deps.protection,
          deps.protectionMinutes ?? 15,
          deps.protectionRenewalMs ?? 5 * 60_000,
          deps.log,
        )
      : undefined;
  }

  get activeCalls(): number {
    return this.held.size;
  }

  get ready(): boolean {
    return this.running && !this.draining;
  }

  /** The calls held now (a test's view). */
  get sessions(): ReadonlyMap<string, HeldCall> {
    return new Map([...this.held].map(([id, h]) => [id, h.session]));
  }

  async start(): Promise<void> {
    await this.register();
    this.running = true;
    this.loops.push(this.pollSignals());
    if (this.deps.control) this.controlLoop = this.pollControl(this.deps.control);
    this.timers.push(setInterval(() => void this.renewLease(), this.deps.leaseRenewalMs));
    this.timers.push(setInterval(() => void this.sweep(), this.deps.sweepIntervalMs));
  }

  /** SIGTERM: stop taking signals, then hand each call to another worker, then unprotect. */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // Commands are left pending from here: the worker that takes each call over applies them.
    this.controlAbort.abort();
    // Let the last long poll finish rather than abort it: an aborted request can still take a
    // message on the server side (our own hand-off signal, say), which then stays invisible until
    // the visibility timeout. Whatever it returns is passed on (see handleSignal).
    await Promise.allSettled(this.loops);
    await this.controlLoop;
    await Promise.allSettled([...this.inflight]);
    const { deps } = this;
    deps.log.info('draining: handing calls off', { activeCalls: this.held.size });
    await Promise.allSettled(
      [...this.held.values()].map(async ({ session, epoch }) => {
        // Release first so the next worker can claim; then signal; then let go of the socket.
        await deps.leases.release(session.callId, deps.owner, epoch);
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
    // A clean exit: the lease is marked expired, so a sweeper only tidies up what is left.
    await this.renewing;
    this.retired = true;
    await deps.leases.retire(deps.owner, this.epoch).catch(() => undefined);
    await this.protection?.stop();
    this.stop();
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
    this.controlAbort.abort();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.protection?.halt();
  }

  /** Registers under a new epoch; the lease counts as confirmed from the request's start. */
  private async register(): Promise<void> {
    const startedAt = this.monotonic();
    this.epoch = await this.deps.leases.registerWorker(
      this.deps.owner,
      this.deps.clock(),
      this.deps.leaseTtlMs,
    );
    this.confirmedAt = startedAt;
    this.leaseState = 'held';
  }

  /** Reads nudges off this worker's control queue and hands each to its call's session. */
  private async pollControl(control: ControlInbox): Promise<void> {
    const { deps } = this;
    while (this.running && !this.draining) {
      try {
        const received = await control.receive(this.controlAbort.signal);
        for (const message of received) {
          let nudge: { callId?: unknown; commandId?: unknown; item?: unknown } | undefined;
          try {
            nudge = JSON.parse(message.body) as typeof nudge;
          } catch {
            nudge = undefined;
          }
          const held = typeof nudge?.callId === 'string' ? this.held.get(nudge.callId) : undefined;
          if (held && typeof nudge?.commandId === 'string')
            held.session.command?.(nudge.commandId, nudge.item);
          // Not held (any more): the command stays pending for whoever attaches to the call.
          else deps.log.info('control nudge for a call not held here', { callId: nudge?.callId });
          void control.ack(message.receipt).catch(() => undefined);
        }
      } catch (error) {
        if (this.draining || !this.running) return;
        deps.log.error('control poll failed', { error: errorMessage(error) });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private guardFor(epoch: number): LeaseGuard {
    return {
      epoch,
      held: () =>
        this.leaseState === 'held' &&
        epoch === this.epoch &&
        this.monotonic() - this.confirmedAt < this.deps.leaseTtlMs - this.deps.maxClockSkewMs,
      doubt: () => void this.renewLease(),
    };
  }

  private async pollSignals(): Promise<void> {
    const { deps } = this;
    while (this.running && !this.draining) {
      const free = deps.config.maxCallsPerTask - this.held.size - this.claiming;
      if (free <= 0 || this.leaseState !== 'held') {
        // At capacity (or registering again after being fenced): take no signal; they wait in
        // the queue for another worker.
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

  /**
   * Claims the signal's call and starts its session. The signal is acknowledged only once the call
   * is attached or settled (`attachThenAck`), or when there is nothing to do.
   */
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
    const epoch = this.epoch;
    let claimed = false;
    try {
      const record = await deps.calls.get(signal.callId);
      if (!record || isFinal(record.status)) {
        log.info('signal for a finished call ignored');
        await deps.queue.ack(receipt);
        return;
      }
      if (this.held.has(signal.callId)) {
        log.info('call held by another worker');
        await deps.queue.ack(receipt);
        return;
      }
      const claim = await deps.leases.claim(signal.callId, deps.owner, epoch, deps.clock());
      if (claim === 'held') {
        log.info('call held by another worker');
        await deps.queue.ack(receipt);
        return;
      }
      if (claim === 'fenced') {
        // Our lease was fenced: another worker takes the call, at once.
        log.warn('claim refused: this worker was taken for dead');
        void this.renewLease();
        await deps.queue.delay(receipt, 0);
        return;
      }
      claimed = true;
      if (epoch !== this.epoch || this.leaseState !== 'held' || this.draining) {
        // Claimed under an epoch fenced since, or while shutting down: pass it straight on. If a
        // sweeper took the lease first, it re-signalled the call itself.
        const released = await deps.leases.release(signal.callId, deps.owner, epoch);
        claimed = false;
        if (released) await deps.queue.delay(receipt, 0);
        else await deps.queue.ack(receipt);
        return;
      }
      // Ours: kept from other workers while it attaches (a failure here only means another
      // worker may find the call held, and drop its copy).
      await deps.queue
        .delay(receipt, deps.signalHoldSeconds ?? 60)
        .catch((error: unknown) =>
          log.warn('could not hold a signal', { error: errorMessage(error) }),
        );
      const session = deps.createSession(record, signal, this.guardFor(epoch));
      this.held.set(signal.callId, { session, epoch });
      this.peakSessions = Math.max(this.peakSessions, this.held.size);
      this.protection?.update(this.held.size);
      void session.ended.then(() => this.sessionEnded(session, epoch));
      void this.attachThenAck(session, signal, receipt, epoch, log);
    } catch (error) {
      // Leave the message: it becomes visible again and is retried (then dead-lettered), at the
      // pace of the queue's visibility timeout rather than at once.
      log.error('signal handling failed', { error: errorMessage(error) });
      if (claimed)
        await deps.leases.release(signal.callId, deps.owner, epoch).catch(() => undefined);
      await deps.queue.delay(receipt, SIGNAL_RETRY_SECONDS).catch(() => undefined);
    }
  }

  private async attachThenAck(
    session: HeldCall,
    signal: CallSignal,
    receipt: string,
    epoch: number,
    log: Logger,
  ): Promise<void> {
    const { deps } = this;
    let result: AttachResult;
    try {
      result = await session.attach();
    } catch (error) {
      // The session never held the call: it gives its slot back and cannot hold up a drain; the
      // signal is left in the queue and retried.
      log.error('sideband attach threw', { error: errorMessage(error) });
      if (this.held.get(session.callId)?.session === session) this.held.delete(session.callId);
      this.protection?.update(this.held.size);
      await deps.leases.release(session.callId, deps.owner, epoch).catch(() => undefined);
      await deps.queue.delay(receipt, SIGNAL_RETRY_SECONDS).catch(() => undefined);
      return;
    }
    log.info('sideband attach', { result, signalToAttachMs: deps.clock() - signal.sentAt });
    // Attached, gone, hung up after failed attaches, or handed on: settled either way.
    await deps.queue
      .ack(receipt)
      .catch((error: unknown) =>
        log.warn('could not acknowledge a signal', { error: errorMessage(error) }),
      );
  }

  private async sessionEnded(session: HeldCall, epoch: number): Promise<void> {
    // A session given up on (a lost lease, a throw) is not ours to release any more.
    if (this.held.get(session.callId)?.session !== session) return;
    this.held.delete(session.callId);
    this.protection?.update(this.held.size);
    await this.deps.leases.release(session.callId, this.deps.owner, epoch).catch(() => undefined);
  }

  private renewLease(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async renewOnce(): Promise<void> {
    const { deps } = this;
    if (!this.running || this.retired || this.leaseState !== 'held') return;
    const epoch = this.epoch;
    const startedAt = this.monotonic();
    try {
      if (await deps.leases.renewWorker(deps.owner, epoch, deps.clock(), deps.leaseTtlMs)) {
        if (epoch !== this.epoch) return;
        this.confirmedAt = startedAt;
        for (const { session } of this.held.values()) session.resume();
        return;
      }
      await this.loseLease(epoch);
    } catch (error) {
      deps.log.error('lease renewal failed', { error: errorMessage(error) });
    }
  }

  /**
   * A sweeper fenced our epoch (we stalled past the lease): every call of it is lost. Let go of
   * each socket without hanging up; give back each call lease the sweeper has not taken yet and
   * re-signal that call (nobody else will); register again under a new epoch.
   */
  private async loseLease(epoch: number): Promise<void> {
    const { deps } = this;
    if (this.leaseState !== 'held' || epoch !== this.epoch) return;
    this.leaseState = 'lost';
    const lost = [...this.held.values()];
    this.held.clear();
    this.protection?.update(0);
    deps.log.error('lease lost: taken for dead by a sweeper; letting go of every call', {
      calls: lost.length,
    });
    if (lost.length > 0) deps.metrics([count('LeasesLost', undefined, lost.length)]);
    await Promise.allSettled(
      lost.map(async ({ session, epoch: claimedUnder }) => {
        await session.loseLease();
        if (await deps.leases.release(session.callId, deps.owner, claimedUnder))
          await deps.signals.signal({
            callId: session.callId,
            reason: 'sweep',
            sessionKey: session.record.sessionKey ?? 'default',
            sentAt: deps.clock(),
          });
      }),
    );
    while (this.running && !this.retired) {
      try {
        await this.register();
        deps.log.info('registered again', { epoch: this.epoch });
        return;
      } catch (error) {
        deps.log.error('could not register again', { error: errorMessage(error) });
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  /** Re-signals every call of a worker that stopped renewing its lease (died without SIGTERM). */
  private async sweep(): Promise<void> {
    const { deps } = this;
    if (this.draining || this.sweeping) return;
    this.sweeping = true;
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
    } finally {
      this.sweeping = false;
    }
  }
}

/**
 * ECS task scale-in protection while the task holds calls: protected when the calls held go from 0
 * to 1, renewed while any are held, removed at 0 (and after a drain). Requests go one at a time in
 * order; a failure is logged and the worker goes on (protection is a preference, not a lock).
 */
class ProtectionKeeper {
  private wanted = false;
  /** The last request sent (none yet: the task starts unprotected). */
  private last: 'protect' | 'unprotect' = 'unprotect';
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly protection: TaskProtection,
    private readonly minutes: number,
    private readonly renewalMs: number,
    private readonly log: Logger,
  ) {}

  update(calls: number): void {
    if (calls > 0 && !this.wanted) {
      this.wanted = true;
      this.enqueue('protect');
      this.timer = setInterval(() => this.enqueue('protect'), this.renewalMs);
    } else if (calls === 0 && this.wanted) {
      this.wanted = false;
      clearInterval(this.timer);
      this.enqueue('unprotect');
    }
  }

  /** After a drain: unprotected, whatever the calls did. */
  async stop(): Promise<void> {
    this.wanted = false;
    clearInterval(this.timer);
    if (this.last !== 'unprotect') this.enqueue('unprotect');
    await this.chain;
  }

  halt(): void {
    clearInterval(this.timer);
  }

  /** The `heldBackUntil` last logged: a refusal is said once per rest, not at every renewal. */
  private heldBackUntil: string | undefined;

  private enqueue(what: 'protect' | 'unprotect'): void {
    this.last = what;
    this.chain = this.chain.then(async () => {
      try {
        if (what === 'protect') {
          const state = await this.protection.protect(this.minutes);
          // The protection budget is spent (core/ports/task-protection.ts `ProtectionBudget`):
          // the task was left unprotected until `heldBackUntil`, so a deploy or scale-in may
          // stop it meanwhile; its calls are then handed off as on any SIGTERM.
          if (state.heldBackUntil && state.heldBackUntil !== this.heldBackUntil) {
            this.heldBackUntil = state.heldBackUntil;
            this.log.info('task protection held back: its budget is spent', {
              heldBackUntil: state.heldBackUntil,
            });
          }
        } else await this.protection.unprotect();
      } catch (error) {
        this.log.error(`task ${what}ion failed`, { error: errorMessage(error) });
      }
    });
  }
}
