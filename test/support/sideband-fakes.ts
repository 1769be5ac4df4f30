/**
 * Test doubles for the sideband worker: a script runner for the call-session machine (a fake clock
 * and timer wheel, and helpers to answer its commands), and in-memory fakes of the worker's ports.
 * No DynamoDB, no SQS, no socket.
 */

import type { CallStatus } from '#core/calls/call-state';
import type { Logger } from '#core/observability/logger';
import type { MetricPoint } from '#core/observability/metrics';
import type { CallRecord, CallSignal, CallStore, SignalPublisher } from '#core/ports/calls';
import type { CallLeases, CallPart, QueuedSignal, SignalQueue } from '#core/ports/sideband';
import {
  type AttachResult,
  CallSessionMachine,
  type CallSessionSetup,
  type SessionCommand,
  type SessionEnd,
  type SessionEvent,
  type SessionTimer,
} from '#core/sideband/call-session-machine';
import type { WireEvent } from '#core/wire';
import type { HeldCall } from '../../containers/sideband/src/worker';
import { localCallsConfig } from '../../local/calls';

type CommandOf<T extends SessionCommand['type']> = Extract<SessionCommand, { type: T }>;
type WithOp = Extract<SessionCommand, { op: number }>;

export const T0 = 1_700_000_000_000;

export function callRecord(overrides: Partial<CallRecord> = {}): CallRecord {
  return {
    callId: 'rtc_test',
    status: 'accepted',
    from: '+14155550123',
    to: '+18005550100',
    eventId: 'evt_test',
    webhookId: 'wh_test',
    createdAt: Math.floor(T0 / 1000),
    receivedAt: T0 - 500,
    acceptedAt: T0 - 200,
    sessionKey: 'default',
    expiresAt: Math.floor(T0 / 1000) + 3600,
    ...overrides,
  };
}

export interface ScriptOptions {
  readonly record?: Partial<CallRecord>;
  readonly greet?: boolean;
  readonly greeting?: string | null;
  readonly pingIntervalMs?: number;
  readonly config?: Partial<CallSessionSetup['config']>;
  /**
   * Answer call record updates and the recorder's close at once, successfully (default). Off, a
   * test answers them itself, to check what waits for them.
   */
  readonly autoAnswer?: boolean;
  /** The peer answers every ping with a pong at once (default). Off, a test sends pongs itself. */
  readonly answerPings?: boolean;
}

/**
 * Plays a call through the machine: `input` feeds an event at the script's clock, `advance` moves
 * the clock and fires the timers the machine started, and the helpers answer its commands the way
 * the shell would. Every command is kept in `commands`, in order.
 */
export class SessionScript {
  now = T0;
  readonly machine: CallSessionMachine;
  readonly commands: SessionCommand[] = [];
  readonly setup: CallSessionSetup;
  private readonly timers = new Map<SessionTimer, { due: number; every?: number }>();
  private readonly answered = new Set<number>();
  private readonly autoAnswer: boolean;
  private readonly answerPings: boolean;

  constructor(options: ScriptOptions = {}) {
    const config = localCallsConfig();
    const greeting =
      options.greeting === null ? undefined : (options.greeting ?? 'Thanks for calling.');
    this.setup = {
      record: callRecord(options.record),
      ...(greeting ? { greeting } : {}),
      greet: options.greet ?? true,
      owner: 'worker-1',
      pingIntervalMs: options.pingIntervalMs ?? 25_000,
      config: {
        transferTargets: config.transferTargets,
        transferConfirmMs: 15_000,
        wrapUpAfterMs: 55 * 60_000,
        wrapUpGraceMs: 60_000,
        ...options.config,
      },
    };
    this.machine = new CallSessionMachine(this.setup);
    this.autoAnswer = options.autoAnswer ?? true;
    this.answerPings = options.answerPings ?? true;
  }

  /** Feeds an event now; returns the commands it caused (and those of any automatic answers). */
  input(event: SessionEvent): SessionCommand[] {
    if ('op' in event) this.answered.add(event.op);
    const commands = this.machine.handle({ ...event, now: this.now });
    this.commands.push(...commands);
    const caused = [...commands];
    for (const command of commands) {
      if (command.type === 'start-timer')
        this.timers.set(command.timer, {
          due: this.now + command.ms,
          ...(command.repeat ? { every: command.ms } : {}),
        });
      if (command.type === 'cancel-timer') this.timers.delete(command.timer);
    }
    for (const command of commands)
      if (command.type === 'send-ping' && this.answerPings)
        caused.push(...this.input({ type: 'pong' }));
    if (this.autoAnswer)
      for (const command of commands) {
        if (command.type === 'update-call')
          caused.push(...this.input({ type: 'call-updated', op: command.op }));
        if (command.type === 'close-recorder')
          caused.push(...this.input({ type: 'recorder-closed', op: command.op }));
      }
    return caused;
  }

