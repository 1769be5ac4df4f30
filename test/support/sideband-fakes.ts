/**
 * Test doubles for the sideband worker: a script runner for the call-session machine (a fake clock
 * and timer wheel, and helpers to answer its commands), and in-memory fakes of the worker's ports.
 * No DynamoDB, no SQS, no socket.
 */

import type { CallStatus } from '#core/calls/call-state';
import type { Logger } from '#core/observability/logger';
import type { MetricPoint } from '#core/observability/metrics';
import type {
  CallRecord,
  CallSignal,
  CallStore,
  CallsApi,
  SignalPublisher,
} from '#core/ports/calls';
import type {
  CallLeases,
  CallPart,
  CallRecorder,
  ClaimResult,
  PendingToolOutputs,
  QueuedSignal,
  ResponseUsage,
  SignalQueue,
  StoredToolOutput,
  ToolCallClaims,
  ToolContext,
  ToolResult,
  ToolRunner,
} from '#core/ports/sideband';
import type { TaskProtection, TaskProtectionState } from '#core/ports/task-protection';
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
import type { HeldCall, LeaseGuard } from '../../containers/sideband/src/worker';
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
  readonly attachWindowMs?: number;
  readonly config?: Partial<CallSessionSetup['config']>;
  /** Overrides of the call's session (the local default session: `lookup_order`, no DTMF map). */
  readonly session?: Partial<CallSessionSetup['session']>;
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
    const session = config.policy.sessions.default;
    this.setup = {
      record: callRecord(options.record),
      ...(greeting ? { greeting } : {}),
      greet: options.greet ?? true,
      owner: 'worker-1',
      pingIntervalMs: options.pingIntervalMs ?? 25_000,
      ...(options.attachWindowMs !== undefined ? { attachWindowMs: options.attachWindowMs } : {}),
      session: {
        instructions: session?.instructions ?? '',
        tools: session?.tools ?? [],
        ...options.session,
      },
      config: {
        transferTargets: config.transferTargets,
        transferConfirmMs: 15_000,
        wrapUpAfterMs: 55 * 60_000,
        wrapUpGraceMs: 60_000,
        tools: config.tools,
        // Off unless a test turns it on: most scripts move the clock past any no-speech deadline.
        noSpeechTimeoutMs: 0,
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
        if (command.type === 'store-tool-output')
          caused.push(...this.input({ type: 'tool-output-stored', op: command.op }));
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

  /**
   * The model calls a function, as the API reports a call that completed: the arguments
   * (`response.function_call_arguments.done`), then the item (`response.output_item.done`, status
   * `completed`). `status: 'incomplete'` plays a call the caller interrupted. The response is
   * `responseId` (its `response.created`/`.done` are the test's to send, if it needs them).
   */
  toolCall(
    fnCallId: string,
    name: string,
    args: unknown,
    options: { responseId?: string; status?: 'completed' | 'incomplete' } = {},
  ): SessionCommand[] {
    const responseId = options.responseId ?? `resp_${fnCallId}`;
    const argumentsText = typeof args === 'string' ? args : JSON.stringify(args);
    return [
      ...this.server({
        type: 'response.function_call_arguments.done',
        response_id: responseId,
        item_id: `item_${fnCallId}`,
        output_index: 0,
        call_id: fnCallId,
        name,
        arguments: argumentsText,
      }),
      ...this.server({
        type: 'response.output_item.done',
        response_id: responseId,
        output_index: 0,
        item: functionCallItem(fnCallId, name, argumentsText, options.status ?? 'completed'),
      }),
    ];
  }

  responseCreated(id: string): SessionCommand[] {
    return this.server({ type: 'response.created', response: { id, status: 'in_progress' } });
  }

  /** `response.done`; `status` other than completed comes with the barge-in's `turn_detected`. */
  responseDone(
    id: string,
    status: 'completed' | 'cancelled' | 'incomplete' = 'completed',
    output: unknown[] = [],
  ): SessionCommand[] {
    return this.server({
      type: 'response.done',
      response: {
        id,
        status,
        status_details:
          status === 'cancelled' ? { type: 'cancelled', reason: 'turn_detected' } : null,
        output,
      },
    });
  }

  audioStarted(responseId: string): SessionCommand[] {
    return this.server({ type: 'output_audio_buffer.started', response_id: responseId });
  }

  audioStopped(responseId: string): SessionCommand[] {
    return this.server({ type: 'output_audio_buffer.stopped', response_id: responseId });
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

/** A `function_call` conversation item ([SDK] realtime.d.ts RealtimeConversationItemFunctionCall). */
export function functionCallItem(
  fnCallId: string,
  name: string,
  args: string,
  status: 'completed' | 'incomplete' | 'in_progress' = 'completed',
): WireEvent {
  return {
    id: `item_${fnCallId}`,
    object: 'realtime.item',
    type: 'function_call',
    status,
    name,
    call_id: fnCallId,
    arguments: args,
  };
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

  /** Visibility changes asked for (the fake queue does not bring signals back by itself). */
  readonly delayed: { receipt: string; seconds: number }[] = [];
  async delay(receipt: string, seconds: number): Promise<void> {
    this.delayed.push({ receipt, seconds });
  }
}

/**
 * Leases with DynamoDB's semantics (adapters/dynamo-call-leases.ts): a worker lease per worker with
 * its epoch, a call lease per held call with its owner's epoch, fencing by epoch.
 */
export class FakeCallLeases implements CallLeases {
  readonly workers = new Map<string, { epoch: number; renewedAt: number; deadAfter: number }>();
  readonly calls = new Map<string, { owner: string; epoch: number }>();
  renewals = 0;
  /** Set: the next renewals throw (DynamoDB unreachable). */
  failRenewals = false;
  private readonly lastEpoch = new Map<string, number>();

  async registerWorker(owner: string, now: number, ttlMs: number): Promise<number> {
    const epoch = (this.lastEpoch.get(owner) ?? 0) + 1;
    this.lastEpoch.set(owner, epoch);
    this.workers.set(owner, { epoch, renewedAt: now, deadAfter: now + ttlMs });
    return epoch;
  }

  async renewWorker(owner: string, epoch: number, now: number, ttlMs: number): Promise<boolean> {
    this.renewals++;
    if (this.failRenewals) throw new Error('injected: DynamoDB unreachable');
    const lease = this.workers.get(owner);
    if (lease?.epoch !== epoch) return false;
    this.workers.set(owner, { epoch, renewedAt: now, deadAfter: now + ttlMs });
    return true;
  }

  async claim(callId: string, owner: string, epoch: number): Promise<ClaimResult> {
    if (this.workers.get(owner)?.epoch !== epoch) return 'fenced';
    const holder = this.calls.get(callId);
    if (holder !== undefined && holder.owner !== owner) return 'held';
    this.calls.set(callId, { owner, epoch });
    return 'claimed';
  }

  async release(callId: string, owner: string, epoch: number): Promise<boolean> {
    const holder = this.calls.get(callId);
    if (holder?.owner !== owner || holder.epoch !== epoch) return false;
    this.calls.delete(callId);
    return true;
  }

  async retire(owner: string, epoch: number): Promise<void> {
    const lease = this.workers.get(owner);
    if (lease?.epoch === epoch) lease.deadAfter = 0;
  }

  async sweepDeadWorkers(now: number): Promise<string[]> {
    const swept: string[] = [];
    for (const [owner, lease] of [...this.workers])
      if (lease.deadAfter < now) swept.push(...this.fence(owner));
    return swept;
  }

  /** Who holds a call's lease. */
  holder(callId: string): string | undefined {
    return this.calls.get(callId)?.owner;
  }

  /** Holds a call for another worker (under its current epoch, or 1). */
  give(callId: string, owner: string): void {
    this.calls.set(callId, { owner, epoch: this.workers.get(owner)?.epoch ?? 1 });
  }

  /**
   * What a sweeper on another worker does to a worker it takes for dead: fences its epoch, takes
   * `take` of its call leases (all by default: a sweeper may be part-way), and returns those.
   */
  fence(owner: string, take?: readonly string[]): string[] {
    const lease = this.workers.get(owner);
    const fenced = (lease?.epoch ?? 0) + 1;
    this.lastEpoch.set(owner, Math.max(this.lastEpoch.get(owner) ?? 0, fenced));
    if (lease) lease.epoch = fenced;
    const swept: string[] = [];
    for (const [callId, holder] of [...this.calls])
      if (
        holder.owner === owner &&
        holder.epoch < fenced &&
        (take === undefined || take.includes(callId))
      ) {
        this.calls.delete(callId);
        swept.push(callId);
      }
    if (take === undefined) this.workers.delete(owner);
    return swept;
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

/**
 * A held call with no socket: attaches with `result` (or when the test settles `attaching`), and
 * ends when the test (or a hand-off or a lost lease) says.
 */
export class FakeHeldCall implements HeldCall {
  readonly ended: Promise<SessionEnd>;
  handOffs = 0;
  resumes = 0;
  leasesLost = 0;
  private resolveEnded!: (end: SessionEnd) => void;

  constructor(
    readonly record: CallRecord,
    readonly signal: CallSignal,
    private readonly result: AttachResult | 'pending' | 'throw' = 'attached',
    readonly lease?: LeaseGuard,
  ) {
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
  }

  get callId(): string {
    return this.record.callId;
  }

  async attach(): Promise<AttachResult> {
    if (this.result === 'throw') throw new Error('injected: attach threw');
    if (this.result === 'pending')
      // Attaching (retrying) until the session ends: a hand-off or a lost lease settles it.
      return this.ended.then((end) => (end.handedOff ? 'handed_off' : 'failed'));
    if (this.result !== 'attached')
      this.end({ reason: this.result === 'gone' ? 'gone' : 'attach_failed', code: 0 });
    return this.result;
  }

  async handOff(): Promise<void> {
    this.handOffs++;
    this.end({ reason: 'handed_off', code: 1000, handedOff: true });
    await this.ended;
  }

  resume(): void {
    this.resumes++;
  }

  async loseLease(): Promise<void> {
    this.leasesLost++;
    this.end({ reason: 'handed_off', code: 1006, handedOff: true });
    await this.ended;
  }

  end(end: Partial<SessionEnd> = {}): void {
    this.resolveEnded({ reason: 'caller_hung_up', code: 1006, handedOff: false, ...end });
  }
}

/** ECS task protection: keeps every request (`protect:<minutes>`, `unprotect`); `failing` throws. */
export class FakeTaskProtection implements TaskProtection {
  readonly requests: string[] = [];
  failing = false;
  async protect(expiresInMinutes: number): Promise<TaskProtectionState> {
    this.requests.push(`protect:${expiresInMinutes}`);
    if (this.failing) throw new Error('injected: AccessDeniedException');
    return { protectionEnabled: true };
  }
  async unprotect(): Promise<TaskProtectionState> {
    this.requests.push('unprotect');
    if (this.failing) throw new Error('injected: AccessDeniedException');
    return { protectionEnabled: false };
  }
  async state(): Promise<TaskProtectionState> {
    return { protectionEnabled: this.requests.at(-1)?.startsWith('protect') ?? false };
  }
}

/** The calls API: answers every request, and keeps what was asked. */
export class FakeCallsApi implements CallsApi {
  readonly hangups: string[] = [];
  readonly refers: { callId: string; uri: string }[] = [];
  async accept(): Promise<'accepted'> {
    return 'accepted';
  }
  async reject(): Promise<'rejected'> {
    return 'rejected';
  }
  async refer(callId: string, uri: string): Promise<'referred'> {
    this.refers.push({ callId, uri });
    return 'referred';
  }
  async hangup(callId: string): Promise<'hung_up'> {
    this.hangups.push(callId);
    return 'hung_up';
  }
}

/** User tools: `run` calls `impl` (default: echo the arguments); every run is kept. */
export class FakeToolRunner implements ToolRunner {
  readonly runs: { name: string; args: string; context: ToolContext }[] = [];
  constructor(
    public impl: (name: string, args: string) => Promise<ToolResult> = async (_n, args) => ({
      output: args,
    }),
  ) {}
  run(name: string, rawArguments: string, context: ToolContext): Promise<ToolResult> {
    this.runs.push({ name, args: rawArguments, context });
    return this.impl(name, rawArguments);
  }
}

/** Tool-call claims in memory, with the adapter's semantics; `failNext` throws that many claims. */
export class FakeToolCallClaims implements ToolCallClaims {
  readonly items = new Map<
    string,
    { claimant: string; status: string; at: number; stored?: StoredToolOutput; delivered?: boolean }
  >();
  readonly attempts: string[] = [];
  failNext = 0;

  async claim(callId: string, fnCallId: string, _name: string, claimant: string): Promise<boolean> {
    this.attempts.push(fnCallId);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected: ProvisionedThroughputExceededException');
    }
    const key = `${callId}/${fnCallId}`;
    const item = this.items.get(key);
    if (item && !(item.claimant === claimant && item.status === 'running')) return false;
    this.items.set(key, { claimant, status: 'running', at: Date.now() });
    return true;
  }

  async storeOutput(callId: string, output: StoredToolOutput): Promise<void> {
    const key = `${callId}/${output.fnCallId}`;
    const item = this.items.get(key) ?? { claimant: '', status: 'running', at: Date.now() };
    this.items.set(key, { ...item, status: output.status, stored: output, delivered: false });
  }

  async pendingOutputs(callId: string): Promise<PendingToolOutputs> {
    const undelivered: PendingToolOutputs['undelivered'][number][] = [];
    const running: PendingToolOutputs['running'][number][] = [];
    for (const [key, item] of this.items) {
      if (!key.startsWith(`${callId}/`)) continue;
      const fnCallId = key.slice(callId.length + 1);
      if (item.delivered === false && item.stored)
        undelivered.push({ fnCallId, name: item.stored.name, output: item.stored.output });
      else if (item.status === 'running') running.push({ fnCallId, name: '', at: item.at });
    }
    return { undelivered, running };
  }

  async markDelivered(callId: string, fnCallId: string): Promise<boolean> {
    const item = this.items.get(`${callId}/${fnCallId}`);
    if (item?.delivered !== false) return false;
    item.delivered = true;
    return true;
  }
}

/** A recorder that keeps every part and usage; `closed` once closed. */
export class FakeRecorder implements CallRecorder {
  readonly parts: CallPart[] = [];
  readonly usage: ResponseUsage[] = [];
  closed = false;
  record(part: CallPart): void {
    this.parts.push(part);
  }
  addUsage(usage: ResponseUsage): void {
    this.usage.push(usage);
  }
  async close(): Promise<void> {
    this.closed = true;
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
