import WebSocket from 'ws';
import { endReasonOf } from '#core/calls/call-state';
import type { CallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import { errorMessage, type Logger } from '#core/observability/logger';
import { count, type MetricsPublisher } from '#core/observability/metrics';
import type { CallRecord, CallStore, CallsApi } from '#core/ports/calls';
import type { CallEndReason } from '#core/reasons';
import { ResponseSequencer } from '#core/sideband/response-sequencer';
import type { WireEvent } from '#core/wire';
import type { CallRecorder } from './recorder';
import type { UserToolRunner } from './tools';

export interface CallSessionDeps {
  readonly config: CallsConfig;
  readonly calls: CallStore;
  readonly api: CallsApi;
  readonly tools: UserToolRunner;
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
}

export type AttachResult = 'attached' | 'gone' | 'failed';
export type SessionEnd = {
  readonly reason: string;
  readonly code: number;
  readonly handedOff: boolean;
};

/**
 * One call's sideband: attaches to `wss://…/realtime?call_id=`, greets, runs tools once per
 * function call id, records everything, and ends the call when the socket closes, for whatever
 * reason. There is no reconnect loop: a closed sideband means the call is over, except for our own
 * hand-off, where another worker reattaches.
 */
export class CallSession {
  readonly ended: Promise<SessionEnd>;
  private resolveEnded!: (end: SessionEnd) => void;
  private ws: WebSocket | undefined;
  private readonly sequencer = new ResponseSequencer();
  private readonly handledToolCalls = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private alive = true;
  private sessionExpired = false;
  private hangupRequested = false;
  private handingOff = false;
  private transfer: { target: string; deadline: NodeJS.Timeout } | undefined;
  private transferConfirmed = false;
  private finishing: Promise<void> | undefined;
  private keepaliveFailed = false;
  attachedAt: number | undefined;

  constructor(
    readonly record: CallRecord,
    private readonly session: SessionConfig,
    private readonly greet: boolean,
    private readonly deps: CallSessionDeps,
  ) {
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
  }

  get callId(): string {
    return this.record.callId;
  }

  /** Opens the sideband. `gone`: the call no longer exists (404), and is recorded as ended. */
  async attach(): Promise<AttachResult> {
    const { deps } = this;
    const url = `${deps.realtimeUrl}?call_id=${encodeURIComponent(this.callId)}`;
    const apiKey = await deps.apiKey();
    return new Promise((resolve) => {
      // Only the bearer token: the OpenAI-Beta header gets the socket closed with 4000.
      const ws = new WebSocket(url, {
        headers: { Authorization: `Bearer ${apiKey}` },
        handshakeTimeout: 5000,
      });
      this.ws = ws;
      let settled = false;
      const settle = (result: AttachResult) => {
        if (!settled) {
          settled = true;
          resolve(result);
        }
      };
      ws.on('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        ws.terminate();
        if (status === 404) {
          void this.finish('gone', 0).then(() => settle('gone'));
        } else {
          deps.log.error('sideband refused', { status });
          void this.finish(`attach_failed_${status}`, 0).then(() => settle('failed'));
        }
      });
      ws.on('error', (error) => {
        deps.log.warn('sideband error', { error: errorMessage(error) });
        if (!settled) void this.finish('attach_failed', 0).then(() => settle('failed'));
      });
      ws.on('open', () => {
        this.attachedAt = deps.clock();
        // Setup latency counts the first attach only, not a hand-off's reattach.
        if (this.greet && this.record.acceptedAt !== undefined)
          deps.metrics([
            { name: 'AttachLatency', value: this.attachedAt - this.record.acceptedAt },
          ]);
        if (this.greet)
          this.createResponse(
            this.session.greeting
              ? { instructions: `Greet the caller: ${this.session.greeting}` }
              : {},
          );
        this.startTimers();
        settle('attached');
        void deps.calls
          .transition(this.callId, ['accepted', 'accepting', 'active'], 'active', {
            attachedAt: this.attachedAt,
            owner: deps.owner,
          })
          .catch((error: unknown) =>
            deps.log.error('could not mark call active', { error: errorMessage(error) }),
          );
        deps.recorder.record({
          kind: 'event',
          name: 'attached',
          detail: { owner: deps.owner, greet: this.greet },
        });
      });
      ws.on('pong', () => {
        this.alive = true;
      });
      ws.on('message', (data) => this.onMessage(String(data)));
      ws.on('close', (code) => {
        if (settled) void this.onClose(code);
      });
    });
  }

  /** SIGTERM: close our side without ending the call; another worker reattaches to it. */
  async handOff(): Promise<void> {
    this.handingOff = true;
    this.ws?.close(1000, 'handing off');
    await this.ended;
  }

  private startTimers(): void {
    const { deps } = this;
    const ping = setInterval(() => {
      if (!this.alive) {
        this.keepaliveFailed = true;
        deps.log.warn('sideband peer missed a pong; terminating');
        this.ws?.terminate();
        return;
      }
      this.alive = false;
      this.ws?.ping();
    }, deps.pingIntervalMs);
    this.timers.push(ping);
    // The session cap counts from accept, so a reattached call keeps its original deadline.
    const acceptedAt = this.record.acceptedAt ?? deps.clock();
    const wrapUpIn = Math.max(0, acceptedAt + deps.config.wrapUpAfterMs - deps.clock());
    this.timers.push(setTimeout(() => this.wrapUp(), wrapUpIn));
  }

  private wrapUp(): void {
    const { deps } = this;
    deps.log.info('session cap approaching: wrapping up');
    deps.metrics([count('SessionCapHits')]);
    deps.recorder.record({ kind: 'event', name: 'wrap_up' });
    this.createResponse({
      instructions: 'The call must end in a minute. Briefly wrap up and say goodbye now.',
    });
    this.timers.push(
      setTimeout(() => {
        const target = deps.config.wrapUpTransferTarget;
        if (target) void this.startTransfer(target, 'wrap_up');
        else void this.hangUp('session_cap');
      }, deps.config.wrapUpGraceMs),
    );
  }

  private onMessage(text: string): void {
    let event: WireEvent;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    const { deps } = this;
    switch (event.type) {
      case 'response.created':
        this.sequencer.onResponseCreated();
        break;
      case 'response.done': {
        const usage = event.response?.usage;
        if (usage) {
          deps.recorder.record({ kind: 'usage', responseId: String(event.response?.id), usage });
          deps.recorder.addUsage(usage);
        }
        if (this.sequencer.onResponseDone()) this.send({ type: 'response.create' });
        break;
      }
      case 'conversation.item.input_audio_transcription.completed':
        deps.recorder.record({
          kind: 'transcript',
          role: 'caller',
          text: String(event.transcript ?? ''),
          itemId: event.item_id,
        });
        break;
      case 'response.output_audio_transcript.done':
        deps.recorder.record({
          kind: 'transcript',
          role: 'assistant',
          text: String(event.transcript ?? ''),
          itemId: event.item_id,
        });
        break;
      case 'response.function_call_arguments.done':
        void this.onToolCall(
          String(event.call_id),
          String(event.name),
          String(event.arguments ?? ''),
        );
        break;
      case 'error': {
        const code = String(event.error?.code ?? 'unknown');
        if (code === 'conversation_already_has_active_response') {
          this.sequencer.onConflict();
          break;
        }
        if (code === 'session_expired') this.sessionExpired = true;
        deps.recorder.record({ kind: 'error', code, message: String(event.error?.message ?? '') });
        deps.log.warn('sideband error event', { code });
        break;
      }
      default:
        break;
    }
  }

  private async onToolCall(fnCallId: string, name: string, args: string): Promise<void> {
    const { deps } = this;
    // Once per function call id: in memory for this socket, durably across reattaches.
    if (this.handledToolCalls.has(fnCallId)) return;
    this.handledToolCalls.add(fnCallId);
    if (!(await deps.recorder.claimTool(fnCallId, name).catch(() => false))) {
      deps.log.info('tool call already handled', { fnCallId, name });
      return;
    }
    const started = deps.clock();
    let output: string;
    let error: string | undefined;
    let respond = true;
    if (name === 'end_call') {
      output = JSON.stringify({ ok: true });
      respond = false;
      await this.hangUp('agent_end_call');
    } else if (name === 'transfer_call') {
      const target = (safeParse(args) as { target?: string } | undefined)?.target ?? '';
      const result = await this.startTransfer(target, 'tool');
      output = JSON.stringify(result);
      // On success the caller is leaving: no new response. On refusal the model explains.
      respond = !result.ok;
    } else {
      const result = await deps.tools.run(name, args, {
        callId: this.callId,
        ...(this.record.from ? { from: this.record.from } : {}),
        ...(this.record.to ? { to: this.record.to } : {}),
        sessionKey: this.record.sessionKey ?? 'default',
      });
      output = result.output;
      error = result.error;
    }
    const latencyMs = deps.clock() - started;
    deps.recorder.record({
      kind: 'tool',
      fnCallId,
      name,
      arguments: args,
      output,
      latencyMs,
      status: error ? 'failed' : 'done',
      ...(error ? { error } : {}),
    });
    deps.log.info('tool call', { name, fnCallId, latencyMs, error });
    const tool = { name: 'Tool', value: name } as const;
    deps.metrics([
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

  private async startTransfer(
    targetName: string,
    why: string,
  ): Promise<{ ok: boolean; message: string }> {
    const { deps } = this;
    const uri = deps.config.transferTargets[targetName];
    if (!uri)
      return {
        ok: false,
        message: `Transfers are allowed only to: ${Object.keys(deps.config.transferTargets).join(', ')}.`,
      };
    try {
      const result = await deps.api.refer(this.callId, uri);
      if (result === 'gone') return { ok: false, message: 'The call has already ended.' };
    } catch (error) {
      deps.log.error('refer failed', { error: errorMessage(error) });
      return this.failTransfer(targetName, 'refer_error');
    }
    deps.recorder.record({
      kind: 'event',
      name: 'transfer_started',
      detail: { target: targetName, why },
    });
    void deps.calls
      .transition(this.callId, ['active'], 'active', {
        transferTarget: targetName,
        transferStatus: 'pending',
      })
      .catch(() => undefined);
    // REFER can answer 200 and never happen: only the socket closing confirms the transfer.
    this.transfer = {
      target: targetName,
      deadline: setTimeout(() => {
        void this.failTransfer(targetName, 'not_confirmed').then(() => {
          this.send({
            type: 'conversation.item.create',
            item: {
              type: 'message',
              role: 'system',
              content: [
                {
                  type: 'input_text',
                  text: `The transfer to ${targetName} did not go through. Tell the caller and offer to help or try again.`,
                },
              ],
            },
          });
          this.createResponse();
        });
      }, deps.config.transferConfirmMs),
    };
    return { ok: true, message: `Transferring to ${targetName}.` };
  }

  private async failTransfer(
    target: string,
    reason: string,
  ): Promise<{ ok: false; message: string }> {
    const { deps } = this;
    this.transfer = undefined;
    deps.log.warn('transfer failed', { target, reason });
    deps.metrics([count('TransfersFailed')]);
    deps.recorder.record({ kind: 'event', name: 'transfer_failed', detail: { target, reason } });
    await deps.calls
      .transition(this.callId, ['active'], 'active', {
        transferTarget: target,
        transferStatus: 'failed',
      })
      .catch(() => undefined);
    return { ok: false, message: `The transfer to ${target} failed.` };
  }

  private async hangUp(why: string): Promise<void> {
    const { deps } = this;
    this.hangupRequested = true;
    deps.recorder.record({ kind: 'event', name: 'hangup', detail: { why } });
    try {
      await deps.api.hangup(this.callId);
    } catch (error) {
      deps.log.error('hangup failed; closing the sideband', { error: errorMessage(error) });
      this.ws?.close(1000);
    }
  }

  private createResponse(response: Record<string, unknown> = {}): void {
    if (this.sequencer.request())
      this.send({
        type: 'response.create',
        ...(Object.keys(response).length > 0 ? { response } : {}),
      });
  }

  private send(event: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(event));
  }

  private async onClose(code: number): Promise<void> {
    const transferPending = this.transfer !== undefined;
    if (this.transfer) {
      clearTimeout(this.transfer.deadline);
      this.transferConfirmed = true;
    }
    if (transferPending) this.deps.metrics([count('TransfersConfirmed')]);
    const reason = endReasonOf(code, {
      sessionExpired: this.sessionExpired,
      keepaliveFailed: this.keepaliveFailed,
      hangupRequested: this.hangupRequested,
      transferPending,
      handingOff: this.handingOff,
    });
    await this.finish(reason, code);
  }

  private async finish(reason: CallEndReason, code: number): Promise<void> {
    // The first cause wins: a refused attach can also raise a socket error, and a close can follow.
    if (this.finishing) return this.finishing;
    this.finishing = this.recordEnd(reason, code);
    return this.finishing;
  }

  private async recordEnd(reason: CallEndReason, code: number): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    const { deps } = this;
    const endedAt = deps.clock();
    deps.recorder.record({
      kind: 'event',
      name: this.handingOff ? 'handed_off' : 'ended',
      detail: { reason, code },
    });
    await deps.recorder.close();
    if (!this.handingOff) {
      const durationMs =
        this.attachedAt !== undefined ? endedAt - (this.record.acceptedAt ?? this.attachedAt) : 0;
      await deps.calls
        .transition(
          this.callId,
          ['accepting', 'accepted', 'active'],
          'ended',
          {
            endReason: reason,
            endedAt,
            durationMs,
            ...(this.transferConfirmed ? { transferStatus: 'confirmed' as const } : {}),
          },
          { release: true },
        )
        .catch((error: unknown) =>
          deps.log.error('could not record call end', { error: errorMessage(error) }),
        );
      deps.log.info('call ended', { reason, code, durationMs });
      deps.metrics([
        count('CallsEnded', { name: 'EndReason', value: reason }),
        ...(this.attachedAt !== undefined
          ? [{ name: 'CallDuration' as const, value: durationMs / 1000 }]
          : []),
      ]);
    }
    this.resolveEnded({ reason, code, handedOff: this.handingOff });
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
