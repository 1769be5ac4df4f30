/**
 * One call's sideband as a pure state machine. The shell (`containers/sideband/src/call-session.ts`)
 * owns the socket, the clock, the timers and the SDK clients: it feeds every event in as an input
 * (with the time it happened) and carries out the commands that come back. Nothing here waits:
 * a command whose result matters (a durable tool claim, a user tool, `/refer`, `/hangup`, a call
 * record update, the recorder's last flush, a stored tool output) carries an `op` number, and its
 * result comes back as an input with that number.
 *
 * What it does (references: ../shared/reference/openai-protocol.md §4, and the `openai` package's
 * test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts, "[SDK]" below):
 *
 * - Greets on the first attach, with the session's own instructions kept: `response.instructions`
 *   replaces the session instructions for that response ([SDK] RealtimeResponseCreateParams
 *   `instructions`; §4.5), so the greeting and the wrap-up send the session's instructions plus
 *   their own line.
 * - Runs a function call only once it completed: on `response.output_item.done` whose
 *   `function_call` item has `status: "completed"` (agents-js's trigger), or on a `completed`
 *   `response.done` that carries it; never on `response.function_call_arguments.done`, which "is
 *   also emitted when a Response is interrupted, incomplete, or cancelled" ([SDK]
 *   ResponseFunctionCallArgumentsDoneEvent; §4.3, §4.5). An interrupted call is recorded as
 *   skipped. Each runs once per function call id (claimed durably; a claim that throws is retried
 *   briefly), and only if the call's session has the tool.
 * - Lets the last words play: `end_call`, `transfer_call` and the wrap-up's end wait for the
 *   response's `response.done` and for `output_audio_buffer.stopped` ([SDK]
 *   RealtimeServerEvent.OutputAudioBufferStopped: "emitted after the full response data has been
 *   sent to the client (`response.done`)", once the buffer has drained), at most
 *   `goodbyeDrainCapMs`, before `/hangup` or `/refer`.
 * - Transfers through `/refer` to an allowlisted target, and counts the transfer only when the
 *   socket closes within the confirm deadline (REFER can answer 200 and never happen).
 * - Ends ghost and silent calls: no speech within `noSpeechTimeoutMs` of the attach, or
 *   `idleTimeoutsBeforeHangup` server idle timeouts in a row ([SDK]
 *   InputAudioBufferTimeoutTriggered: with server_vad `idle_timeout_ms` the server commits the
 *   silence and prompts the caller itself), hang up as `no_caller_speech`.
 * - Records keypad keys ([SDK] InputAudioBufferDtmfEventReceivedEvent) and acts on the session's
 *   DTMF map.
 * - Retries a failed attach (a handshake timeout, a 5xx, a network error, the API key unreadable)
 *   with backoff within `attachWindowMs`, then hangs up (`/hangup`: the call was accepted, and
 *   must not ring on in silence) and records why (`attach_failed`, `attach_failed_<status>`). A
 *   404 is final: the call is gone.
 * - Reattaches ONCE after a clean close (1000/1001) the worker did not cause: it may be a backend
 *   rotation while the call lives (§6.10). A 404 means the call is over.
 * - On a lost lease (the worker was fenced: another worker takes the call over), drops the socket
 *   at once, without hanging up and without recording an end.
 * - On a hand-off (SIGTERM), finishes the tools still running and stores their outputs on their
 *   claims; the worker that takes the call over sends them.
 * - Records transcripts with their place in the conversation ([SDK] ConversationItemAdded
 *   `previous_item_id`), usage with its token details, tools, errors and a timeline; pings the peer
 *   and terminates it after a missed pong; asks the model to wrap up before OpenAI's 60-minute cap;
 *   ends the call for whatever reason the socket closed (the first cause wins).
 */
import { endReasonOf } from '../calls/call-state';
import {
  CALL_DEFAULTS,
  type CallsConfig,
  type SidebandSettings,
  sidebandSettings,
} from '../calls/calls-config';
import {
  BUILT_IN_TOOLS,
  DTMF_KEY,
  type DtmfAction,
  type SessionConfig,
} from '../calls/session-config';
import { count, type MetricPoint } from '../observability/metrics';
import type { CallRecord, CallStore } from '../ports/calls';
import type {
  CallPart,
  PendingToolOutputs,
  ResponseUsage,
  StoredToolOutput,
  ToolContext,
  ToolPart,
} from '../ports/sideband';
import type { CallEndReason, HangupCause } from '../reasons';
import type { WireEvent } from '../wire';
import {
  type CallCommand,
  type CommandError,
  type CommandStatus,
  type StoredCommand,
  sayItem,
} from './call-commands';
import { ConversationOrder } from './conversation-order';
import { type ResponseParams, ResponseSequencer, responseCreate } from './response-sequencer';
import { capOutput, idOf, isObject, SERVER_EVENT_TYPES, usageOf } from './server-events';

/**
 * What the worker learns from an attach: `gone`: the call no longer exists (404); `failed`: every
 * attempt within the attach window failed, and the call was hung up; `handed_off`: let go before
 * it attached (a drain or a lost lease).
 */
export type AttachResult = 'attached' | 'gone' | 'failed' | 'handed_off';

export interface SessionEnd {
  readonly reason: CallEndReason;
  /** The socket's close code; 0 when it never opened. */
  readonly code: number;
  /** Our own hand-off: the call goes on with another worker, and was not ended. */
  readonly handedOff: boolean;
}

/**
 * What set a transfer off: the model's `transfer_call`, the end of the wrap-up, a keypad key, or a
 * call-control command (`call-commands.ts`).
 */
export type TransferCause = 'tool' | 'wrap_up' | 'dtmf' | 'command';
/** Why the worker hangs up: the causes of `#core/reasons`, or a call-control command. */
export type FarewellCause = HangupCause | 'command';
/** Why a transfer failed: `/refer` threw, or the socket did not close within the deadline. */
export type TransferFailure = 'refer_error' | 'not_confirmed';

/**
 * The machine's timers: the keep-alive ping (repeating), the wrap-up and its grace period, one
 * confirm deadline per transfer started (numbered, as a second transfer may start before the first
 * deadline passed), the no-speech deadline, the cap on waiting for a goodbye to play, a claim's
 * retry, the poll for outputs another worker stored, and the wait for running tools at the end.
 */
export type SessionTimer =
  | 'ping'
  | 'wrap-up'
  | 'wrap-up-grace'
  | 'no-speech'
  | 'farewell'
  | 'tool-outputs-poll'
  | 'end-grace'
  | 'attach-retry'
  | `transfer-confirm-${number}`
  | `claim-retry-${number}`;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Everything the machine needs to know about its call, fixed for the session's life. */
export interface CallSessionSetup {
  readonly record: CallRecord;
  /** The session's greeting, if it has one (spoken on the first attach only). */
  readonly greeting?: string;
  /** True on the first attach (signal `incoming`); false on a hand-off's or sweep's reattach. */
  readonly greet: boolean;
  /** This worker: recorded on the call as its owner. */
  readonly owner: string;
  /** Keep-alive ping interval; a peer that misses one pong is terminated. */
  readonly pingIntervalMs: number;
  /**
   * How long failed attaches are retried (from the first attempt) before the call is hung up.
   * @default ATTACH_WINDOW_MS
   */
  readonly attachWindowMs?: number;
  /**
   * The call's session: its instructions (kept in the greeting and the wrap-up), the user tools it
   * may run (`tools`; with the built-in `end_call`, and `transfer_call` when there are transfer
   * targets, exactly what its accept body declared), and its DTMF map.
   */
  readonly session: Pick<SessionConfig, 'instructions' | 'tools' | 'dtmf'>;
  readonly config: Pick<
    CallsConfig,
    | 'transferTargets'
    | 'transferConfirmMs'
    | 'wrapUpAfterMs'
    | 'wrapUpGraceMs'
    | 'wrapUpTransferTarget'
    | 'tools'
    | 'goodbyeDrainCapMs'
    | 'noSpeechTimeoutMs'
    | 'idleTimeoutsBeforeHangup'
    | 'maxToolOutputBytes'
  >;
}

/** An outcome the shell reports for `/refer` and `/hangup`: `failed` when the request threw. */
export type ApiOutcome<T extends string> =
  | { readonly result: T }
  | { readonly result: 'failed'; readonly error: string };

/** What happens to the session. */
export type SessionEvent =
  /** The worker starts the first attach (the shell opens the socket): the attach window starts. */
  | { readonly type: 'attach' }
  /** The socket opened: the first attach, or the reattach the machine asked for. */
  | { readonly type: 'socket-opened' }
  /** The server answered the upgrade with an HTTP status (404: the call is gone). */
  | { readonly type: 'attach-refused'; readonly status: number }
  | { readonly type: 'socket-error'; readonly error: string }
  | { readonly type: 'socket-closed'; readonly code: number }
  | { readonly type: 'pong' }
  /** A parsed server frame (an object with a string `type`). */
  | { readonly type: 'server-event'; readonly event: WireEvent }
  /** A frame that is not an event (not JSON, not an object, no type, binary): ignored. */
  | { readonly type: 'junk-frame'; readonly what: string }
  | { readonly type: 'timer-fired'; readonly timer: SessionTimer }
  /** SIGTERM: let go of the socket without ending the call. */
  | { readonly type: 'hand-off' }
  /**
   * The worker's lease was fenced: another worker takes the call over. Drop the socket at once,
   * without hanging up and without ending the call.
   */
  | { readonly type: 'lease-lost' }
  /**
   * Results of commands, matched by `op`. A claim that threw reports `error` (transient: it is
   * retried); `claimed: false` without an error means someone else holds it.
   */
  | {
      readonly type: 'tool-call-claimed';
      readonly op: number;
      readonly claimed: boolean;
      readonly error?: string;
    }
  | {
      readonly type: 'tool-finished';
      readonly op: number;
      readonly output: string;
      readonly error?: string;
    }
  | ({ readonly type: 'refer-finished'; readonly op: number } & ApiOutcome<'referred' | 'gone'>)
  | ({ readonly type: 'hangup-finished'; readonly op: number } & ApiOutcome<'hung_up' | 'gone'>)
  /** A call record update is done; `error` if it threw (a refused condition is not an error). */
  | { readonly type: 'call-updated'; readonly op: number; readonly error?: string }
  | { readonly type: 'recorder-closed'; readonly op: number }
  | { readonly type: 'tool-output-stored'; readonly op: number; readonly error?: string }
  | ({
      readonly type: 'tool-outputs-loaded';
      readonly op: number;
      readonly error?: string;
    } & PendingToolOutputs)
  | {
      readonly type: 'tool-output-marked';
      readonly op: number;
      readonly delivered: boolean;
      readonly error?: string;
    }
  /**
   * A call-control command for this call (a nudge from the API reached this worker). Applied once:
   * only a `pending` command is acted on, after the worker moved it to `applied` under its lease.
   */
  | { readonly type: 'command'; readonly command: StoredCommand }
  /** The call's commands, read on attach: pending ones are applied, applied updates restored. */
  | {
      readonly type: 'commands-loaded';
      readonly op: number;
      readonly commands: readonly StoredCommand[];
      readonly error?: string;
    }
  /**
   * A command's status change is done: `done` false when its condition failed (no longer in the
   * `from` status, or this worker's lease no longer holds the call); `error` if it threw.
   */
  | {
      readonly type: 'command-updated';
      readonly op: number;
      readonly done: boolean;
      readonly error?: string;
    };