  /** Moves the clock by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): SessionCommand[] {
    const until = this.now + ms;
    const caused: SessionCommand[] = [];
    for (;;) {
      const next = [...this.timers].sort((a, b) => a[1].due - b[1].due)[0];
      if (!next || next[1].due > until) break;
      const [timer, { due, every }] = next;
      this.now = due;
      if (every !== undefined) this.timers.set(timer, { due: due + every, every });
      else this.timers.delete(timer);
      caused.push(...this.input({ type: 'timer-fired', timer }));
    }
    this.now = until;
    return caused;
  }

  /** Opens the socket: the first input of every attached call. */
  open(): SessionCommand[] {
    return this.input({ type: 'socket-opened' });
  }

  server(event: WireEvent): SessionCommand[] {
    return this.input({ type: 'server-event', event });
  }

  /** The model calls a function: `response.function_call_arguments.done`. */
  toolCall(fnCallId: string, name: string, args: unknown): SessionCommand[] {
    return this.server({
      type: 'response.function_call_arguments.done',
      call_id: fnCallId,
      name,
      arguments: JSON.stringify(args),
    });
  }

  close(code: number): SessionCommand[] {
    return this.input({ type: 'socket-closed', code });
  }

  /** The oldest command of this type whose result has not come back yet. */
  pending<T extends WithOp['type']>(type: T): CommandOf<T> {
    const found = this.commands.find(
      (c): c is CommandOf<T> => c.type === type && !this.answered.has((c as WithOp).op),
    );
    if (!found) throw new Error(`No ${type} waiting for its result.`);
    return found;
  }

  isPending(type: WithOp['type']): boolean {
    return this.commands.some((c) => c.type === type && !this.answered.has((c as WithOp).op));
  }

  claimed(claimed = true): SessionCommand[] {
    return this.input({
      type: 'tool-call-claimed',
      op: this.pending('claim-tool-call').op,
      claimed,
    });
  }

  toolFinished(output: string, error?: string): SessionCommand[] {
    return this.input({
      type: 'tool-finished',
      op: this.pending('run-tool').op,
      output,
      ...(error ? { error } : {}),
    });
  }

  referred(result: 'referred' | 'gone' | Error): SessionCommand[] {
    const op = this.pending('refer').op;
    return this.input(
      result instanceof Error
        ? { type: 'refer-finished', op, result: 'failed', error: result.message }
        : { type: 'refer-finished', op, result },
    );
  }

  hungUp(result: 'hung_up' | 'gone' | Error = 'hung_up'): SessionCommand[] {
    const op = this.pending('hangup').op;
    return this.input(
      result instanceof Error
        ? { type: 'hangup-finished', op, result: 'failed', error: result.message }
        : { type: 'hangup-finished', op, result },
    );
  }

  timerRunning(timer: SessionTimer): boolean {
    return this.timers.has(timer);
  }

  /** When a running timer falls due, relative to now. */
  timerDueIn(timer: SessionTimer): number | undefined {
    const t = this.timers.get(timer);
    return t ? t.due - this.now : undefined;
  }
}

// Readers over a list of commands (a script's `commands`, or what one input caused).

export function ofType<T extends SessionCommand['type']>(
  commands: readonly SessionCommand[],
  type: T,
): CommandOf<T>[] {
  return commands.filter((c): c is CommandOf<T> => c.type === type);
}

export function framesSent(commands: readonly SessionCommand[], type?: string): WireEvent[] {
  return ofType(commands, 'send')
    .map((c) => c.frame)
    .filter((f) => type === undefined || f.type === type);
}

export function parts(commands: readonly SessionCommand[]): CallPart[] {
  return ofType(commands, 'record').map((c) => c.part);
}

/** Timeline event names recorded (`attached`, `hangup`, `ended`, …). */
export function timeline(commands: readonly SessionCommand[]): string[] {
  return parts(commands).flatMap((p) => (p.kind === 'event' ? [p.name] : []));
}

export function metricPoints(commands: readonly SessionCommand[]): MetricPoint[] {
  return ofType(commands, 'metrics').flatMap((c) => [...c.points]);
}

export function logMessages(commands: readonly SessionCommand[]): string[] {
  return ofType(commands, 'log').map((c) => `${c.level}: ${c.message}`);
}

export function callUpdates(commands: readonly SessionCommand[]): CommandOf<'update-call'>[] {
  return ofType(commands, 'update-call');
}

export function sessionEnd(commands: readonly SessionCommand[]): SessionEnd | undefined {
  return ofType(commands, 'session-ended')[0]?.end;
}

// The worker's ports, in memory.

/** A signal queue: `push` a body; `receive` waits briefly for one (a short long poll). */
export class FakeSignalQueue implements SignalQueue {
  readonly waiting: QueuedSignal[] = [];
  readonly acked: string[] = [];
  /** The `max` of every receive, in order. */
  readonly asked: number[] = [];
  private next = 0;
  private wake: (() => void) | undefined;

  push(body: string | CallSignal): string {
    const receipt = `receipt-${++this.next}`;
    this.waiting.push({ body: typeof body === 'string' ? body : JSON.stringify(body), receipt });
    this.wake?.();
    return receipt;
  }

