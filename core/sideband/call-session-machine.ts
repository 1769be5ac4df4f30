/**
 * One call's sideband as a pure state machine. The shell (`containers/sideband/src/call-session.ts`)
 * owns the socket, the clock, the timers and the SDK clients: it feeds every event in as an input
 * (with the time it happened) and carries out the commands that come back. Nothing here waits:
 * a command whose result matters (a durable tool claim, a user tool, `/refer`, `/hangup`, a call
 * record update, the recorder's last flush) carries an `op` number, and its result comes back as an
 * input with that number.
 *
 * What it does: greets on the first attach, runs each tool call once per function call id, ends
 * the call through `/hangup` (`end_call`, or after the wrap-up), transfers through `/refer` and
 * counts the transfer only when the socket closes within the confirm deadline, asks the model to
 * wrap up before OpenAI's 60-minute cap, pings the peer and terminates it after a missed pong, and
 * ends the call, for whatever reason the socket closed (the first cause wins). There is no
 * reconnect: a closed sideband means the call is over, except for our own hand-off, where another
 * worker reattaches.
 */
import { endReasonOf } from '../calls/call-state';
import type { CallsConfig } from '../calls/calls-config';
import { count, type MetricPoint } from '../observability/metrics';
import type { CallRecord, CallStore } from '../ports/calls';
import type { CallPart, ResponseUsage, ToolContext } from '../ports/sideband';
import type { CallEndReason, HangupCause } from '../reasons';
import type { WireEvent } from '../wire';
import { ResponseSequencer } from './response-sequencer';

/** What the worker learns from an attach: `gone`: the call no longer exists (404). */
export type AttachResult = 'attached' | 'gone' | 'failed';

export interface SessionEnd {
  readonly reason: CallEndReason;
  /** The socket's close code; 0 when it never opened. */
  readonly code: number;
  /** Our own hand-off: the call goes on with another worker, and was not ended. */
  readonly handedOff: boolean;
}

/** What set a transfer off: the model's `transfer_call`, or the end of the wrap-up. */
export type TransferCause = 'tool' | 'wrap_up';
/** Why a transfer failed: `/refer` threw, or the socket did not close within the deadline. */
export type TransferFailure = 'refer_error' | 'not_confirmed';

/**
 * The machine's timers: the keep-alive ping (repeating), the wrap-up and its grace period, and one
 * confirm deadline per transfer started (numbered, as a second transfer may start before the first
 * deadline passed).
 */
export type SessionTimer = 'ping' | 'wrap-up' | 'wrap-up-grace' | `transfer-confirm-${number}`;

export type LogLevel = 'info' | 'warn' | 'error';

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
  readonly config: Pick<
    CallsConfig,
    | 'transferTargets'
    | 'transferConfirmMs'
    | 'wrapUpAfterMs'
    | 'wrapUpGraceMs'
    | 'wrapUpTransferTarget'
  >;
}

/** An outcome the shell reports for `/refer` and `/hangup`: `failed` when the request threw. */
export type ApiOutcome<T extends string> =
  | { readonly result: T }
  | { readonly result: 'failed'; readonly error: string };

/** What happens to the session. */
export type SessionEvent =
  | { readonly type: 'socket-opened' }
  /** The server answered the upgrade with an HTTP status (404: the call is gone). */
  | { readonly type: 'attach-refused'; readonly status: number }
  | { readonly type: 'socket-error'; readonly error: string }
  | { readonly type: 'socket-closed'; readonly code: number }
  | { readonly type: 'pong' }
  /** A parsed server frame. */
  | { readonly type: 'server-event'; readonly event: WireEvent }
  | { readonly type: 'timer-fired'; readonly timer: SessionTimer }
  /** SIGTERM (or a lost lease): let go of the socket without ending the call. */
  | { readonly type: 'hand-off' }
  /** Results of commands, matched by `op`. A claim that threw is reported as not claimed. */
  | { readonly type: 'tool-call-claimed'; readonly op: number; readonly claimed: boolean }
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
  | { readonly type: 'recorder-closed'; readonly op: number };

/** An event with the time it happened (epoch ms): the machine's only clock. */
export type SessionInput = SessionEvent & { readonly now: number };

/** What the shell must do, in order. */
export type SessionCommand =
  | { readonly type: 'send'; readonly frame: WireEvent }
  | { readonly type: 'send-ping' }
  | { readonly type: 'close-socket'; readonly code: number; readonly reason?: string }
  | { readonly type: 'terminate-socket' }
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
  /** When the claim came back: the tool's latency counts from here. */
  readonly started: number;
}

