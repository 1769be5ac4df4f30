import WebSocket from 'ws';
import type { CallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import { errorMessage, type Logger } from '#core/observability/logger';
import type { MetricsPublisher } from '#core/observability/metrics';
import type { CallRecord, CallStore, CallsApi } from '#core/ports/calls';
import type { CallRecorder, ToolCallClaims, ToolRunner } from '#core/ports/sideband';
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
import type { HeldCall } from './worker';

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
}

/**
 * One call's sideband on a real socket: opens `wss://…/realtime?call_id=`, feeds every socket
 * event, timer and command result to the call's state machine (`#core/sideband/call-session-machine`,
 * where every decision is made), and carries out the machine's commands with the socket, real
 * timers, the calls API, the tool runner, the tool-call claims, the call store and the recorder.
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
      config: deps.config,
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
      this.settleAttach = (result) => {
        if (!settled) {
          settled = true;
          resolve(result);
        }
      };
      ws.on('unexpected-response', (_req, res) => {
        res.resume();
        this.feed({ type: 'attach-refused', status: res.statusCode ?? 0 });
      });
      ws.on('error', (error) => this.feed({ type: 'socket-error', error: errorMessage(error) }));
      ws.on('open', () => {
        this.feed({ type: 'socket-opened' });
        this.settleAttach?.('attached');
      });
      ws.on('pong', () => this.feed({ type: 'pong' }));
      ws.on('message', (data) => {
        const event = parseFrame(String(data));
        if (event) this.feed({ type: 'server-event', event });
      });
      ws.on('close', (code) => this.feed({ type: 'socket-closed', code }));
    });
  }

  /** SIGTERM: close our side without ending the call; another worker reattaches to it. */
  async handOff(): Promise<void> {
    this.feed({ type: 'hand-off' });
    await this.ended;
  }

  /** Gives the machine an input, stamped with the time, and carries out what it answers. */
  private feed(event: SessionEvent): void {
    this.inbox.push({ ...event, now: this.deps.clock() });
    if (this.feeding) return;
    this.feeding = true;
    try {
      for (let input = this.inbox.shift(); input; input = this.inbox.shift())
        for (const command of this.machine.handle(input)) this.execute(command);
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
        this.ws?.ping();
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
        void deps.claims
          .claim(callId, command.fnCallId, command.name)
          .catch(() => false)
          .then((claimed) => this.feed({ type: 'tool-call-claimed', op, claimed }));
        break;
      }
      case 'run-tool': {
        const { op } = command;
        void deps.tools.run(command.name, command.arguments, command.context).then((result) =>
          this.feed({
            type: 'tool-finished',
            op,
            output: result.output,
            ...(result.error !== undefined ? { error: result.error } : {}),
          }),
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
        void deps.recorder.close().then(() => this.feed({ type: 'recorder-closed', op }));
        break;
      }
      case 'metrics':
        deps.metrics(command.points);
        break;
      case 'log':
        deps.log[command.level](command.message, command.fields);
        break;
      case 'session-ended':
        // An attach that never opened learns its result here.
        this.settleAttach?.(command.end.reason === 'gone' ? 'gone' : 'failed');
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

/** A server frame as an object, or undefined for anything else (it is ignored). */
function parseFrame(text: string): WireEvent | undefined {
  try {
    const event: unknown = JSON.parse(text);
    return typeof event === 'object' && event !== null ? (event as WireEvent) : undefined;
  } catch {
    return undefined;
  }
}