  async receive(max: number, abort: AbortSignal): Promise<readonly QueuedSignal[]> {
    this.asked.push(max);
    if (this.waiting.length === 0)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 20);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
        abort.addEventListener('abort', done, { once: true });
      });
    this.wake = undefined;
    return this.waiting.splice(0, max);
  }

  async ack(receipt: string): Promise<void> {
    this.acked.push(receipt);
  }
}

/** Leases with DynamoDB's semantics: a worker lease per worker, a call lease per held call. */
export class FakeCallLeases implements CallLeases {
  readonly workers = new Map<string, { renewedAt: number; deadAfter: number }>();
  readonly calls = new Map<string, string>();
  renewals = 0;

  async registerWorker(owner: string, now: number, ttlMs: number): Promise<void> {
    this.workers.set(owner, { renewedAt: now, deadAfter: now + ttlMs });
  }

  async renewWorker(owner: string, now: number, ttlMs: number): Promise<boolean> {
    this.renewals++;
    if (!this.workers.has(owner)) return false;
    this.workers.set(owner, { renewedAt: now, deadAfter: now + ttlMs });
    return true;
  }

  async claim(callId: string, owner: string): Promise<boolean> {
    const holder = this.calls.get(callId);
    if (holder !== undefined && holder !== owner) return false;
    this.calls.set(callId, owner);
    return true;
  }

  async release(callId: string, owner: string): Promise<void> {
    if (this.calls.get(callId) === owner) this.calls.delete(callId);
  }

  async retire(owner: string): Promise<void> {
    this.workers.delete(owner);
  }

  async sweepDeadWorkers(now: number): Promise<string[]> {
    const swept: string[] = [];
    for (const [owner, lease] of this.workers) {
      if (lease.deadAfter >= now) continue;
      for (const [callId, holder] of this.calls)
        if (holder === owner) {
          this.calls.delete(callId);
          swept.push(callId);
        }
      this.workers.delete(owner);
    }
    return swept;
  }

  /** What a sweeper on another worker does to a worker it takes for dead. */
  declareDead(owner: string): void {
    this.workers.delete(owner);
    for (const [callId, holder] of this.calls) if (holder === owner) this.calls.delete(callId);
  }
}

/** Call records in memory; `transition` applies the move when the status allows it. */
export class FakeCallStore implements CallStore {
  readonly records = new Map<string, CallRecord>();
  readonly transitions: { callId: string; to: CallStatus; fields?: Partial<CallRecord> }[] = [];

  put(record: CallRecord): void {
    this.records.set(record.callId, record);
  }

  async create(record: CallRecord): Promise<boolean> {
    if (this.records.has(record.callId)) return false;
    this.records.set(record.callId, record);
    return true;
  }

  async get(callId: string): Promise<CallRecord | undefined> {
    return this.records.get(callId);
  }

  async transition(
    callId: string,
    from: readonly CallStatus[],
    to: CallStatus,
    fields?: Partial<CallRecord>,
  ): Promise<boolean> {
    const record = this.records.get(callId);
    if (!record || !from.includes(record.status)) return false;
    this.records.set(callId, { ...record, ...fields, status: to });
    this.transitions.push({ callId, to, ...(fields ? { fields } : {}) });
    return true;
  }

  async reserveCapacity(): Promise<boolean> {
    return true;
  }

  async activeCalls(): Promise<number> {
    return 0;
  }
}

export class FakeSignalPublisher implements SignalPublisher {
  readonly sent: CallSignal[] = [];
  async signal(message: CallSignal): Promise<void> {
    this.sent.push(message);
  }
}

/** A held call with no socket: attaches with `result`, and ends when the test (or a hand-off) says. */
export class FakeHeldCall implements HeldCall {
  readonly ended: Promise<SessionEnd>;
  handOffs = 0;
  private resolveEnded!: (end: SessionEnd) => void;

  constructor(
    readonly record: CallRecord,
    readonly signal: CallSignal,
    private readonly result: AttachResult = 'attached',
  ) {
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
  }

  get callId(): string {
    return this.record.callId;
  }

  async attach(): Promise<AttachResult> {
    if (this.result !== 'attached')
      this.end({ reason: this.result === 'gone' ? 'gone' : 'attach_failed', code: 0 });
    return this.result;
  }

  async handOff(): Promise<void> {
    this.handOffs++;
    this.end({ reason: 'handed_off', code: 1000, handedOff: true });
    await this.ended;
  }

  end(end: Partial<SessionEnd> = {}): void {
    this.resolveEnded({ reason: 'caller_hung_up', code: 1006, handedOff: false, ...end });
  }
}

/** A logger that keeps `level: message` lines. */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  const logger = (): Logger => ({
    debug: (m) => lines.push(`debug: ${m}`),
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
    with: () => logger(),
  });
  return Object.assign(logger(), { lines });
}

/** Waits until `check` holds (polling every 5 ms), or fails after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 2000, what = 'a condition') {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