/** What to do when an operation's result comes back. */
type Pending =
  | {
      readonly kind: 'claim';
      readonly fnCallId: string;
      readonly name: string;
      readonly args: string;
    }
  | { readonly kind: 'user-tool'; readonly call: ToolCall }
  | { readonly kind: 'hangup'; readonly call?: ToolCall }
  | {
      readonly kind: 'refer';
      readonly target: string;
      readonly why: TransferCause;
      readonly call?: ToolCall;
    }
  | { readonly kind: 'mark-active' }
  | { readonly kind: 'mark-transfer-pending' }
  /** The failed transfer is on the record: then answer the tool call, or tell the model. */
  | {
      readonly kind: 'mark-transfer-failed';
      readonly target: string;
      readonly then: { readonly call: ToolCall } | 'tell-model' | undefined;
    }
  | { readonly kind: 'close-recorder' }
  | { readonly kind: 'mark-ended'; readonly durationMs: number };

interface Ending {
  readonly reason: CallEndReason;
  readonly code: number;
  readonly endedAt: number;
}

/** The operations that are call record updates (answered by `call-updated`). */
const CALL_UPDATES: ReadonlySet<Pending['kind']> = new Set([
  'mark-active',
  'mark-transfer-pending',
  'mark-transfer-failed',
  'mark-ended',
]);
const END_CALL = 'end_call';
const TRANSFER_CALL = 'transfer_call';
/** The timers an ending cancels (a transfer's deadline is cancelled by the close that confirms it). */
const SESSION_TIMERS: readonly SessionTimer[] = ['ping', 'wrap-up', 'wrap-up-grace'];

export class CallSessionMachine {
  private readonly sequencer = new ResponseSequencer();
  /** Function call ids seen on this session: once per id in memory, durably through the claim. */
  private readonly handledToolCalls = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextOp = 1;
  /** The target of each transfer confirm deadline still scheduled. */
  private readonly confirmDeadlines = new Map<SessionTimer, string>();
  private transfersStarted = 0;
  private readonly timersStarted = new Set<SessionTimer>();
  private out: SessionCommand[] = [];

  private opened = false;
  /** The peer answered the last ping. */
  private alive = true;
  private sessionExpired = false;
  private hangupRequested = false;
  private handingOff = false;
  private keepaliveFailed = false;
  /** A transfer `/refer` accepted, waiting for the socket to close (which confirms it). */
  private transfer: { readonly target: string; readonly deadline: SessionTimer } | undefined;
  private transferConfirmed = false;
  private ending: Ending | undefined;
  private endedWith: SessionEnd | undefined;
  private attachedAt: number | undefined;

  constructor(private readonly setup: CallSessionSetup) {}

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
    const now = input.now;
    switch (input.type) {
      case 'socket-opened':
        this.onOpen(now);
        break;
      case 'attach-refused':
        this.emit({ type: 'terminate-socket' });
        if (input.status === 404) {
          this.finish('gone', 0, now);
        } else {
          this.log('error', 'sideband refused', { status: input.status });
          this.finish(`attach_failed_${input.status}`, 0, now);
        }
        break;
      case 'socket-error':
        this.log('warn', 'sideband error', { error: input.error });
        if (!this.opened) this.finish('attach_failed', 0, now);
        break;
      case 'socket-closed':
        // A close before the socket opened follows an attach failure, which already ended it.
        if (this.opened) this.onClose(input.code, now);
        break;
      case 'pong':
        this.alive = true;
        break;
      case 'server-event':
        this.onServerEvent(input.event);
        break;
      case 'timer-fired':
        this.onTimer(input.timer, now);
        break;
      case 'hand-off':
        this.handingOff = true;
        this.emit({ type: 'close-socket', code: 1000, reason: 'handing off' });
        break;
      case 'tool-call-claimed':
        this.onClaimed(input.op, input.claimed, now);
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
        const p = this.take(input.op, 'hangup');
        if (!p) break;
        if (input.result === 'failed') {
          this.log('error', 'hangup failed; closing the sideband', { error: input.error });
          this.emit({ type: 'close-socket', code: 1000 });
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
    }
    return this.out;
  }