/** An event with the time it happened (epoch ms): the machine's only clock. */
export type SessionInput = SessionEvent & { readonly now: number };

/** What the shell must do, in order. */
export type SessionCommand =
  | { readonly type: 'send'; readonly frame: WireEvent }
  | { readonly type: 'send-ping' }
  | { readonly type: 'close-socket'; readonly code: number; readonly reason?: string }
  | { readonly type: 'terminate-socket' }
  /** Open a new socket to the same call (after a clean close the worker did not cause). */
  | { readonly type: 'reattach' }
  /** Try the first attach again (after a failed attempt). */
  | { readonly type: 'connect' }
  | {
      readonly type: 'start-timer';
      readonly timer: SessionTimer;
      readonly ms: number;
      readonly repeat: boolean;
    }
  | { readonly type: 'cancel-timer'; readonly timer: SessionTimer }
  | {
      readonly type: 'claim-tool-call';
      readonly op: number;
      readonly fnCallId: string;
      readonly name: string;
    }
  | {
      readonly type: 'run-tool';
      readonly op: number;
      readonly name: string;
      readonly arguments: string;
      readonly context: ToolContext;
    }
  | { readonly type: 'refer'; readonly op: number; readonly uri: string }
  | { readonly type: 'hangup'; readonly op: number }
  | {
      readonly type: 'update-call';
      readonly op: number;
      readonly from: Parameters<CallStore['transition']>[1];
      readonly to: Parameters<CallStore['transition']>[2];
      readonly fields: Partial<CallRecord>;
      readonly release?: boolean;
    }
  | { readonly type: 'record'; readonly part: CallPart }
  | { readonly type: 'add-usage'; readonly usage: ResponseUsage }
  | { readonly type: 'close-recorder'; readonly op: number }
  /** Store a tool's output on its claim, undelivered (a hand-off: the next owner sends it). */
  | { readonly type: 'store-tool-output'; readonly op: number; readonly output: StoredToolOutput }
  /** Read the call's undelivered outputs and running claims (a worker taking the call over). */
  | { readonly type: 'load-tool-outputs'; readonly op: number }
  | { readonly type: 'mark-tool-output-delivered'; readonly op: number; readonly fnCallId: string }
  /**
   * Move a command from `from` to `to`, conditionally (still `from`); from `pending`, also only
   * while this worker's lease holds the call under the epoch it claimed it with.
   */
  | {
      readonly type: 'update-command';
      readonly op: number;
      readonly commandId: string;
      readonly from: CommandStatus;
      readonly to: CommandStatus;
      readonly error?: CommandError;
      /** On a claim: the command as this worker got it (applied only if the stored one is it). */
      readonly expected?: StoredCommand;
    }
  /** Read the call's commands (on attach: what was sent while nobody held the call). */
  | { readonly type: 'load-commands'; readonly op: number }
  | { readonly type: 'metrics'; readonly points: readonly MetricPoint[] }
  | {
      readonly type: 'log';
      readonly level: LogLevel;
      readonly message: string;
      readonly fields?: Record<string, unknown>;
    }
  | { readonly type: 'session-ended'; readonly end: SessionEnd };

/** A tool call that was claimed and is being carried out. */
interface ToolCall {
  readonly fnCallId: string;
  readonly name: string;
  readonly args: string;
  /** The response that made the call: a goodbye waits for it to be done. */
  readonly responseId: string | undefined;
  /** When the claim came back: the tool's latency counts from here. */
  readonly started: number;
}

/** A function call the model completed, before its claim. */
interface Completed {
  readonly fnCallId: string;
  readonly name: string;
  readonly args: string;
  readonly responseId: string | undefined;
  /** Claims made for it so far. */
  readonly attempt: number;
}

/** An end of the call (or a transfer) waiting for the goodbye to finish playing. */
type Farewell = (
  | {
      readonly action: 'hangup';
      readonly why: FarewellCause;
      readonly call: ToolCall | undefined;
      /** The goodbye's response; undefined (the wrap-up): every response. */
      readonly responseId: string | undefined;
    }
  | {
      readonly action: 'transfer';
      readonly target: string;
      readonly uri: string;
      readonly why: TransferCause;
      readonly call: ToolCall | undefined;
      readonly responseId: string | undefined;
    }
) & {
  /**
   * A goodbye asked for with `response.create` that has not started yet (a command's): the next
   * `response.created` is its response, which the farewell then waits for.
   */
  readonly awaitingResponse?: boolean;
  /** The farewell asked for its own response (a command's goodbye or announcement). */
  readonly asked?: boolean;
  /** The call-control command (`hangup`, `transfer`) this farewell carries out, if one. */
  readonly commandId?: string;
};

/** What to do when an operation's result comes back. */
type Pending =
  | { readonly kind: 'claim'; readonly completed: Completed }
  | { readonly kind: 'user-tool'; readonly call: ToolCall }
  | { readonly kind: 'hangup'; readonly call?: ToolCall }
  /** The hang-up of a call no attach reached within the window: then the call ends for `reason`. */
  | { readonly kind: 'attach-hangup'; readonly reason: CallEndReason }
  | {
      readonly kind: 'refer';
      readonly target: string;
      readonly why: TransferCause;
      readonly call?: ToolCall;
    }
  | { readonly kind: 'mark-active' }
  | { readonly kind: 'mark-spoke' }
  | { readonly kind: 'mark-reattached' }
  | { readonly kind: 'mark-transfer-pending' }
  /** The failed transfer is on the record: then answer the tool call, or tell the model. */
  | {
      readonly kind: 'mark-transfer-failed';
      readonly target: string;
      readonly then: { readonly call: ToolCall } | 'tell-model' | undefined;
    }
  | { readonly kind: 'close-recorder' }
  | { readonly kind: 'mark-ended'; readonly durationMs: number }
  | { readonly kind: 'store-output'; readonly fnCallId: string }
  | { readonly kind: 'load-outputs' }
  /** A command moved `pending` → `applied` (then acted on) or to `refused`/`failed`. */
  | { readonly kind: 'command-claim'; readonly command: StoredCommand }
  | { readonly kind: 'command-settle'; readonly commandId: string }
  | { readonly kind: 'load-commands' }
  | {
      readonly kind: 'mark-delivered';
      readonly fnCallId: string;
      readonly name: string;
      readonly output: string;
    };

interface Ending {
  readonly reason: CallEndReason;
  readonly code: number;
  readonly endedAt: number;
}

/** The operations that are call record updates (answered by `call-updated`). */
const CALL_UPDATES: ReadonlySet<Pending['kind']> = new Set([
  'mark-active',
  'mark-spoke',
  'mark-reattached',
  'mark-transfer-pending',
  'mark-transfer-failed',
  'mark-ended',
]);
/** The operations an ending waits for before the recorder closes: their parts must be recorded. */
const WORK_AN_END_WAITS_FOR: ReadonlySet<Pending['kind']> = new Set([
  'claim',
  'user-tool',
  'store-output',
]);
const END_CALL = 'end_call';
const TRANSFER_CALL = 'transfer_call';
/** Claims of one function call, the first included, before giving up (100, 300, 900 ms apart). */
const CLAIM_ATTEMPTS = 4;
const CLAIM_BACKOFF_MS = 100;
/** Reattaches per session: one per unexpected clean close, never a loop. */
const MAX_REATTACHES = 3;
/** The ends of a socket, not necessarily of the call, after which a reattach is tried. */
const REATTACH_AFTER: ReadonlySet<CallEndReason> = new Set<CallEndReason>([
  'normal_closure',
  'going_away',
  'closed_1009',
]);
/** Failed attaches are retried for this long (from the first attempt), then the call is hung up. */
export const ATTACH_WINDOW_MS = 20_000;
/** The first retry's wait; each next one doubles, up to ATTACH_BACKOFF_MAX_MS. */
const ATTACH_BACKOFF_MS = 250;
const ATTACH_BACKOFF_MAX_MS = 4000;
/** Timers that act on the call, which a worker letting go of it no longer does. */
const LEFT_TO_THE_NEXT_OWNER: ReadonlySet<SessionTimer> = new Set<SessionTimer>([
  'no-speech',
  'wrap-up',
  'wrap-up-grace',
  'farewell',
]);
/** How often a worker that took a call over looks for outputs of tools still running elsewhere. */
const OUTPUTS_POLL_MS = 500;
/** Beyond a tool's timeout: the invoke, the DynamoDB writes and the hand-off itself. */
const TOOL_MARGIN_MS = 5000;
/** Frames that are not events, and unknown event types, logged per session (then only counted). */
const JUNK_LOGGED = 5;
const UNKNOWN_TYPES_LOGGED = 10;
/** Keypad keys kept for the tool context. */
const DTMF_KEPT = 64;

export class CallSessionMachine {
  private sequencer = new ResponseSequencer();
  private readonly settings: SidebandSettings;
  /** The tools this call's session may run (a command's `update` may change them). */
  private allowedTools: ReadonlySet<string>;
  /** The session's instructions now (a command's `update` may change them). */
  private currentInstructions: string | undefined;
  /** Commands this session acted on (or is acting on), by id: each once. */
  private readonly seenCommands = new Set<string>();
  /** Commands waiting for the claim in flight to settle (in the order they came). */
  private readonly commandQueue: StoredCommand[] = [];
  /** The op of the command claim in flight, if one is. */
  private claimOp: number | undefined;
  /** The longest a user tool may take (the runner's timeout), plus the margin. */
  private readonly toolDeadlineMs: number;
  /** Function call ids seen on this session: acted on or skipped, once each. */
  private readonly handledToolCalls = new Set<string>();
  /** Function call ids this session claimed (its own, not another worker's). */
  private readonly ownClaims = new Set<string>();
  /** Outputs another worker stored that this session is delivering (or delivered). */
  private readonly delivering = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextOp = 1;
  private readonly claimRetries = new Map<SessionTimer, Completed>();
  /** The target of each transfer confirm deadline still scheduled. */
  private readonly confirmDeadlines = new Map<SessionTimer, string>();
  private transfersStarted = 0;
  private readonly timersRunning = new Set<SessionTimer>();
  private readonly order = new ConversationOrder();
  /** Responses created and not done yet ([SDK] ResponseCreatedEvent … ResponseDoneEvent). */
  private readonly openResponses = new Set<string>();
  /** Between `output_audio_buffer.started` and `.stopped`/`.cleared`. */
  private audioPlaying = false;
  /** We asked for `output_audio_buffer.clear` (a cancel): the next `cleared` is ours, not a barge-in. */
  private clearSent = false;
  /** Responses already recorded as cut off (a barge-in is reported by `cleared` and `response.done`). */
  private readonly cutOffResponses = new Set<string>();
  private farewell: Farewell | undefined;
  private out: SessionCommand[] = [];

