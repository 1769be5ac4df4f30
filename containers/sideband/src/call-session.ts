import { randomUUID } from 'node:crypto';
import WebSocket, { type RawData } from 'ws';
import type { CallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import { errorMessage, type Logger } from '#core/observability/logger';
import type { MetricsPublisher } from '#core/observability/metrics';
import type { CommandStore } from '#core/ports/call-control';
import type { CallRecord, CallStore, CallsApi } from '#core/ports/calls';
import type { CallRecorder, ToolCallClaims, ToolRunner } from '#core/ports/sideband';
import { type CommandLimits, storedCommandOf } from '#core/sideband/call-commands';
import {
  type AttachResult,
  CallSessionMachine,
  type SessionCommand,
  type SessionEnd,
  type SessionEvent,
  type SessionInput,
  type SessionTimer,
} from '#core/sideband/call-session-machine';
import type { WireEvent } from '#core/wire';
import type { HeldCall, LeaseGuard } from './worker';

export interface CallSessionDeps {
  readonly config: CallsConfig;
  readonly calls: CallStore;
  readonly api: CallsApi;
  readonly tools: ToolRunner;
  readonly claims: ToolCallClaims;
  readonly recorder: CallRecorder;
  readonly realtimeUrl: string;
  /** The API key, read at each attach so a rotated key is used for the next socket. */
  readonly apiKey: () => Promise<string>;
  readonly owner: string;
  readonly clock: () => number;
  readonly log: Logger;
  /** Keep-alive ping interval; a peer that misses one pong is terminated. */
  readonly pingIntervalMs: number;
  /** EMF metrics (README "Metrics"). */
  readonly metrics: MetricsPublisher;
  /** Whether the worker's lease is known to be held (see `LeaseGuard`). @default always held */
  readonly lease?: LeaseGuard;
  /** How long failed attaches are retried before the call is hung up. @default ATTACH_WINDOW_MS */
  readonly attachWindowMs?: number;
  /** The opening handshake's timeout (a peer that never answers the upgrade). @default 5000 */
  readonly handshakeTimeoutMs?: number;
  /** Call control (issue 16): the command store, and the limits a stored command is checked by. */
  readonly commands?: { readonly store: CommandStore; readonly limits: CommandLimits };
}

/**
 * The largest server frame taken (bytes). A sideband carries JSON events only, never audio (SIP
 * carries it: openai-protocol.md §4.1), and the largest of them (`session.created`, a
 * `response.done` with its items) are kilobytes; 1 MiB bounds what one frame from a misbehaving
 * peer can cost this worker, which holds up to `maxCallsPerTask` sockets. A larger frame closes
 * the socket with 1009 (`ws`'s `maxPayload`).
 */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * The most inputs one session holds back while its worker's lease is in doubt (renewals failing:
 * DynamoDB unreachable). A call's events are small and few per second, so this covers minutes;
 * beyond it, server frames are dropped rather than let memory grow with the outage.
 */
const MAX_HELD_BACK = 5000;

/**
 * One call's sideband on a real socket: opens `wss://…/realtime?call_id=`, feeds every socket
 * event, timer and command result to the call's state machine (`#core/sideband/call-session-machine`,
 * where every decision is made), and carries out the machine's commands with the socket, real
 * timers, the calls API, the tool runner, the tool-call claims, the call store and the recorder.
 * It opens a second socket to the same call when the machine asks for a reattach (or to retry a
 * failed attach); events of a socket it has replaced are ignored.
 *
 * Fencing: before the machine sees any input, the shell asks the worker's `LeaseGuard` whether the
 * lease is held. While it is in doubt (a process that was stopped, or renewals that failed for most
 * of the lease), inputs are held back in order, and the worker is asked to renew at once; they are
 * replayed on `resume()`, or dropped on `loseLease()` (command results excepted: the machine still
 * learns how its own requests ended, and stores a finished tool's output for the next owner).
 */