  private onOpen(now: number): void {
    if (this.opened) return;
    const { record, greet, greeting, owner } = this.setup;
    this.opened = true;
    this.attachedAt = now;
    // Setup latency counts the first attach only, not a hand-off's reattach.
    if (greet && record.acceptedAt !== undefined)
      this.metrics([{ name: 'AttachLatency', value: now - record.acceptedAt }]);
    if (greet)
      this.createResponse(greeting ? { instructions: `Greet the caller: ${greeting}` } : {});
    this.startTimer('ping', this.setup.pingIntervalMs, true);
    // The session cap counts from accept, so a reattached call keeps its original deadline.
    const acceptedAt = record.acceptedAt ?? now;
    this.startTimer(
      'wrap-up',
      Math.max(0, acceptedAt + this.setup.config.wrapUpAfterMs - now),
      false,
    );
    this.updateCall({ kind: 'mark-active' }, ['accepted', 'accepting', 'active'], 'active', {
      attachedAt: now,
      owner,
    });
    this.record({ kind: 'event', name: 'attached', detail: { owner, greet } });
  }

  private onServerEvent(event: WireEvent): void {
    switch (event.type) {
      case 'response.created':
        this.sequencer.onResponseCreated();
        break;
      case 'response.done': {
        const usage = event.response?.usage;
        if (usage) {
          this.record({ kind: 'usage', responseId: String(event.response?.id), usage });
          this.emit({ type: 'add-usage', usage });
        }
        if (this.sequencer.onResponseDone()) this.send({ type: 'response.create' });
        break;
      }
      case 'conversation.item.input_audio_transcription.completed':
        this.record({
          kind: 'transcript',
          role: 'caller',
          text: String(event.transcript ?? ''),
          itemId: event.item_id,
        });
        break;
      case 'response.output_audio_transcript.done':
        this.record({
          kind: 'transcript',
          role: 'assistant',
          text: String(event.transcript ?? ''),
          itemId: event.item_id,
        });
        break;
      case 'response.function_call_arguments.done':
        this.onToolCall(String(event.call_id), String(event.name), String(event.arguments ?? ''));
        break;
      case 'error': {
        const code = String(event.error?.code ?? 'unknown');
        if (code === 'conversation_already_has_active_response') {
          this.sequencer.onConflict();
          break;
        }
        if (code === 'session_expired') this.sessionExpired = true;
        this.record({ kind: 'error', code, message: String(event.error?.message ?? '') });
        this.log('warn', 'sideband error event', { code });
        break;
      }
      default:
        break;
    }
  }

  private onTimer(timer: SessionTimer, now: number): void {
    if (timer === 'ping') {
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
      this.createResponse({
        instructions: 'The call must end in a minute. Briefly wrap up and say goodbye now.',
      });
      this.startTimer('wrap-up-grace', this.setup.config.wrapUpGraceMs, false);
    } else if (timer === 'wrap-up-grace') {
      const target = this.setup.config.wrapUpTransferTarget;
      if (target) this.startTransfer(target, 'wrap_up', undefined, now);
      else this.hangUp('session_cap', undefined);
    } else {
      const target = this.confirmDeadlines.get(timer);
      if (target === undefined) return;
      this.confirmDeadlines.delete(timer);
      this.failTransfer(target, 'not_confirmed', 'tell-model');
    }
  }

  private onToolCall(fnCallId: string, name: string, args: string): void {
    // Once per function call id: in memory for this socket, durably across reattaches.
    if (this.handledToolCalls.has(fnCallId)) return;
    this.handledToolCalls.add(fnCallId);
    const op = this.open({ kind: 'claim', fnCallId, name, args });
    this.emit({ type: 'claim-tool-call', op, fnCallId, name });
  }

  private onClaimed(op: number, claimed: boolean, now: number): void {
    const p = this.take(op, 'claim');
    if (!p) return;
    const { fnCallId, name, args } = p;
    if (!claimed) {
      this.log('info', 'tool call already handled', { fnCallId, name });
      return;
    }
    const call: ToolCall = { fnCallId, name, args, started: now };
    if (name === END_CALL) {
      this.hangUp('agent_end_call', call);
    } else if (name === TRANSFER_CALL) {
      const target = (safeParse(args) as { target?: string } | undefined)?.target ?? '';
      this.startTransfer(target, 'tool', call, now);
    } else {
      const { record } = this.setup;
      this.emit({
        type: 'run-tool',
        op: this.open({ kind: 'user-tool', call }),
        name,
        arguments: args,
        context: {
          callId: record.callId,
          ...(record.from ? { from: record.from } : {}),
          ...(record.to ? { to: record.to } : {}),
          sessionKey: record.sessionKey ?? 'default',
        },
      });
    }
  }