  private opened = false;
  /** The socket is open (false while it reattaches, and after it closed). */
  private connected = false;
  /** A reattach is under way, after the close it follows. */
  private reattaching: { readonly code: number; readonly reason: CallEndReason } | undefined;
  private reattaches: number;
  /** Frames held back while reattaching, sent once the new socket is open. */
  private held: WireEvent[] = [];
  /** The peer answered the last ping. */
  private alive = true;
  private sessionExpired = false;
  private hangupRequested = false;
  private hangupCause: FarewellCause | undefined;
  private handingOff = false;
  private leaseLost = false;
  private keepaliveFailed = false;
  /** When the first attach started (or first failed); the attach window counts from it. */
  private attachStartedAt: number | undefined;
  /** A connect attempt is under way (its first failure counts; what follows it does not). */
  private attempting = true;
  private attachRetries = 0;
  /** Every attach failed: the call is being hung up. */
  private attachGivenUp = false;
  private callerSpoke: boolean;
  private idleInARow = 0;
  private idleTotal = 0;
  private dtmf = '';
  private junkFrames = 0;
  private readonly unknownTypes = new Set<string>();
  private readonly lostOutputs = new Set<string>();
  /** A transfer `/refer` accepted, waiting for the socket to close (which confirms it). */
  private transfer: { readonly target: string; readonly deadline: SessionTimer } | undefined;
  private transferConfirmed = false;
  private ending: Ending | undefined;
  private recorderClosing = false;
  private endedWith: SessionEnd | undefined;
  private attachedAt: number | undefined;

  constructor(private readonly setup: CallSessionSetup) {
    const { config, session, record } = setup;
    this.settings = sidebandSettings(config);
    this.allowedTools = new Set([
      ...(session.tools ?? []),
      END_CALL,
      ...(Object.keys(config.transferTargets).length > 0 ? [TRANSFER_CALL] : []),
    ]);
    this.toolDeadlineMs =
      Math.max(CALL_DEFAULTS.toolTimeoutMs, ...config.tools.map((t) => t.timeoutMs)) +
      TOOL_MARGIN_MS;
    this.callerSpoke = record.callerSpokeAt !== undefined;
    this.reattaches = record.reattaches ?? 0;
    this.currentInstructions = session.instructions;
  }

  get callId(): string {
    return this.setup.record.callId;
  }

  /** How the session ended, once it has (the last command was `session-ended`). */
  get ended(): SessionEnd | undefined {
    return this.endedWith;
  }

  /** Feeds one input; returns the commands to carry out, in order. */
  handle(input: SessionInput): SessionCommand[] {
    this.out = [];
    // The session is over: a late result changes nothing (no tool runs, no part, no metric).
    if (this.endedWith) return this.out;
    const now = input.now;
    switch (input.type) {
      case 'attach':
        this.attachStartedAt ??= now;
        break;
      case 'socket-opened':
        this.attempting = false;
        if (this.reattaching) this.onReattached();
        else this.onOpen(now);
        break;
      case 'attach-refused':
        this.emit({ type: 'terminate-socket' });
        if (this.reattaching) this.reattachFailed(`refused: ${input.status}`, now);
        else if (input.status === 404) {
          if (!this.opened && this.attempting) this.finish('gone', 0, now);
        } else {
          this.log('error', 'sideband refused', { status: input.status });
          this.attachFailed(`attach_failed_${input.status}`, `refused: ${input.status}`, now);
        }
        break;
      case 'socket-error':
        this.log('warn', 'sideband error', { error: input.error });
        if (this.reattaching) this.reattachFailed(input.error, now);
        else if (!this.opened) this.attachFailed('attach_failed', input.error, now);
        break;
      case 'socket-closed':
        if (this.reattaching) this.reattachFailed(`closed: ${input.code}`, now);
        else if (this.connected) this.onClose(input.code, now);
        // A close of a socket that never opened usually follows its failure (handled once).
        else if (!this.opened) this.attachFailed('attach_failed', `closed: ${input.code}`, now);
        break;
      case 'pong':
        this.alive = true;
        break;
      case 'server-event':
        if (this.connected) this.onServerEvent(input.event, now);
        break;
      case 'junk-frame':
        this.onJunk(input.what);
        break;
      case 'timer-fired':
        this.onTimer(input.timer);
        break;
      case 'hand-off':
        this.handingOff = true;
        if (this.betweenAttempts()) this.finish('handed_off', 0, now);
        else this.emit({ type: 'close-socket', code: 1000, reason: 'handing off' });
        break;
      case 'lease-lost':
        this.onLeaseLost(now);
        break;
      case 'tool-call-claimed':
        this.onClaimed(input.op, input.claimed, input.error, now);
        break;
      case 'tool-finished': {
        const p = this.take(input.op, 'user-tool');
        if (p) this.finishTool(p.call, input.output, input.error, true, now);
        break;
      }
      case 'refer-finished':
        this.onReferred(input, now);
        break;
      case 'hangup-finished': {
        const gaveUp = this.take(input.op, 'attach-hangup');
        if (gaveUp) {
          if (input.result === 'failed')
            this.log('error', 'hangup after the failed attaches failed', { error: input.error });
          // Gone: the call ended by itself meanwhile.
          this.finish(input.result === 'gone' ? 'gone' : gaveUp.reason, 0, now);
          break;
        }
        const p = this.take(input.op, 'hangup');
        if (!p) break;
        if (input.result === 'failed') {
          this.log('error', 'hangup failed; closing the sideband', { error: input.error });
          if (this.connected) this.emit({ type: 'close-socket', code: 1000 });
        }
        if (p.call) this.finishTool(p.call, JSON.stringify({ ok: true }), undefined, false, now);
        break;
      }
      case 'call-updated':
        this.onCallUpdated(input.op, input.error, now);
        break;
      case 'recorder-closed':
        if (this.take(input.op, 'close-recorder')) this.onRecorderClosed();
        break;
      case 'tool-output-stored': {
        const p = this.take(input.op, 'store-output');
        if (!p) break;
        if (input.error !== undefined)
          this.log('error', 'could not store a tool output for the next worker', {
            fnCallId: p.fnCallId,
            error: input.error,
          });
        this.closeRecorderWhenSettled();
        break;
      }
      case 'tool-outputs-loaded':
        if (this.take(input.op, 'load-outputs')) this.onOutputsLoaded(input, now);
        break;
      case 'tool-output-marked': {
        const p = this.take(input.op, 'mark-delivered');
        if (p) this.onOutputMarked(p, input.delivered, input.error);
        break;
      }
      case 'command':
        this.onCommand(input.command);
        break;
      case 'commands-loaded':
        if (this.take(input.op, 'load-commands')) this.onCommandsLoaded(input);
        break;
      case 'command-updated':
        this.onCommandUpdated(input.op, input.done, input.error, now);
        break;
    }
    return this.out;
  }

  // ── attach, reattach, close ──────────────────────────────────────────────────────────────────

  private onOpen(now: number): void {
    if (this.opened) return;
    const { record, greet, greeting, owner } = this.setup;
    this.opened = true;
    this.connected = true;
    this.attachedAt = now;
    // Setup latency counts the first attach only, not a hand-off's reattach.
    if (greet && record.acceptedAt !== undefined)
      this.metrics([{ name: 'AttachLatency', value: now - record.acceptedAt }]);
    if (greet)
      this.createResponse(
        greeting ? { instructions: this.instructions(`Greet the caller: ${greeting}`) } : {},
      );
    this.startTimer('ping', this.setup.pingIntervalMs, true);
    // The session cap counts from accept, so a reattached call keeps its original deadline.
    const acceptedAt = record.acceptedAt ?? now;
    this.startTimer(
      'wrap-up',
      Math.max(0, acceptedAt + this.setup.config.wrapUpAfterMs - now),
      false,
    );
    // The no-speech deadline counts from the first attach (a hand-off's record holds the last
    // attach time); once the caller was heard, there is none.
    const { noSpeechTimeoutMs } = this.settings;
    if (noSpeechTimeoutMs > 0 && !this.callerSpoke) {
      const from = greet ? now : (record.attachedAt ?? now);
      this.startTimer('no-speech', Math.max(0, from + noSpeechTimeoutMs - now), false);
    }
    this.updateCall({ kind: 'mark-active' }, ['accepted', 'accepting', 'active'], 'active', {
      attachedAt: now,
      owner,
    });
    this.record({ kind: 'event', name: 'attached', detail: { owner, greet } });
    // Taking the call over: outputs the previous worker stored for its running tools.
    if (!greet) this.loadToolOutputs();
    // Commands sent while nobody held the call (before the first attach, during a hand-off or a
    // sweep), and the updates applied before: read once per attach, never polled.
    this.emit({ type: 'load-commands', op: this.open({ kind: 'load-commands' }) });
  }

  private onClose(code: number, now: number): void {
    this.connected = false;
    const transferPending = this.transfer !== undefined;
    if (this.transfer) {
      this.cancelTimer(this.transfer.deadline);
      this.confirmDeadlines.delete(this.transfer.deadline);
      this.transferConfirmed = true;
    }
    if (transferPending) this.metrics([count('TransfersConfirmed')]);
    let reason = endReasonOf(code, {
      sessionExpired: this.sessionExpired,
      keepaliveFailed: this.keepaliveFailed,
      hangupRequested: this.hangupRequested,
      transferPending,
      handingOff: this.handingOff,
    });
    if (reason === 'hung_up_by_agent' && this.hangupCause === 'no_caller_speech')
      reason = 'no_caller_speech';
    // A clean close nobody on our side caused (not our hang-up, transfer or hand-off, not the
    // session cap) can be a backend rotation while the call lives: reattach once (§6.10). So can
    // 1009, the shell refusing a frame above its maxPayload: the socket is gone, not the call.
    if (REATTACH_AFTER.has(reason) && this.reattaches < MAX_REATTACHES) {
      this.reattaching = { code, reason };
      this.log('info', 'sideband closed while the call may live: reattaching once', { code });
      this.emit({ type: 'reattach' });
      return;
    }
    this.finish(reason, code, now);
  }

  private onReattached(): void {
    const after = this.reattaching;
    this.reattaching = undefined;
    this.connected = true;
    this.alive = true;
    this.reattaches++;
    this.log('info', 'sideband reattached', { code: after?.code, reattaches: this.reattaches });
    this.metrics([count('Reattaches')]);
    this.record({
      kind: 'event',
      name: 'reattached',
      detail: { code: after?.code, reattaches: this.reattaches },
    });
    this.updateCall({ kind: 'mark-reattached' }, ['active'], 'active', {
      reattaches: this.reattaches,
    });
    // What was under way on the old socket is unknown now (its events are lost): start afresh,
    // send what was held back meanwhile, and the response that waited for one in progress (with
    // what it asked for: a goodbye keeps its words).
    const waiting = this.sequencer.waiting;
    this.sequencer = new ResponseSequencer();
    this.openResponses.clear();
    this.audioPlaying = false;
    this.clearSent = false;
    const held = this.held;
    this.held = [];
    for (const frame of held)
      if (frame.type !== 'response.create') this.send(frame);
      else this.createResponse(isObject(frame.response) ? frame.response : {});
    if (waiting) this.createResponse(waiting.params, { sticky: waiting.sticky });
    this.checkFarewell();
  }