export class CallSession implements HeldCall {
  readonly ended: Promise<SessionEnd>;
  private resolveEnded!: (end: SessionEnd) => void;
  private settleAttach: ((result: AttachResult) => void) | undefined;
  private ws: WebSocket | undefined;
  private readonly machine: CallSessionMachine;
  private readonly timers = new Map<SessionTimer, NodeJS.Timeout>();
  /** Inputs waiting while the commands of an earlier one are carried out. */
  private readonly inbox: SessionInput[] = [];
  private feeding = false;
  /** Inputs held back while the worker's lease is in doubt. */
  private heldBack: SessionInput[] = [];
  /** The lease was lost: nothing is held back any more (the session is ending). */
  private leaseLost = false;
  /** Server frames dropped because too many were held back (a long DynamoDB outage). */
  private droppedWhileHeld = 0;
  /** This session's claimant id on tool-call claims: a retried claim it already holds is its own. */
  private readonly claimant = randomUUID();

  constructor(
    readonly record: CallRecord,
    session: SessionConfig,
    greet: boolean,
    private readonly deps: CallSessionDeps,
  ) {
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
    this.machine = new CallSessionMachine({
      record,
      ...(session.greeting ? { greeting: session.greeting } : {}),
      greet,
      owner: deps.owner,
      pingIntervalMs: deps.pingIntervalMs,
      ...(deps.attachWindowMs !== undefined ? { attachWindowMs: deps.attachWindowMs } : {}),
      session,
      config: deps.config,
    });
  }

  get callId(): string {
    return this.record.callId;
  }

  /**
   * Opens the sideband, retrying failed attempts within the attach window. `gone`: the call no
   * longer exists (404), and is recorded as ended; `failed`: no attempt got through, and the call
   * was hung up; `handed_off`: let go of before it attached.
   */
  async attach(): Promise<AttachResult> {
    return new Promise((resolve) => {
      let settled = false;
      this.settleAttach = (result) => {
        if (!settled) {
          settled = true;
          resolve(result);
        }
      };
      this.feed({ type: 'attach' });
      void this.connect();
    });
  }