  /** A tool call's result goes back to the model, then (unless the caller is leaving) a response. */
  private finishTool(
    call: ToolCall,
    output: string,
    error: string | undefined,
    respond: boolean,
    now: number,
  ): void {
    const { fnCallId, name } = call;
    const latencyMs = now - call.started;
    this.record({
      kind: 'tool',
      fnCallId,
      name,
      arguments: call.args,
      output,
      latencyMs,
      status: error ? 'failed' : 'done',
      ...(error ? { error } : {}),
    });
    this.log('info', 'tool call', { name, fnCallId, latencyMs, error });
    const tool = { name: 'Tool', value: name } as const;
    this.metrics([
      count('ToolCalls', tool),
      { name: 'ToolLatency', value: latencyMs, dimension: tool },
      ...(error ? [count('ToolErrors', tool)] : []),
    ]);
    this.send({
      type: 'conversation.item.create',
      item: { type: 'function_call_output', call_id: fnCallId, output },
    });
    if (respond) this.createResponse();
  }

  private startTransfer(
    targetName: string,
    why: TransferCause,
    call: ToolCall | undefined,
    now: number,
  ): void {
    const { transferTargets } = this.setup.config;
    const uri = transferTargets[targetName];
    if (!uri) {
      this.transferAnswered(
        call,
        {
          ok: false,
          message: `Transfers are allowed only to: ${Object.keys(transferTargets).join(', ')}.`,
        },
        now,
      );
      return;
    }
    this.emit({
      type: 'refer',
      op: this.open({ kind: 'refer', target: targetName, why, call }),
      uri,
    });
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

  private hangUp(why: HangupCause, call: ToolCall | undefined): void {
    this.hangupRequested = true;
    this.record({ kind: 'event', name: 'hangup', detail: { why } });
    this.emit({ type: 'hangup', op: this.open({ kind: 'hangup', call }) });
  }

  private onCallUpdated(op: number, error: string | undefined, now: number): void {
    const p = this.pending.get(op);
    if (!p || !CALL_UPDATES.has(p.kind)) return;
    this.pending.delete(op);
    switch (p.kind) {
      case 'mark-active':
        if (error !== undefined) this.log('error', 'could not mark call active', { error });
        break;
      case 'mark-transfer-failed': {
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

  private onClose(code: number, now: number): void {
    const transferPending = this.transfer !== undefined;
    if (this.transfer) {
      this.cancelTimer(this.transfer.deadline);
      this.confirmDeadlines.delete(this.transfer.deadline);
      this.transferConfirmed = true;
    }
    if (transferPending) this.metrics([count('TransfersConfirmed')]);
    const reason = endReasonOf(code, {
      sessionExpired: this.sessionExpired,
      keepaliveFailed: this.keepaliveFailed,
      hangupRequested: this.hangupRequested,
      transferPending,
      handingOff: this.handingOff,
    });
    this.finish(reason, code, now);
  }

  /** Ends the session: the first cause wins (a refused attach can also raise an error, then a close). */
  private finish(reason: CallEndReason, code: number, now: number): void {
    if (this.ending) return;
    this.ending = { reason, code, endedAt: now };
    for (const timer of SESSION_TIMERS) if (this.timersStarted.has(timer)) this.cancelTimer(timer);
    this.record({
      kind: 'event',
      name: this.handingOff ? 'handed_off' : 'ended',
      detail: { reason, code },
    });
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
      ...(this.attachedAt !== undefined
        ? [{ name: 'CallDuration' as const, value: durationMs / 1000 }]
        : []),
    ]);
    this.sessionEnded(ending);
  }

  private sessionEnded(ending: Ending): void {
    this.endedWith = { reason: ending.reason, code: ending.code, handedOff: this.handingOff };
    this.emit({ type: 'session-ended', end: this.endedWith });
  }

  private createResponse(response: Record<string, unknown> = {}): void {
    if (this.sequencer.request())
      this.send({
        type: 'response.create',
        ...(Object.keys(response).length > 0 ? { response } : {}),
      });
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
    this.timersStarted.add(timer);
    this.emit({ type: 'start-timer', timer, ms, repeat });
  }

  private cancelTimer(timer: SessionTimer): void {
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
    this.emit({ type: 'send', frame });
  }

  private record(part: CallPart): void {
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

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