  /** A connect attempt failed before the socket opened: retry within the window, or give up. */
  private attachFailed(reason: CallEndReason, detail: string, now: number): void {
    // Only an attempt's first failure counts (an error is followed by a close).
    if (!this.attempting || this.ending || this.attachGivenUp) return;
    this.attempting = false;
    if (this.handingOff) {
      this.finish('handed_off', 0, now);
      return;
    }
    this.attachStartedAt ??= now;
    const started = this.attachStartedAt;
    const windowMs = this.setup.attachWindowMs ?? ATTACH_WINDOW_MS;
    const left = started + windowMs - now;
    if (left > 0) {
      const wait = Math.min(
        ATTACH_BACKOFF_MS * 2 ** this.attachRetries,
        ATTACH_BACKOFF_MAX_MS,
        left,
      );
      this.attachRetries++;
      this.log('warn', 'sideband attach failed; retrying', {
        reason,
        detail,
        retry: this.attachRetries,
        inMs: wait,
      });
      this.metrics([count('AttachRetries')]);
      this.startTimer('attach-retry', wait, false);
      return;
    }
    // The call was accepted: left alone it would ring on in silence. Hang it up, then record why.
    this.attachGivenUp = true;
    this.log('error', 'sideband attach failed for good; hanging up', {
      reason,
      detail,
      attempts: this.attachRetries + 1,
    });
    this.record({
      kind: 'event',
      name: 'attach_failed',
      detail: { reason, detail, attempts: this.attachRetries + 1 },
    });
    this.emit({ type: 'hangup', op: this.open({ kind: 'attach-hangup', reason }) });
  }

  /** Waiting to retry an attach: no socket exists. */
  private betweenAttempts(): boolean {
    return !this.opened && !this.attempting && !this.ending && !this.attachGivenUp;
  }

  private onLeaseLost(now: number): void {
    if (this.leaseLost || this.ending) return;
    this.leaseLost = true;
    this.handingOff = true;
    this.log('warn', 'lease lost: dropping the sideband without hanging up');
    this.record({ kind: 'event', name: 'lease_lost' });
    if (this.betweenAttempts()) {
      this.finish('handed_off', 0, now);
      return;
    }
    // At once, not a close handshake: behave as the crash this worker was taken for. Its close
    // (or failure, if it was still connecting) ends the session as handed off.
    this.emit({ type: 'terminate-socket' });
  }

  private reattachFailed(detail: string, now: number): void {
    const after = this.reattaching;
    if (!after) return;
    this.reattaching = undefined;
    this.log('info', 'reattach failed: the call is over', { detail });
    this.finish(this.handingOff ? 'handed_off' : after.reason, after.code, now);
  }

  // ── server events ────────────────────────────────────────────────────────────────────────────

  private onServerEvent(event: WireEvent, now: number): void {
    const type = String(event.type);
    switch (type) {
      case 'response.created': {
        this.sequencer.onResponseCreated();
        const id = idOf(isObject(event.response) ? event.response.id : undefined);
        if (id) this.openResponses.add(id);
        // A command's goodbye asked for with response.create: this is its response.
        if (this.farewell?.awaitingResponse && id)
          this.farewell = { ...this.farewell, awaitingResponse: false, responseId: id };
        break;
      }
      case 'response.done':
        this.onResponseDone(isObject(event.response) ? event.response : {});
        break;
      case 'response.output_item.done':
        if (isObject(event.item) && event.item.type === 'function_call')
          this.onFunctionCallItem(event.item, idOf(event.response_id), undefined);
        break;
      case 'output_audio_buffer.started':
        this.audioPlaying = true;
        // A clear we sent with nothing playing is answered by no `cleared`: it must not label a
        // later barge-in as our cancel.
        this.clearSent = false;
        break;
      case 'output_audio_buffer.cleared': {
        // "Emitted when the output audio buffer is cleared. This happens either in VAD mode when
        // the user has interrupted (`input_audio_buffer.speech_started`), or when the client has
        // emitted the `output_audio_buffer.clear` event" ([SDK] RealtimeServerEvent
        // .OutputAudioBufferCleared): the caller did not hear the rest of that response.
        const id = idOf(event.response_id);
        if (this.audioPlaying && id) this.cutOff(id, this.clearSent ? 'cancelled' : 'interrupted');
        this.clearSent = false;
        this.audioPlaying = false;
        this.checkFarewell();
        break;
      }
      case 'output_audio_buffer.stopped':
        this.audioPlaying = false;
        this.checkFarewell();
        break;
      case 'conversation.item.added':
      case 'conversation.item.done': {
        const id = idOf(isObject(event.item) ? event.item.id : undefined);
        const previous = event.previous_item_id === null ? null : idOf(event.previous_item_id);
        if (id) this.order.place(id, previous, now);
        break;
      }
      case 'conversation.item.input_audio_transcription.completed': {
        const text = typeof event.transcript === 'string' ? event.transcript : '';
        this.recordTranscript('caller', text, idOf(event.item_id), now);
        if (text.trim().length > 0) this.heard(now);
        break;
      }
      case 'response.output_audio_transcript.done':
        this.recordTranscript(
          'assistant',
          typeof event.transcript === 'string' ? event.transcript : '',
          idOf(event.item_id),
          now,
          idOf(event.response_id),
        );
        break;
      case 'input_audio_buffer.speech_started':
        this.heard(now);
        break;
      case 'input_audio_buffer.timeout_triggered':
        this.onIdleTimeout();
        break;
      case 'input_audio_buffer.dtmf_event_received':
        this.onDtmf(event.event, event.received_at, now);
        break;
      case 'error': {
        const error = isObject(event.error) ? event.error : {};
        const code = String(error.code ?? 'unknown');
        if (code === 'conversation_already_has_active_response') {
          this.sequencer.onConflict();
          // Our create was refused: the response.created a command's goodbye took for its own
          // was the server's (a VAD turn that won the race). It waits for its real one again.
          const f = this.farewell;
          if (f?.asked && !f.awaitingResponse)
            this.farewell = { ...f, awaitingResponse: true, responseId: undefined };
          break;
        }
        if (code === 'session_expired') this.sessionExpired = true;
        this.record({ kind: 'error', code, message: String(error.message ?? '') });
        this.log('warn', 'sideband error event', { code });
        break;
      }
      default:
        // response.function_call_arguments.done among them: it "is also emitted when a Response
        // is interrupted, incomplete, or cancelled" ([SDK] ResponseFunctionCallArgumentsDoneEvent),
        // so the call is acted on from its item (output_item.done, response.done) instead.
        if (!SERVER_EVENT_TYPES.has(type)) this.onUnknownType(type);
        break;
    }
  }

  private onResponseDone(response: Record<string, unknown>): void {
    const id = idOf(response.id);
    const usage = usageOf(response.usage);
    if (usage) {
      this.record({ kind: 'usage', responseId: String(id), usage });
      this.emit({ type: 'add-usage', usage });
    }
    if (id) this.openResponses.delete(id);
    // The function calls of a response whose items came without a status are decided here: run
    // if it completed, skipped otherwise ([SDK] RealtimeResponse `status`, `status_details`).
    const status = typeof response.status === 'string' ? response.status : undefined;
    const details = isObject(response.status_details) ? response.status_details : {};
    const reason = typeof details.reason === 'string' ? details.reason : undefined;
    const output = Array.isArray(response.output) ? response.output : [];
    for (const item of output)
      if (isObject(item) && item.type === 'function_call')
        this.onFunctionCallItem(item, id, { status, reason });
    // A spoken answer that stopped before its end (the caller barged in: `turn_detected`; a
    // cancel: `client_cancelled`; `max_output_tokens`, `content_filter`): its transcript is more
    // than the caller heard.
    if (
      id &&
      (status === 'cancelled' || status === 'incomplete') &&
      output.some((item) => isObject(item) && item.type === 'message')
    )
      this.cutOff(id, reason ?? status);
    const deferred = this.sequencer.onResponseDone();
    if (deferred) this.send(responseCreate(deferred));
    this.checkFarewell();
  }

  /**
   * A `function_call` item: from `response.output_item.done` (`response` undefined), or from a
   * `response.done` with the response's status.
   */
  private onFunctionCallItem(
    item: Record<string, unknown>,
    responseId: string | undefined,
    response: { status: string | undefined; reason: string | undefined } | undefined,
  ): void {
    const fnCallId = idOf(item.call_id);
    if (!fnCallId || this.handledToolCalls.has(fnCallId)) return;
    const name = typeof item.name === 'string' ? item.name.slice(0, 64) : '';
    const args = typeof item.arguments === 'string' ? item.arguments : '';
    const itemStatus = typeof item.status === 'string' ? item.status : undefined;
    if (response === undefined) {
      // output_item.done: act on `completed` (agents-js), skip `incomplete`, and leave an item
      // without a status to its response.done.
      if (itemStatus === 'completed') this.onToolCall(fnCallId, name, args, responseId);
      else if (itemStatus === 'incomplete') this.skipToolCall(fnCallId, name, itemStatus);
      return;
    }
    if (response.status === 'completed' && (itemStatus ?? 'completed') === 'completed')
      this.onToolCall(fnCallId, name, args, responseId);
    else this.skipToolCall(fnCallId, name, itemStatus ?? 'incomplete', response.reason);
  }

  private skipToolCall(fnCallId: string, name: string, status: string, reason?: string): void {
    this.handledToolCalls.add(fnCallId);
    const detail = { fnCallId, name, status, ...(reason ? { reason } : {}) };
    this.log('info', 'interrupted tool call skipped', detail);
    this.metrics([count('ToolCallsSkipped')]);
    this.record({ kind: 'event', name: 'tool_call_skipped', detail });
  }

  private recordTranscript(
    role: 'caller' | 'assistant',
    text: string,
    itemId: string | undefined,
    now: number,
    responseId?: string,
  ): void {
    this.record({
      kind: 'transcript',
      role,
      text,
      ...(itemId ? { itemId } : {}),
      ...(responseId ? { responseId } : {}),
      order: this.order.keyOf(itemId, now),
    });
  }

  /**
   * An answer the caller did not hear to its end: recorded once per response, with why, so the
   * transcript can say its line was cut off (`owh calls show`).
   */
  private cutOff(responseId: string, reason: string): void {
    if (this.cutOffResponses.has(responseId)) return;
    this.cutOffResponses.add(responseId);
    this.record({ kind: 'event', name: 'assistant_cut_off', detail: { responseId, reason } });
    // The caller's doing (not a cancel command's, nor the model's limits): a barge-in.
    if (reason === 'interrupted' || reason === 'turn_detected')
      this.metrics([count('CallerBargeIns')]);
  }