  /** Opens a socket to the call (the first attach, or a reattach) and feeds its events. */
  private async connect(): Promise<void> {
    const { deps } = this;
    const url = `${deps.realtimeUrl}?call_id=${encodeURIComponent(this.callId)}`;
    let apiKey: string;
    try {
      apiKey = await deps.apiKey();
    } catch (error) {
      this.feed({ type: 'socket-error', error: errorMessage(error) });
      return;
    }
    // Only the bearer token: the OpenAI-Beta header gets the socket closed with 4000.
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${apiKey}` },
      handshakeTimeout: deps.handshakeTimeoutMs ?? 5000,
      maxPayload: MAX_FRAME_BYTES,
    });
    this.ws = ws;
    // Events of a socket that was replaced (by a reattach) are not this session's any more.
    const current = () => this.ws === ws;
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      if (current()) this.feed({ type: 'attach-refused', status: res.statusCode ?? 0 });
    });
    // `ws` closes a socket whose frame exceeds maxPayload with 1009, but its close event then
    // reports the abnormal 1006 (it stops reading): keep the 1009, so the close does not read as
    // the caller hanging up.
    let refusedFrame = false;
    ws.on('error', (error) => {
      if ((error as { code?: unknown }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
        refusedFrame = true;
      if (current()) this.feed({ type: 'socket-error', error: errorMessage(error) });
    });
    ws.on('open', () => {
      if (!current()) return;
      this.feed({ type: 'socket-opened' });
      this.settleAttach?.('attached');
    });
    ws.on('pong', () => {
      if (current()) this.feed({ type: 'pong' });
    });
    ws.on('message', (data, isBinary) => {
      if (!current()) return;
      const frame = parseFrame(data, isBinary);
      this.feed(
        'junk' in frame
          ? { type: 'junk-frame', what: frame.junk }
          : { type: 'server-event', event: frame.event },
      );
    });
    ws.on('close', (code) => {
      if (current()) this.feed({ type: 'socket-closed', code: refusedFrame ? 1009 : code });
    });
  }

  /**
   * A nudge: command `commandId` is pending for this call. The item is read (consistently) and
   * given to the machine, which claims it under the lease before acting on it.
   */
  command(commandId: string, item?: unknown): void {
    const control = this.deps.commands;
    if (!control) return;
    // The nudge carried it: no read (the claim checks it is the stored one, by its digest).
    const carried = item === undefined ? undefined : storedCommandOf(item, control.limits);
    if (carried && carried.id === commandId && carried.callId === this.callId) {
      this.feed({ type: 'command', command: carried });
      return;
    }
    control.store.get(this.callId, commandId).then(
      (item) => {
        const command = storedCommandOf(item, control.limits);
        if (command && command.callId === this.callId) this.feed({ type: 'command', command });
      },
      (error: unknown) =>
        this.deps.log.warn('could not read a call command', {
          commandId,
          error: errorMessage(error),
        }),
    );
  }

  /** SIGTERM: close our side without ending the call; another worker reattaches to it. */
  async handOff(): Promise<void> {
    this.feed({ type: 'hand-off' });
    await this.ended;
  }

  resume(): void {
    if (this.heldBack.length === 0 || !this.leaseHeld()) return;
    const held = this.heldBack;
    this.heldBack = [];
    for (const input of held) this.process(input);
  }

  async loseLease(): Promise<void> {
    this.leaseLost = true;
    const held = this.heldBack;
    this.heldBack = [];
    this.process({ type: 'lease-lost', now: this.deps.clock() });
    // What the socket said and the timers asked for meanwhile is not ours to act on; how our own
    // requests ended, and the socket's own end (a close held back must still end the session),
    // still reach the machine.
    for (const input of held) if (settles(input)) this.process(input);
    await this.ended;
  }

  private leaseHeld(): boolean {
    return this.leaseLost || (this.deps.lease?.held() ?? true);
  }

  /**
   * Gives the machine an input, stamped with the time, unless the lease is in doubt (then it is
   * held back, in order, and the worker asked to renew).
   */
  private feed(event: SessionEvent): void {
    const input = { ...event, now: this.deps.clock() } as SessionInput;
    if (this.heldBack.length > 0 || !this.leaseHeld()) {
      if (this.heldBack.length === 0) {
        this.deps.log.warn('lease in doubt: holding the session until it is confirmed');
        this.deps.lease?.doubt();
      }
      // Bounded: past the cap, the peer's frames go (its own results and the socket's end stay).
      if (this.heldBack.length >= MAX_HELD_BACK && !settles(input)) {
        if (this.droppedWhileHeld++ === 0)
          this.deps.log.error('lease in doubt for long: dropping server frames held back');
        return;
      }
      this.heldBack.push(input);
      return;
    }
    this.process(input);
  }

  /**
   * Carries out what the machine answers to an input. Nothing thrown here may escape into a socket
   * or timer callback (it would kill the worker): a throw is logged and the next input goes on.
   */
  private process(input: SessionInput): void {
    this.inbox.push(input);
    if (this.feeding) return;
    this.feeding = true;
    try {
      for (let input = this.inbox.shift(); input; input = this.inbox.shift()) {
        let commands: SessionCommand[];
        try {
          commands = this.machine.handle(input);
        } catch (error) {
          this.deps.log.error('call session input failed', {
            input: input.type,
            error: errorMessage(error),
          });
          continue;
        }
        for (const command of commands) {
          try {
            this.execute(command);
          } catch (error) {
            this.deps.log.error('call session command failed', {
              command: command.type,
              error: errorMessage(error),
            });
          }
        }
      }
    } finally {
      this.feeding = false;
    }
  }

  private execute(command: SessionCommand): void {
    const { deps, callId } = this;
    switch (command.type) {
      case 'send':
        if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(command.frame));
        break;
      case 'send-ping':
        // `ping` throws on a socket still connecting.
        if (this.ws?.readyState === WebSocket.OPEN) this.ws.ping();
        break;
      case 'reattach':
      case 'connect':
        void this.connect();
        break;
      case 'close-socket':
        this.ws?.close(command.code, command.reason);
        break;
      case 'terminate-socket':
        this.ws?.terminate();
        break;
      case 'start-timer': {
        this.stopTimer(command.timer);
        const { timer } = command;
        const fire = () => {
          if (!command.repeat) this.timers.delete(timer);
          this.feed({ type: 'timer-fired', timer });
        };
        this.timers.set(
          timer,
          command.repeat ? setInterval(fire, command.ms) : setTimeout(fire, command.ms),
        );
        break;
      }
      case 'cancel-timer':
        this.stopTimer(command.timer);
        break;
      case 'claim-tool-call': {
        const { op } = command;
        // A throw is transient (the machine retries); only `false` means someone else has it.
        deps.claims.claim(callId, command.fnCallId, command.name, this.claimant).then(
          (claimed) => this.feed({ type: 'tool-call-claimed', op, claimed }),
          (error: unknown) =>
            this.feed({
              type: 'tool-call-claimed',
              op,
              claimed: false,
              error: errorMessage(error),
            }),
        );
        break;
      }
      case 'run-tool': {
        const { op } = command;
        // `run` should never throw; one that does is the tool's error, never an unhandled rejection.
        Promise.resolve()
          .then(() => deps.tools.run(command.name, command.arguments, command.context))
          .then(
            (result) =>
              this.feed({
                type: 'tool-finished',
                op,
                output: result.output,
                ...(result.error !== undefined ? { error: result.error } : {}),
              }),
            (error: unknown) =>
              this.feed({
                type: 'tool-finished',
                op,
                output: JSON.stringify({
                  error: { code: 'tool_failed', message: `The ${command.name} tool failed.` },
                }),
                error: `tool_failed: ${errorMessage(error)}`,
              }),
          );
        break;
      }
      case 'store-tool-output': {
        const { op } = command;
        deps.claims.storeOutput(callId, command.output).then(
          () => this.feed({ type: 'tool-output-stored', op }),
          (error: unknown) =>
            this.feed({ type: 'tool-output-stored', op, error: errorMessage(error) }),
        );
        break;
      }
      case 'load-tool-outputs': {
        const { op } = command;
        deps.claims.pendingOutputs(callId).then(
          (found) => this.feed({ type: 'tool-outputs-loaded', op, ...found }),
          (error: unknown) =>
            this.feed({
              type: 'tool-outputs-loaded',
              op,
              undelivered: [],
              running: [],
              error: errorMessage(error),
            }),
        );
        break;
      }
      case 'mark-tool-output-delivered': {
        const { op } = command;
        deps.claims.markDelivered(callId, command.fnCallId).then(
          (delivered) => this.feed({ type: 'tool-output-marked', op, delivered }),
          (error: unknown) =>
            this.feed({
              type: 'tool-output-marked',
              op,
              delivered: false,
              error: errorMessage(error),
            }),
        );
        break;
      }
      case 'load-commands': {
        const { op } = command;
        const control = deps.commands;
        if (!control) {
          this.feed({ type: 'commands-loaded', op, commands: [] });
          break;
        }
        control.store.list(callId).then(
          (items) =>
            this.feed({
              type: 'commands-loaded',
              op,
              commands: items.flatMap((item) => {
                const c = storedCommandOf(item, control.limits);
                return c && c.callId === callId ? [c] : [];
              }),
            }),
          (error: unknown) =>
            this.feed({ type: 'commands-loaded', op, commands: [], error: errorMessage(error) }),
        );
        break;
      }
      case 'update-command': {
        const { op } = command;
        const control = deps.commands;
        if (!control) {
          this.feed({ type: 'command-updated', op, done: false, error: 'no call control' });
          break;
        }
        // A claim (from pending, or a hang-up re-claimed from a dead worker: to applied from
        // applied): only while this worker holds the call's lease under its claim's epoch.
        const epoch = deps.lease?.epoch;
        const claim =
          command.from === 'pending' || (command.from === 'applied' && command.to === 'applied');
        control.store
          .transition(callId, command.commandId, command.from, command.to, {
            ...(claim && epoch !== undefined ? { guard: { owner: deps.owner, epoch } } : {}),
            by: deps.owner,
            at: deps.clock(),
            ...(command.error ? { error: command.error } : {}),
            ...(command.expected ? { expected: command.expected } : {}),
          })
          .then(
            (done) => this.feed({ type: 'command-updated', op, done }),
            (error: unknown) =>
              this.feed({ type: 'command-updated', op, done: false, error: errorMessage(error) }),
          );
        break;
      }
      case 'refer': {
        const { op } = command;
        deps.api.refer(callId, command.uri).then(
          (result) => this.feed({ type: 'refer-finished', op, result }),
          (error: unknown) =>
            this.feed({ type: 'refer-finished', op, result: 'failed', error: errorMessage(error) }),
        );
        break;
      }
      case 'hangup': {
        const { op } = command;
        deps.api.hangup(callId).then(
          (result) => this.feed({ type: 'hangup-finished', op, result }),
          (error: unknown) =>
            this.feed({
              type: 'hangup-finished',
              op,
              result: 'failed',
              error: errorMessage(error),
            }),
        );
        break;
      }
      case 'update-call': {
        const { op } = command;
        const update = command.release
          ? deps.calls.transition(callId, command.from, command.to, command.fields, {
              release: true,
            })
          : deps.calls.transition(callId, command.from, command.to, command.fields);
        update.then(
          () => this.feed({ type: 'call-updated', op }),
          (error: unknown) => this.feed({ type: 'call-updated', op, error: errorMessage(error) }),
        );
        break;
      }
      case 'record':
        deps.recorder.record(command.part);
        break;
      case 'add-usage':
        deps.recorder.addUsage(command.usage);
        break;
      case 'close-recorder': {
        const { op } = command;
        // `close` never throws by contract; the session ends either way.
        const closed = () => this.feed({ type: 'recorder-closed', op });
        deps.recorder.close().then(closed, closed);
        break;
      }
      case 'metrics':
        deps.metrics(command.points);
        break;
      case 'log':
        deps.log[command.level](command.message, command.fields);
        break;
      case 'session-ended':
        // Nothing of the session may keep running (or keep the process alive).
        for (const timer of [...this.timers.keys()]) this.stopTimer(timer);
        // An attach that never opened learns its result here.
        this.settleAttach?.(
          command.end.handedOff ? 'handed_off' : command.end.reason === 'gone' ? 'gone' : 'failed',
        );
        this.resolveEnded(command.end);
        break;
    }
  }

  private stopTimer(timer: SessionTimer): void {
    const handle = this.timers.get(timer);
    if (handle === undefined) return;
    clearTimeout(handle);
    this.timers.delete(timer);
  }
}

/**
 * An input still replayed once the lease is lost: a command's result, the socket's failure or
 * close, and the end-of-session grace timer. Server events, pongs and other timers are dropped:
 * acting on them is the new owner's business.
 */
function settles(input: SessionInput): boolean {
  if ('op' in input) return true;
  if (input.type === 'timer-fired') return input.timer === 'end-grace';
  return (
    input.type === 'socket-closed' ||
    input.type === 'socket-error' ||
    input.type === 'attach-refused'
  );
}

/**
 * A server frame as an event: a JSON object with a string `type` (openai-protocol.md §4.1: "JSON
 * text frames keyed on `type`"). Anything else (binary, not JSON, null, an array, a number, a
 * string, an object without a type) is junk, with what it was: logged and ignored, never thrown.
 */
export function parseFrame(
  data: RawData,
  isBinary: boolean,
): { readonly event: WireEvent } | { readonly junk: string } {
  if (isBinary) return { junk: 'a binary frame' };
  const text = Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : data instanceof ArrayBuffer
      ? Buffer.from(new Uint8Array(data)).toString('utf8')
      : data.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { junk: 'not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null) return { junk: `a ${typeofJson(parsed)}` };
  if (Array.isArray(parsed)) return { junk: 'an array' };
  const type = (parsed as { type?: unknown }).type;
  if (typeof type !== 'string' || type.length === 0) return { junk: 'an object without a type' };
  return { event: parsed as WireEvent };
}

function typeofJson(value: unknown): string {
  return value === null ? 'null' : typeof value;
}