  private onJunk(what: string): void {
    this.junkFrames++;
    if (this.junkFrames <= JUNK_LOGGED)
      this.log('warn', 'ignored a frame that is not an event', {
        what: what.slice(0, 80),
        count: this.junkFrames,
      });
  }

  private onUnknownType(type: string): void {
    if (this.unknownTypes.has(type) || this.unknownTypes.size >= UNKNOWN_TYPES_LOGGED) return;
    this.unknownTypes.add(type);
    this.log('debug', 'ignored an unknown event type', { eventType: type.slice(0, 80) });
  }

  // ── the caller: speech, silence, keys ────────────────────────────────────────────────────────

  /** The caller was heard: no ghost-call hang-up, and idle timeouts count again from zero. */
  private heard(now: number): void {
    this.idleInARow = 0;
    if (this.callerSpoke) return;
    this.callerSpoke = true;
    if (this.timersRunning.has('no-speech')) this.cancelTimer('no-speech');
    // On the record, so a worker taking the call over starts no no-speech timer either.
    this.updateCall({ kind: 'mark-spoke' }, ['accepted', 'accepting', 'active'], 'active', {
      callerSpokeAt: now,
    });
  }

  /**
   * `input_audio_buffer.timeout_triggered` ([SDK] InputAudioBufferTimeoutTriggered): with server_vad
   * `idle_timeout_ms`, nobody spoke for that long after the last response's audio; the server
   * commits the silence and the model prompts the caller by itself. Recorded and counted; after
   * `idleTimeoutsBeforeHangup` in a row with no speech between them the caller is taken to be
   * gone, and the call is hung up (`no_caller_speech`) without waiting for the prompt.
   */
  private onIdleTimeout(): void {
    this.idleInARow++;
    this.idleTotal++;
    this.metrics([count('IdleTimeouts')]);
    this.record({
      kind: 'event',
      name: 'idle_timeout',
      detail: { inARow: this.idleInARow, total: this.idleTotal },
    });
    const limit = this.settings.idleTimeoutsBeforeHangup;
    if (limit > 0 && this.idleInARow >= limit && !this.leaving()) {
      this.log('info', 'the caller stayed silent through the idle timeouts: hanging up', {
        idleTimeouts: this.idleInARow,
      });
      this.hangUp('no_caller_speech', undefined);
    }
  }

  private onDtmf(key: unknown, receivedAt: unknown, now: number): void {
    if (typeof key !== 'string' || !DTMF_KEY.test(key)) return;
    this.dtmf = `${this.dtmf}${key}`.slice(-DTMF_KEPT);
    this.record({
      kind: 'event',
      name: 'dtmf',
      detail: { key, ...(typeof receivedAt === 'number' ? { receivedAt } : {}) },
    });
    // A key pressed is somebody on the line.
    this.heard(now);
    const map = this.setup.session.dtmf;
    // Own properties only: "__proto__" or "constructor" are not keys of the map.
    const action: DtmfAction | undefined = map && Object.hasOwn(map, key) ? map[key] : undefined;
    if (!action || this.leaving()) return;
    if (action.action === 'hangup') this.hangUp('dtmf', undefined);
    else this.startTransfer(action.target, 'dtmf', undefined, now);
  }

  // ── timers ───────────────────────────────────────────────────────────────────────────────────

  private onTimer(timer: SessionTimer): void {
    if (!this.timersRunning.has(timer)) return;
    if (timer !== 'ping') this.timersRunning.delete(timer);
    // Letting go of the call (a hand-off, a lost lease): the next owner hangs up or wraps up.
    if (this.handingOff && LEFT_TO_THE_NEXT_OWNER.has(timer)) return;
    if (timer === 'ping') {
      // Nothing to ping while a reattach is under way.
      if (this.reattaching || !this.connected) return;
      if (!this.alive) {
        this.keepaliveFailed = true;
        this.log('warn', 'sideband peer missed a pong; terminating');
        this.emit({ type: 'terminate-socket' });
        return;
      }
      this.alive = false;
      this.emit({ type: 'send-ping' });
    } else if (timer === 'wrap-up') {
      this.log('info', 'session cap approaching: wrapping up');
      this.metrics([count('SessionCapHits')]);
      this.record({ kind: 'event', name: 'wrap_up' });
      this.createResponse(
        {
          instructions: this.instructions(
            'The call must end in a minute. Briefly wrap up and say goodbye now.',
          ),
        },
        { sticky: true },
      );
      this.startTimer('wrap-up-grace', this.setup.config.wrapUpGraceMs, false);
    } else if (timer === 'wrap-up-grace') {
      // A transfer the socket has not confirmed yet does not stop the cap's end.
      if (this.hangupRequested || this.farewell) return;
      const name = this.setup.config.wrapUpTransferTarget;
      const uri = name === undefined ? undefined : this.targetUri(name);
      if (name !== undefined && uri !== undefined)
        this.bidFarewell({
          action: 'transfer',
          target: name,
          uri,
          why: 'wrap_up',
          call: undefined,
          responseId: undefined,
        });
      else {
        this.hangupRequested = true;
        this.hangupCause = 'session_cap';
        this.bidFarewell({
          action: 'hangup',
          why: 'session_cap',
          call: undefined,
          responseId: undefined,
        });
      }
      this.checkFarewell();
    } else if (timer === 'no-speech') {
      // Somebody is leaving already (a goodbye, a transfer under way).
      if (this.callerSpoke || this.leaving()) return;
      this.log('info', 'nobody spoke: hanging up', { afterMs: this.settings.noSpeechTimeoutMs });
      this.record({
        kind: 'event',
        name: 'no_caller_speech',
        detail: { afterMs: this.settings.noSpeechTimeoutMs },
      });
      this.hangUp('no_caller_speech', undefined);
    } else if (timer === 'farewell') {
      this.log('warn', 'the goodbye did not finish playing in time', {
        capMs: this.settings.goodbyeDrainCapMs,
      });
      this.actOnFarewell();
    } else if (timer === 'attach-retry') {
      if (this.ending || this.handingOff) return;
      this.attempting = true;
      this.emit({ type: 'connect' });
    } else if (timer === 'tool-outputs-poll') {
      this.loadToolOutputs();
    } else if (timer === 'end-grace') {
      this.log('warn', 'tools still running at the end of the session; closing without them');
      this.closeRecorder();
    } else if (timer.startsWith('claim-retry-')) {
      const completed = this.claimRetries.get(timer);
      this.claimRetries.delete(timer);
      if (completed) this.claim(completed);
    } else {
      const target = this.confirmDeadlines.get(timer);
      if (target === undefined) return;
      this.confirmDeadlines.delete(timer);
      this.failTransfer(target, 'not_confirmed', 'tell-model');
    }
  }

  // ── tool calls ───────────────────────────────────────────────────────────────────────────────

  private onToolCall(
    fnCallId: string,
    name: string,
    args: string,
    responseId: string | undefined,
  ): void {
    // Once per function call id: in memory for this session, durably across workers.
    if (this.handledToolCalls.has(fnCallId)) return;
    this.handledToolCalls.add(fnCallId);
    this.claim({ fnCallId, name, args, responseId, attempt: 0 });
  }

  private claim(completed: Completed): void {
    const next = { ...completed, attempt: completed.attempt + 1 };
    const op = this.open({ kind: 'claim', completed: next });
    this.emit({ type: 'claim-tool-call', op, fnCallId: next.fnCallId, name: next.name });
  }

  private onClaimed(op: number, claimed: boolean, error: string | undefined, now: number): void {
    const p = this.take(op, 'claim');
    if (!p) return;
    const { completed } = p;
    const { fnCallId, name, args, responseId } = completed;
    const call: ToolCall = { fnCallId, name, args, responseId, started: now };
    if (error !== undefined) {
      // A throw is not "already claimed": retry, briefly; the end of a session does not wait.
      if (completed.attempt < CLAIM_ATTEMPTS && !this.ending && !this.handingOff) {
        const timer: SessionTimer = `claim-retry-${op}`;
        this.claimRetries.set(timer, completed);
        this.log('warn', 'tool call claim failed; retrying', { fnCallId, name, error });
        this.startTimer(timer, CLAIM_BACKOFF_MS * 3 ** (completed.attempt - 1), false);
        return;
      }
      this.log('error', 'tool call claim failed; giving up', { fnCallId, name, error });
      // Hanging up twice is harmless (the second gets 404): the caller's goodbye wins.
      if (name === END_CALL && !this.ending && !this.handingOff) this.carryOut(call);
      else
        this.finishTool(
          call,
          toolError('temporarily_unavailable', `The ${name} tool could not be started; try again.`),
          'claim_failed',
          true,
          now,
        );
      this.closeRecorderWhenSettled();
      return;
    }
    if (!claimed) {
      this.log('info', 'tool call already handled', { fnCallId, name });
      this.closeRecorderWhenSettled();
      return;
    }
    this.ownClaims.add(fnCallId);
    if (this.ending && !this.handingOff) {
      // The call is over: nothing runs; the claim is closed as skipped.
      this.recordTool(call, '', 'skipped', 'call_ended', now);
      this.closeRecorderWhenSettled();
      return;
    }
    this.carryOut(call);
  }

  /** A claimed call: refused, a goodbye, a transfer, or a user tool run. */
  private carryOut(call: ToolCall): void {
    const { fnCallId, name, args } = call;
    if (!this.allowedTools.has(name)) {
      // Not this session's: the model gets an error (and a response), never another tool.
      this.log('warn', 'tool call refused: not one of the session tools', { fnCallId, name });
      this.finishTool(
        call,
        toolError('unknown_tool', `There is no tool named ${name} in this call.`),
        'unknown_tool',
        true,
        call.started,
        { metrics: false },
      );
      return;
    }
    if (this.handingOff && name !== END_CALL && name !== TRANSFER_CALL) {
      this.runTool(call);
      return;
    }
    if (this.handingOff) {
      // The built-ins need the socket: the next worker tells the model to try again.
      this.finishTool(
        call,
        JSON.stringify({
          ok: false,
          message: 'Interrupted by a server hand-off; call it again if it is still needed.',
        }),
        'handed_off',
        true,
        call.started,
      );
      return;
    }
    if (name === END_CALL) {
      this.hangupRequested = true;
      this.hangupCause = 'agent_end_call';
      this.bidFarewell({
        action: 'hangup',
        why: 'agent_end_call',
        call,
        responseId: call.responseId,
      });
      this.checkFarewell();
    } else if (name === TRANSFER_CALL) {
      const parsed = safeParse(args);
      const target = isObject(parsed) && typeof parsed.target === 'string' ? parsed.target : '';
      const uri = this.targetUri(target);
      if (uri === undefined) {
        this.refuseTarget(call, call.started);
        return;
      }
      this.bidFarewell({
        action: 'transfer',
        target,
        uri,
        why: 'tool',
        call,
        responseId: call.responseId,
      });
      this.checkFarewell();
    } else this.runTool(call);
  }

  private runTool(call: ToolCall): void {
    const { record } = this.setup;
    this.emit({
      type: 'run-tool',
      op: this.open({ kind: 'user-tool', call }),
      name: call.name,
      arguments: call.args,
      context: {
        callId: record.callId,
        // The same id on a repeated event: the tool can deduplicate on it.
        fnCallId: call.fnCallId,
        ...(record.from ? { from: record.from } : {}),
        // `from` is what the caller claims unless a trusted trunk asserted it: never proof.
        ...(record.callerSource ? { callerSource: record.callerSource } : {}),
        callerVerified: record.callerVerified === true,
        ...(record.to ? { to: record.to } : {}),
        sessionKey: record.sessionKey ?? 'default',
        ...(this.dtmf ? { dtmf: this.dtmf } : {}),
      },
    });
  }

  /**
   * A tool call's result goes back to the model, then (unless the caller is leaving) a response.
   * Handing off, it is stored for the next worker instead; after the end, only recorded.
   */
  private finishTool(
    call: ToolCall,
    rawOutput: string,
    error: string | undefined,
    respond: boolean,
    now: number,
    options: { metrics: boolean } = { metrics: true },
  ): void {
    const { fnCallId, name } = call;
    const latencyMs = now - call.started;
    const capped = capOutput(rawOutput, this.settings.maxToolOutputBytes);
    const output = capped.output;
    if (capped.truncated) {
      this.log('warn', 'tool output truncated', {
        name,
        fnCallId,
        bytes: capped.bytes,
        maxBytes: this.settings.maxToolOutputBytes,
      });
      this.metrics([count('ToolOutputsTruncated')]);
    }
    const cut = capped.truncated ? { truncated: true, outputBytes: capped.bytes } : {};
    this.log('info', 'tool call', { name, fnCallId, latencyMs, error });
    if (options.metrics && !this.recorderClosing) {
      const tool = { name: 'Tool', value: name } as const;
      this.metrics([
        count('ToolCalls', tool),
        { name: 'ToolLatency', value: latencyMs, dimension: tool },
        ...(error ? [count('ToolErrors', tool)] : []),
      ]);
    }
    if (this.handingOff) {
      // The socket is going or gone: the worker that takes the call over sends it. Stored on the
      // claim, not through the recorder, whose later write of the part would undo "undelivered".
      this.emit({
        type: 'store-tool-output',
        op: this.open({ kind: 'store-output', fnCallId }),
        output: {
          fnCallId,
          name,
          arguments: call.args,
          output,
          status: error ? 'failed' : 'done',
          latencyMs,
          ...(error ? { error } : {}),
          ...cut,
        },
      });
      return;
    }
    this.recordTool(call, output, error ? 'failed' : 'done', error, now, cut);
    if (this.ending) {
      this.closeRecorderWhenSettled();
      return;
    }
    this.send({
      type: 'conversation.item.create',
      item: { type: 'function_call_output', call_id: fnCallId, output },
    });
    if (respond) this.createResponse();
  }

  private recordTool(
    call: ToolCall,
    output: string,
    status: ToolPart['status'],
    error: string | undefined,
    now: number,
    cut: Pick<ToolPart, 'truncated' | 'outputBytes'> = {},
  ): void {
    this.record({
      kind: 'tool',
      fnCallId: call.fnCallId,
      name: call.name,
      arguments: call.args,
      output,
      latencyMs: now - call.started,
      status,
      ...(error ? { error } : {}),
      ...cut,
    });
  }

  // ── outputs another worker stored (hand-off) ─────────────────────────────────────────────────

  private loadToolOutputs(): void {
    if (this.ending || this.handingOff) return;
    this.emit({ type: 'load-tool-outputs', op: this.open({ kind: 'load-outputs' }) });
  }

  private onOutputsLoaded(
    loaded: PendingToolOutputs & { readonly error?: string },
    now: number,
  ): void {
    if (this.ending || this.handingOff) return;
    let waiting = loaded.error !== undefined;
    if (loaded.error !== undefined)
      this.log('warn', 'could not read stored tool outputs', { error: loaded.error });
    for (const stored of loaded.undelivered) {
      if (this.ownClaims.has(stored.fnCallId) || this.delivering.has(stored.fnCallId)) continue;
      this.delivering.add(stored.fnCallId);
      this.handledToolCalls.add(stored.fnCallId);
      this.emit({
        type: 'mark-tool-output-delivered',
        op: this.open({ kind: 'mark-delivered', ...stored }),
        fnCallId: stored.fnCallId,
      });
    }
    for (const running of loaded.running) {
      // Claimed by another worker, whose tool is still running: wait for its output, up to the
      // tool's timeout (a worker killed mid-tool never stores one).
      if (this.ownClaims.has(running.fnCallId)) continue;
      this.handledToolCalls.add(running.fnCallId);
      if (now < running.at + this.toolDeadlineMs) waiting = true;
      else if (!this.lostOutputs.has(running.fnCallId)) {
        this.lostOutputs.add(running.fnCallId);
        this.log('warn', 'a tool of the previous worker never finished', {
          fnCallId: running.fnCallId,
          name: running.name,
        });
        this.record({
          kind: 'event',
          name: 'tool_output_lost',
          detail: { fnCallId: running.fnCallId, name: running.name },
        });
      }
    }
    const firstLoadAt = this.attachedAt ?? now;
    if (waiting && now < firstLoadAt + this.toolDeadlineMs)
      this.startTimer('tool-outputs-poll', OUTPUTS_POLL_MS, false);
  }

  private onOutputMarked(
    p: Extract<Pending, { kind: 'mark-delivered' }>,
    delivered: boolean,
    error: string | undefined,
  ): void {
    if (error !== undefined) {
      // Not sent: the next poll finds it undelivered again.
      this.delivering.delete(p.fnCallId);
      this.log('warn', 'could not mark a stored tool output delivered', { error });
      return;
    }
    if (!delivered || this.ending) return;
    this.log('info', 'delivered a tool output stored by the previous worker', {
      fnCallId: p.fnCallId,
      name: p.name,
    });
    this.metrics([count('ToolOutputsHandedOver')]);
    this.record({
      kind: 'event',
      name: 'tool_output_delivered',
      detail: { fnCallId: p.fnCallId, name: p.name },
    });
    this.send({
      type: 'conversation.item.create',
      item: { type: 'function_call_output', call_id: p.fnCallId, output: p.output },
    });
    this.createResponse();
  }

  // ── goodbyes, hang-ups and transfers ─────────────────────────────────────────────────────────

  private bidFarewell(farewell: Farewell): void {
    this.farewell = farewell;
  }

  /** Acts on a farewell once its response is done and the audio drained; else waits (capped). */
  private checkFarewell(): void {
    const f = this.farewell;
    if (!f || this.reattaching) return;
    const responseDone =
      !f.awaitingResponse &&
      (f.responseId === undefined
        ? this.openResponses.size === 0
        : !this.openResponses.has(f.responseId));
    if (responseDone && !this.audioPlaying) {
      this.actOnFarewell();
      return;
    }
    if (!this.timersRunning.has('farewell'))
      this.startTimer('farewell', this.settings.goodbyeDrainCapMs, false);
  }

  private actOnFarewell(): void {
    const f = this.farewell;
    if (!f) return;
    this.farewell = undefined;
    if (this.timersRunning.has('farewell')) this.cancelTimer('farewell');
    if (f.action === 'hangup') this.hangUp(f.why, f.call);
    else this.refer(f.target, f.uri, f.why, f.call);
  }

  /** A hang-up or a transfer is under way (or waiting for its goodbye to play). */
  private leaving(): boolean {
    return (
      this.hangupRequested ||
      this.farewell !== undefined ||
      this.transfer !== undefined ||
      // A /refer on its way (the farewell is over, the transfer not yet confirmed by its answer).
      [...this.pending.values()].some((p) => p.kind === 'refer')
    );
  }

  private hangUp(why: FarewellCause, call: ToolCall | undefined): void {
    this.hangupRequested = true;
    this.hangupCause ??= why;
    this.record({ kind: 'event', name: 'hangup', detail: { why } });
    this.emit({ type: 'hangup', op: this.open({ kind: 'hangup', call }) });
  }

  /** The URI of an allowlisted transfer target; own properties only ("toString" is no target). */
  private targetUri(name: string): string | undefined {
    const targets = this.setup.config.transferTargets;
    const uri = Object.hasOwn(targets, name) ? targets[name] : undefined;
    return typeof uri === 'string' ? uri : undefined;
  }

  private refuseTarget(call: ToolCall | undefined, now: number): void {
    const names = Object.keys(this.setup.config.transferTargets).join(', ');
    this.transferAnswered(
      call,
      { ok: false, message: `Transfers are allowed only to: ${names}.` },
      now,
    );
  }

  private startTransfer(
    targetName: string,
    why: TransferCause,
    call: ToolCall | undefined,
    now: number,
  ): void {
    const uri = this.targetUri(targetName);
    if (uri === undefined) this.refuseTarget(call, now);
    else this.refer(targetName, uri, why, call);
  }

  private refer(target: string, uri: string, why: TransferCause, call: ToolCall | undefined): void {
    this.emit({ type: 'refer', op: this.open({ kind: 'refer', target, why, call }), uri });
  }

  private onReferred(
    input: { readonly op: number } & ApiOutcome<'referred' | 'gone'>,
    now: number,
  ): void {
    const p = this.take(input.op, 'refer');
    if (!p) return;
    const { target, why, call } = p;
    if (input.result === 'gone') {
      this.transferAnswered(call, { ok: false, message: 'The call has already ended.' }, now);
      return;
    }
    if (input.result === 'failed') {
      this.log('error', 'refer failed', { error: input.error });
      this.failTransfer(target, 'refer_error', call ? { call } : undefined);
      return;
    }
    this.record({ kind: 'event', name: 'transfer_started', detail: { target, why } });
    this.updateCall({ kind: 'mark-transfer-pending' }, ['active'], 'active', {
      transferTarget: target,
      transferStatus: 'pending',
    });
    // A second transfer replaces the first: its deadline must not fail the second one.
    if (this.transfer) {
      this.cancelTimer(this.transfer.deadline);
      this.confirmDeadlines.delete(this.transfer.deadline);
    }
    // REFER can answer 200 and never happen: only the socket closing confirms the transfer.
    const deadline: SessionTimer = `transfer-confirm-${++this.transfersStarted}`;
    this.transfer = { target, deadline };
    this.confirmDeadlines.set(deadline, target);
    this.startTimer(deadline, this.setup.config.transferConfirmMs, false);
    this.transferAnswered(call, { ok: true, message: `Transferring to ${target}.` }, now);
  }

  /** The transfer tool's output; on success the caller is leaving, so no new response. */
  private transferAnswered(
    call: ToolCall | undefined,
    result: { ok: boolean; message: string },
    now: number,
  ): void {
    if (call) this.finishTool(call, JSON.stringify(result), undefined, !result.ok, now);
  }

  private failTransfer(
    target: string,
    reason: TransferFailure,
    then: { readonly call: ToolCall } | 'tell-model' | undefined,
  ): void {
    this.transfer = undefined;
    this.log('warn', 'transfer failed', { target, reason });
    this.metrics([count('TransfersFailed')]);
    this.record({ kind: 'event', name: 'transfer_failed', detail: { target, reason } });
    // What follows waits for the record: the call shows the failure before the model hears of it.
    this.updateCall({ kind: 'mark-transfer-failed', target, then }, ['active'], 'active', {
      transferTarget: target,
      transferStatus: 'failed',
    });
  }

  private onCallUpdated(op: number, error: string | undefined, now: number): void {
    const p = this.pending.get(op);
    if (!p || !CALL_UPDATES.has(p.kind)) return;
    this.pending.delete(op);
    switch (p.kind) {
      case 'mark-active':
        if (error !== undefined) this.log('error', 'could not mark call active', { error });
        break;
      case 'mark-spoke':
      case 'mark-reattached':
        if (error !== undefined) this.log('warn', 'could not update the call record', { error });
        break;
      case 'mark-transfer-failed': {
        if (this.ending) break;
        const { target, then } = p;
        if (then === 'tell-model') {
          this.send({
            type: 'conversation.item.create',
            item: {
              type: 'message',
              role: 'system',
              content: [
                {
                  type: 'input_text',
                  text: `The transfer to ${target} did not go through. Tell the caller and offer to help or try again.`,
                },
              ],
            },
          });
          this.createResponse();
        } else if (then) {
          this.transferAnswered(
            then.call,
            { ok: false, message: `The transfer to ${target} failed.` },
            now,
          );
        }
        break;
      }
      case 'mark-ended':
        this.onMarkedEnded(p.durationMs, error);
        break;
      default:
        break;
    }
  }

  // ── call-control commands (call-commands.ts) ─────────────────────────────────────────────────

  /**
   * A command for this call. Each is acted on once: only while `pending`, and only after this
   * worker moved it to `applied` under its lease (the shell's conditional write, guarded by the
   * call lease's owner and epoch), so a command sent during a hand-off or a sweep is applied by
   * exactly one worker: the one that holds the call when it is read. Letting go of the call, a
   * worker leaves it pending for the next owner, which reads the call's commands on attach.
   */
  /** `reclaim`: an `applied` hang-up whose worker died before carrying it out (on attach). */
  private onCommand(command: StoredCommand, reclaim = false): void {
    if (command.status !== (reclaim ? 'applied' : 'pending') || this.seenCommands.has(command.id))
      return;
    // Not attached yet: the attach reads the call's pending commands. Letting go: the next owner.
    if (!this.opened || this.handingOff || this.leaseLost) return;
    this.seenCommands.add(command.id);
    // One claim at a time: claims run concurrently would come back in any order, and a hang-up
    // sent after a transfer could then be applied first. In turn, each sees what the one before
    // it did (a transfer under way refuses the hang-up behind it).
    if (this.claimOp !== undefined) {
      this.commandQueue.push(command);
      return;
    }
    this.considerCommand(command);
  }

  /** The next queued command, once the claim before it is settled. */
  private nextCommand(): void {
    while (this.claimOp === undefined) {
      const next = this.commandQueue.shift();
      if (!next) return;
      // Letting go of the call meanwhile: left pending, for the next owner.
      if (this.handingOff || this.leaseLost) this.seenCommands.delete(next.id);
      else this.considerCommand(next);
    }
  }

  private considerCommand(command: StoredCommand): void {
    if (command.status === 'applied') {
      // A re-claim (onCommandsLoaded): only while nothing else ends the call already.
      if (this.ending || this.leaving()) return;
      this.log('info', 'call command re-applied: its worker never hung up', {
        commandId: command.id,
        appliedBy: command.appliedBy,
      });
      this.claimOp = this.open({ kind: 'command-claim', command });
      this.emit({
        type: 'update-command',
        op: this.claimOp,
        commandId: command.id,
        from: 'applied',
        to: 'applied',
        expected: command,
      });
      return;
    }
    if (this.ending) {
      this.metrics([count('CallCommandsFailed', { name: 'Reason', value: 'call_ended' })]);
      this.settleCommand(command, 'failed', {
        code: 'call_ended',
        message: 'The call ended before the command could be applied.',
      });
      return;
    }
    const refusal = this.refusalOf(command.command);
    if (refusal) {
      this.log('info', 'call command refused', {
        commandId: command.id,
        action: command.command.action,
        code: refusal.code,
      });
      this.metrics([count('CallCommandsRefused', { name: 'Reason', value: refusal.code })]);
      this.recordCommand(command, 'refused', refusal);
      this.settleCommand(command, 'refused', refusal);
      return;
    }
    this.claimOp = this.open({ kind: 'command-claim', command });
    this.emit({
      type: 'update-command',
      op: this.claimOp,
      commandId: command.id,
      from: 'pending',
      to: 'applied',
      expected: command,
    });
  }

  private onCommandsLoaded(loaded: {
    readonly commands: readonly StoredCommand[];
    readonly error?: string;
  }): void {
    if (loaded.error !== undefined) {
      this.log('warn', 'could not read the call commands', { error: loaded.error });
      return;
    }
    // In the order they were sent (ids are time-ordered). An update applied by an earlier owner
    // changed the session: this worker's view of it (instructions, tools) follows, with no frame.
    const ordered = [...loaded.commands].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const c of ordered)
      if (c.status === 'applied' && c.command.action === 'update') this.adoptUpdate(c.command);
    // A hang-up another worker applied, yet the call is live enough to attach to: that worker
    // died (SIGKILL, a crash) before its /hangup went out, as /hangup ends the call. Applied
    // again, once (a guarded claim, applied → applied, under this worker's lease), in its place
    // among the pending ones: a transfer sent after it meets a call already leaving. A hang-up is
    // idempotent for the call: at worst the caller hears a second goodbye.
    for (const c of ordered)
      if (c.status === 'pending') this.onCommand(c);
      else if (
        c.status === 'applied' &&
        c.command.action === 'hangup' &&
        c.appliedBy !== undefined &&
        c.appliedBy !== this.setup.owner
      )
        this.onCommand(c, true);
  }

  private onCommandUpdated(
    op: number,
    done: boolean,
    error: string | undefined,
    now: number,
  ): void {
    const p = this.pending.get(op);
    if (!p || (p.kind !== 'command-claim' && p.kind !== 'command-settle')) return;
    this.pending.delete(op);
    if (p.kind === 'command-settle') {
      if (error !== undefined)
        this.log('warn', 'could not record a call command result', {
          commandId: p.commandId,
          error,
        });
      return;
    }
    this.onClaimSettled(p.command, done, error, now);
    if (op === this.claimOp) this.claimOp = undefined;
    this.nextCommand();
  }

  private onClaimSettled(
    command: StoredCommand,
    done: boolean,
    error: string | undefined,
    now: number,
  ): void {
    if (error !== undefined) {
      // Not applied, and still pending: a later nudge or the next attach tries again.
      this.seenCommands.delete(command.id);
      this.log('warn', 'could not claim a call command', { commandId: command.id, error });
      return;
    }
    if (!done) {
      // Applied or settled elsewhere, or this worker no longer holds the call.
      this.log('info', 'call command not ours to apply', { commandId: command.id });
      return;
    }
    if (this.handingOff || this.leaseLost) {
      // Ours, but the call is moving on: back to pending, for the next owner.
      this.emit({
        type: 'update-command',
        op: this.open({ kind: 'command-settle', commandId: command.id }),
        commandId: command.id,
        from: 'applied',
        to: 'pending',
      });
      return;
    }
    if (this.ending) {
      const ended = {
        code: 'call_ended',
        message: 'The call ended before the command could be applied.',
      } as const;
      this.metrics([count('CallCommandsFailed', { name: 'Reason', value: ended.code })]);
      this.recordCommand(command, 'failed', ended);
      this.settleCommand(command, 'failed', ended, 'applied');
      return;
    }
    // Checked again now the claim is back: the call moved on during its round trip (the response
    // a cancel was for has finished, a transfer started). Refused, not applied to nothing.
    const refusal = this.refusalOf(command.command);
    if (refusal) {
      this.log('info', 'call command refused', {
        commandId: command.id,
        action: command.command.action,
        code: refusal.code,
      });
      this.metrics([count('CallCommandsRefused', { name: 'Reason', value: refusal.code })]);
      this.recordCommand(command, 'refused', refusal);
      this.settleCommand(command, 'refused', refusal, 'applied');
      return;
    }
    this.applyCommand(command, now);
  }

  /** Why the call cannot take `command` now, if it cannot. */
  private refusalOf(command: CallCommand): CommandError | undefined {
    const leaving = {
      code: 'call_leaving',
      message: 'The call is already being hung up or transferred.',
    } as const;
    switch (command.action) {
      case 'say':
      case 'hangup':
        return this.leaving() ? leaving : undefined;
      case 'cancel':
        if (this.leaving()) return leaving;
        return this.openResponses.size === 0 && !this.audioPlaying && !this.sequencer.isWaiting
          ? { code: 'no_active_response', message: 'No response is in progress to cancel.' }
          : undefined;
      case 'update': {
        const known = new Set(this.setup.config.tools.map((t) => t.name));
        const unknown = (command.tools ?? []).filter((t) => !known.has(t));
        return unknown.length > 0
          ? { code: 'unknown_tool', message: `Unknown tools: ${unknown.join(', ')}.` }
          : undefined;
      }
      case 'transfer': {
        // REFER is a SIP request: a browser (WebRTC) call has no SIP leg to refer.
        const { channel } = this.setup.record;
        if (channel !== undefined && channel !== 'sip')
          return { code: 'not_sip', message: 'Only a SIP (phone) call can be transferred.' };
        if (this.targetUri(command.target) === undefined)
          return {
            code: 'unknown_transfer_target',
            message: `"${command.target}" is not a transfer target.`,
          };
        return this.leaving() ? leaving : undefined;
      }
    }
  }

  /** Carries a claimed command out: the frames (or the goodbye path), and the timeline. */
  private applyCommand(stored: StoredCommand, now: number): void {
    const { command } = stored;
    this.log('info', 'call command applied', {
      commandId: stored.id,
      action: command.action,
      sender: stored.sender,
      latencyMs: now - stored.createdAt,
    });
    // createdAt is when the API accepted the command (its 202): the latency is accept → applied.
    const action = { name: 'Action', value: command.action } as const;
    this.metrics([
      count('CallCommandsApplied', action),
      { name: 'CallCommandLatency', value: Math.max(0, now - stored.createdAt), dimension: action },
    ]);
    this.recordCommand(stored, 'applied');
    switch (command.action) {
      case 'say':
        this.send(sayItem(command));
        if (command.respond) this.createResponse();
        break;
      case 'update': {
        this.adoptUpdate(command);
        const tools = command.tools ? this.toolDefinitions() : undefined;
        this.send({
          type: 'session.update',
          session: {
            type: 'realtime',
            ...(command.instructions !== undefined ? { instructions: command.instructions } : {}),
            ...(tools ? { tools } : {}),
            ...(command.toolChoice !== undefined ? { tool_choice: command.toolChoice } : {}),
          },
        });
        break;
      }
      case 'cancel':
        this.send({ type: 'response.cancel' });
        this.send({ type: 'output_audio_buffer.clear' });
        this.clearSent = true;
        break;
      case 'hangup':
        // The end_call path: a goodbye that plays out, then /hangup (capped by goodbyeDrainCapMs).
        this.hangupRequested = true;
        this.hangupCause = 'command';
        this.createResponse(
          {
            instructions: this.instructions(
              command.goodbye
                ? `The call is ending now. Say exactly this to the caller, then nothing else: "${command.goodbye}"`
                : 'The call is ending now. Say a short, polite goodbye to the caller.',
            ),
          },
          { sticky: true },
        );
        this.bidFarewell({
          action: 'hangup',
          why: 'command',
          call: undefined,
          responseId: undefined,
          awaitingResponse: true,
          asked: true,
          commandId: stored.id,
        });
        this.checkFarewell();
        break;
      case 'transfer': {
        // The transfer_call path: the announcement (if any) plays out, then /refer, confirmed only
        // by the socket closing within transferConfirmMs.
        const uri = this.targetUri(command.target);
        if (uri === undefined) break;
        if (command.announce)
          this.createResponse(
            {
              instructions: this.instructions(
                `The caller is being transferred now. Say exactly this to the caller, then nothing else: "${command.announce}"`,
              ),
            },
            { sticky: true },
          );
        this.bidFarewell({
          action: 'transfer',
          target: command.target,
          uri,
          why: 'command',
          call: undefined,
          responseId: undefined,
          ...(command.announce ? { awaitingResponse: true, asked: true } : {}),
          commandId: stored.id,
        });
        this.checkFarewell();
        break;
      }
    }
    this.settleCommand(stored, 'applied', undefined, 'applied');
  }

  /** An update's effect on what this worker knows of the session (no frame). */
  private adoptUpdate(command: Extract<CallCommand, { action: 'update' }>): void {
    if (command.instructions !== undefined) this.currentInstructions = command.instructions;
    if (command.tools)
      this.allowedTools = new Set([
        ...command.tools,
        END_CALL,
        ...(Object.keys(this.setup.config.transferTargets).length > 0 ? [TRANSFER_CALL] : []),
      ]);
  }

  /** The session's tools as `session.update` takes them: the user tools allowed, then the built-ins. */
  private toolDefinitions(): Record<string, unknown>[] {
    const { config } = this.setup;
    const targets = Object.keys(config.transferTargets);
    const user = config.tools
      .filter((t) => this.allowedTools.has(t.name))
      .map((t) => ({ name: t.name, description: t.description, parameters: t.parameters }));
    return [
      ...user,
      BUILT_IN_TOOLS.endCall,
      ...(targets.length > 0 ? [BUILT_IN_TOOLS.transferCall(targets)] : []),
    ].map((t) => ({ type: 'function', ...t }));
  }

  private recordCommand(stored: StoredCommand, status: CommandStatus, error?: CommandError): void {
    const { command } = stored;
    this.record({
      kind: 'event',
      name: 'command',
      detail: {
        id: stored.id,
        action: command.action,
        sender: stored.sender,
        status,
        ...(command.action === 'transfer' ? { target: command.target } : {}),
        ...(error ? { error: error.code } : {}),
      },
    });
  }

  /**
   * A command's final status. `applied` was written by the claim itself; a refusal or failure from
   * `pending` is guarded by the lease as the claim is, one from `applied` only by the status.
   */
  private settleCommand(
    stored: StoredCommand,
    to: CommandStatus,
    error: CommandError | undefined,
    from: CommandStatus = 'pending',
  ): void {
    if (to === 'applied' && from === 'applied') return;
    this.emit({
      type: 'update-command',
      op: this.open({ kind: 'command-settle', commandId: stored.id }),
      commandId: stored.id,
      from,
      to,
      ...(error ? { error } : {}),
    });
  }

  // ── the end ──────────────────────────────────────────────────────────────────────────────────

  /** Ends the session: the first cause wins (a refused attach can also raise an error, then a close). */
  private finish(reason: CallEndReason, code: number, now: number): void {
    if (this.ending) return;
    this.ending = { reason, code, endedAt: now };
    this.connected = false;
    for (const timer of [...this.timersRunning]) this.cancelTimer(timer);
    this.claimRetries.clear();
    // A goodbye still waiting to play: the call is over (or moves to another worker).
    const farewell = this.farewell;
    this.farewell = undefined;
    if (farewell?.call) {
      if (this.handingOff) this.carryOut(farewell.call);
      else this.recordTool(farewell.call, '', 'skipped', 'call_ended', now);
    }
    if (farewell?.commandId !== undefined && this.handingOff) {
      // A hang-up or transfer command whose goodbye had not finished (no /hangup or /refer sent
      // yet): given back (`applied → pending`) for the worker that takes the call over, which
      // applies it again, goodbye and all. Left as it was, the call would never be hung up.
      this.log('info', 'call command given back on hand-off', { commandId: farewell.commandId });
      this.emit({
        type: 'update-command',
        op: this.open({ kind: 'command-settle', commandId: farewell.commandId }),
        commandId: farewell.commandId,
        from: 'applied',
        to: 'pending',
      });
    }
    this.record({
      kind: 'event',
      name: this.handingOff ? 'handed_off' : 'ended',
      detail: { reason, code },
    });
    // Tools still running (or being claimed) finish first, so their parts are recorded (or, on a
    // hand-off, their outputs stored for the next worker); each has its own timeout.
    if (this.hasWorkAnEndWaitsFor()) this.startTimer('end-grace', this.toolDeadlineMs, false);
    else this.closeRecorder();
  }

  private hasWorkAnEndWaitsFor(): boolean {
    for (const p of this.pending.values()) if (WORK_AN_END_WAITS_FOR.has(p.kind)) return true;
    return false;
  }

  private closeRecorderWhenSettled(): void {
    if (this.ending && !this.recorderClosing && !this.hasWorkAnEndWaitsFor()) this.closeRecorder();
  }

  private closeRecorder(): void {
    if (this.recorderClosing) return;
    this.recorderClosing = true;
    if (this.timersRunning.has('end-grace')) this.cancelTimer('end-grace');
    this.emit({ type: 'close-recorder', op: this.open({ kind: 'close-recorder' }) });
  }

  private onRecorderClosed(): void {
    const ending = this.ending;
    if (!ending) return;
    if (this.handingOff) {
      this.sessionEnded(ending);
      return;
    }
    const { record } = this.setup;
    const durationMs =
      this.attachedAt !== undefined ? ending.endedAt - (record.acceptedAt ?? this.attachedAt) : 0;
    this.updateCall(
      { kind: 'mark-ended', durationMs },
      ['accepting', 'accepted', 'active'],
      'ended',
      {
        endReason: ending.reason,
        endedAt: ending.endedAt,
        durationMs,
        ...(this.transferConfirmed ? { transferStatus: 'confirmed' as const } : {}),
        ...(this.idleTotal > 0 ? { idleTimeouts: this.idleTotal } : {}),
      },
      true,
    );
  }

  private onMarkedEnded(durationMs: number, error: string | undefined): void {
    const ending = this.ending;
    if (!ending) return;
    const { reason, code } = ending;
    if (error !== undefined) this.log('error', 'could not record call end', { error });
    this.log('info', 'call ended', { reason, code, durationMs });
    this.metrics([
      count('CallsEnded', { name: 'EndReason', value: reason }),
      // A metric of its own: a Channel dimension on CallsEnded would hide it from its alarms.
      count('CallsEndedByChannel', {
        name: 'Channel',
        value: this.setup.record.channel ?? 'sip',
      }),
      ...(this.attachedAt !== undefined
        ? [{ name: 'CallDuration' as const, value: durationMs / 1000 }]
        : []),
    ]);
    this.sessionEnded(ending);
  }

  private sessionEnded(ending: Ending): void {
    this.endedWith = { reason: ending.reason, code: ending.code, handedOff: this.handingOff };
    this.pending.clear();
    this.emit({ type: 'session-ended', end: this.endedWith });
  }

  // ── plumbing ─────────────────────────────────────────────────────────────────────────────────

  /**
   * Instructions for one response: the session's own, then `extra`. `response.instructions`
   * REPLACES the session instructions for that response ([SDK] RealtimeResponseCreateParams
   * `instructions`, ResponseCreateEvent: "If these are set, they will override the Session's
   * configuration for this Response only"; openai-protocol.md §4.5), so a greeting or a wrap-up
   * sent with its line alone would drop the persona.
   */
  private instructions(extra: string): string {
    const own = this.currentInstructions?.trim();
    return own ? `${own}\n\n${extra}` : extra;
  }

  /** `sticky`: a goodbye's or an announcement's words, which a later ordinary request keeps. */
  private createResponse(
    response: ResponseParams = {},
    options: { readonly sticky?: boolean } = {},
  ): void {
    const now = this.sequencer.request(response, options);
    if (now) this.send(responseCreate(now));
  }

  private updateCall(
    then: Pending,
    from: Parameters<CallStore['transition']>[1],
    to: Parameters<CallStore['transition']>[2],
    fields: Partial<CallRecord>,
    release?: boolean,
  ): void {
    this.emit({
      type: 'update-call',
      op: this.open(then),
      from,
      to,
      fields,
      ...(release ? { release } : {}),
    });
  }

  private startTimer(timer: SessionTimer, ms: number, repeat: boolean): void {
    this.timersRunning.add(timer);
    this.emit({ type: 'start-timer', timer, ms, repeat });
  }

  private cancelTimer(timer: SessionTimer): void {
    this.timersRunning.delete(timer);
    this.emit({ type: 'cancel-timer', timer });
  }

  private open(pending: Pending): number {
    const op = this.nextOp++;
    this.pending.set(op, pending);
    return op;
  }

  /** The operation `op` if it is of `kind`, now settled; undefined for an unknown or stale one. */
  private take<K extends Pending['kind']>(
    op: number,
    kind: K,
  ): Extract<Pending, { kind: K }> | undefined {
    const p = this.pending.get(op);
    if (p?.kind !== kind) return undefined;
    this.pending.delete(op);
    return p as Extract<Pending, { kind: K }>;
  }

  private send(frame: WireEvent): void {
    // Held while a reattach is under way (the old socket is gone), sent once the new one opens.
    if (this.reattaching) this.held.push(frame);
    else this.emit({ type: 'send', frame });
  }

  private record(part: CallPart): void {
    // The recorder is closing: a part now would be lost; nothing should come this late.
    if (this.recorderClosing) return;
    this.emit({ type: 'record', part });
  }

  private metrics(points: readonly MetricPoint[]): void {
    this.emit({ type: 'metrics', points });
  }

  private log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.emit({ type: 'log', level, message, ...(fields ? { fields } : {}) });
  }

  private emit(command: SessionCommand): void {
    this.out.push(command);
  }
}

/** A tool error as the function_call_output the model gets. */
function toolError(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
