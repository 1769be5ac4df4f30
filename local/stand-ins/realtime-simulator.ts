import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { apiError, type OpenAiSimulator } from './openai-simulator';
import { type AcceptProblem, checkAcceptBody } from './realtime-accept-rules';
import { installRealtimeCallsRoute, type RealtimeCallsRoute } from './realtime-calls-route';
import {
  type CallerTurn,
  type EffectiveSession,
  type ResponseOutcome,
  type ResponsePlan,
  type ResponseRun,
  type ResponseTrigger,
  SCENARIO_NAMES,
  SCENARIOS,
  type ScenarioContext,
  scenarioNamed,
} from './realtime-scenarios';

/**
 * OpenAI's SIP calls API and sideband WebSocket, as documented (openai-protocol.md §3–§4), written
 * from OpenAI's references and independent of this project's code (nothing here comes from
 * `core/`):
 *
 * - `/accept` bodies are checked with realtime-accept-rules.ts (the SDK types and the OpenAPI
 *   spec). Like OpenAI, a bad body still gets 200; the call then fails (SIP 400) and the sideband
 *   404s (§3.4).
 * - Server events have the shapes and order of test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts:
 *   `event_id` on each, item ids chained by `previous_item_id`, responses with their items,
 *   content parts, transcript deltas, `response.done` with usage, and the output audio buffer
 *   (`output_audio_buffer.started` … `.stopped` after `response.done`, `.cleared` on barge-in).
 * - VAD: the caller's speech is `speech_started`, `speech_stopped`, `committed`, the user item and
 *   (with `create_response`) a response; its transcription may come after the answer started.
 *   `interrupt_response` cancels a running response (`turn_detected`); server_vad
 *   `idle_timeout_ms` sends `input_audio_buffer.timeout_triggered`.
 * - Its pitfalls: a REFER can "succeed" and never happen (a target containing "fail"); a caller
 *   hang-up closes the socket without a frame; a hangup or refer while audio still plays cuts the
 *   caller off (recorded in `cutOffs`).
 * - Named scenarios (realtime-scenarios.ts) play a whole call from the first attach; a call created
 *   without one is driven by its test through the methods below.
 *
 * Everything a call did is in its `log` (server and worker events, API requests, socket opens and
 * closes) and its `facts` (what a worker should not have caused, and why).
 */
export type CallState = 'ringing' | 'accepted' | 'failed' | 'ended' | 'rejected';

// biome-ignore lint/suspicious/noExplicitAny: untyped wire JSON, read field by field.
export type WireFrame = Record<string, any>;

export interface SipHeader {
  readonly name: string;
  readonly value: string;
}

export interface SimLogEntry {
  readonly at: number;
  /**
   * `out`: server → worker; `in`: worker → server; `api`: a calls API request; `socket`: an
   * attach, refusal or close; `note`: a fact (also in `facts`).
   */
  readonly dir: 'out' | 'in' | 'api' | 'socket' | 'note';
  readonly type: string;
  readonly event?: WireFrame;
  readonly text?: string;
  /** Sockets an `out` frame reached: 0 means nobody was attached and it was lost. */
  readonly delivered?: number;
  readonly warn?: boolean;
}

export interface SimFact {
  readonly at: number;
  readonly kind: string;
  readonly text: string;
  /** Something a correct worker would not have caused. */
  readonly warn: boolean;
}

export interface CutOff {
  readonly action: 'hangup' | 'refer';
  readonly at: number;
  /** The response whose audio was still playing. */
  readonly responseId: string;
  /** When the buffer would have drained (`output_audio_buffer.stopped`); unset while generating. */
  readonly drainsAt?: number;
  readonly earlyMs?: number;
}

export interface SimFunctionCall {
  readonly callId: string;
  readonly itemId: string;
  readonly responseId: string;
  readonly name: string;
  status: 'in_progress' | 'completed' | 'incomplete';
  /** `function_call_output`s the worker sent for it. */
  outputs: number;
}

export interface SimItem {
  readonly id: string;
  readonly type: string;
  readonly role?: string;
  readonly previousItemId: string | null;
  /** Transcript, text or function output, once known. */
  text?: string;
}

export interface SimulatedCall {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  /** The scenario played from the first attach; unset: the test drives the call. */
  readonly scenario: string | undefined;
  /**
   * Holds a goodbye response's `response.done` back this long after its function call item
   * (default: the simulator's pace). A test sets it to see a hangup that arrives while the
   * response is still generating, without racing the loopback round trip.
   */
  readonly goodbyeHoldMs?: number;
  /** The INVITE's headers, as `realtime.call.incoming` reports them (`X-Sim-Scenario` included). */
  readonly sipHeaders: SipHeader[];
  state: CallState;
  accepts: number;
  rejects: number;
  acceptBody?: unknown;
  /** Why the last accept body fails the call (empty: it is valid). */
  acceptProblems: AcceptProblem[];
  acceptWarnings: string[];
  /** The SIP final response to the caller: 200 once accepted, 400 when the session failed. */
  sipStatus?: number;
  rejectStatus?: number;
  referTarget?: string;
  hangups: number;
  readonly sockets: Set<WebSocket>;
  connections: number;
  /** Responses in progress on the server (a tool response and a VAD turn can overlap). */
  activeResponses: number;
  /** `response.create`s refused with conversation_already_has_active_response. */
  conflicts: number;
  /** Every client event received on any of this call's sockets, with its arrival time. */
  readonly received: { event: WireFrame; at: number }[];
  readonly timeline: Record<string, number>;
  readonly log: SimLogEntry[];
  readonly facts: SimFact[];
  readonly cutOffs: CutOff[];
  readonly functionCalls: SimFunctionCall[];
  /** The conversation in order: each item's `previous_item_id` is the one before it. */
  readonly items: SimItem[];
  readonly closes: { at: number; code: number; by: 'server' | 'worker' | 'caller' }[];
  /**
   * Every sideband socket of the call, from its open to its close: whether two workers ever held
   * the call at once, and for how long, is read from these.
   */
  readonly spans: SocketSpan[];
  /** Output audio is playing (between `output_audio_buffer.started` and `.stopped`/`.cleared`). */
  audioPlaying: boolean;
  idleTimeouts: number;
}

/** One sideband socket's life (epoch ms): `closedAt` unset while it is open. */
export interface SocketSpan {
  readonly openedAt: number;
  closedAt?: number;
}

/**
 * A fault the next sideband attaches meet (`failAttach`): an HTTP status instead of the upgrade,
 * an upgrade never answered (the client's handshake timeout fires), or the connection reset.
 */
export type AttachFault = { readonly status: number } | 'hang' | 'reset';

export interface RealtimeSimulatorOptions {
  /** How long a simulated response takes, in ms; also the scenarios' unit of time. @default 20 */
  readonly responseMs?: number;
  /** How long a response's audio plays after `response.done`. @default 2 × responseMs */
  readonly audioTailMs?: number;
  /** The same for the goodbye scenarios' last words. @default 600 */
  readonly goodbyeTailMs?: number;
  /** How long a scenario waits for the worker before noting it and going on. @default 5000 */
  readonly workerWaitMs?: number;
  /** How long a ghost or silent call lasts before the server (or the caller) gives up. @default 15000 */
  readonly ghostTimeoutMs?: number;
  /** How long the rotation scenarios wait for a reattach. @default 5000 */
  readonly reattachWaitMs?: number;
  /** Multiplies `idle_timeout_ms` (5000–30000 by the spec) so tests need not wait seconds. @default 1 */
  readonly idleTimeoutScale?: number;
}

/** Thrown inside scenario scripts and response runs once the call is over: it ends them. */
class CallOver extends Error {
  constructor() {
    super('the call is over');
  }
}

const LOG_LIMIT = 5000;
const CLIENT_EVENT_TYPES = [
  'session.update',
  'input_audio_buffer.append',
  'input_audio_buffer.commit',
  'input_audio_buffer.clear',
  'output_audio_buffer.clear',
  'conversation.item.create',
  'conversation.item.retrieve',
  'conversation.item.truncate',
  'conversation.item.delete',
  'response.create',
  'response.cancel',
];

class Run implements ResponseRun {
  readonly done: Promise<ResponseOutcome>;
  readonly drained: Promise<void>;
  resolveDone!: (outcome: ResponseOutcome) => void;
  rejectDone!: (error: Error) => void;
  resolveDrained!: () => void;
  rejectDrained!: (error: Error) => void;
  finished = false;
  cancelReason: 'turn_detected' | 'client_cancelled' | undefined;
  bargeInItemId: string | undefined;

  constructor(
    readonly id: string,
    readonly trigger: ResponseTrigger,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.drained = new Promise((resolve, reject) => {
      this.resolveDrained = resolve;
      this.rejectDrained = reject;
    });
    // Nobody has to await these: a call that ends mid-response must not be an unhandled rejection.
    this.done.catch(() => undefined);
    this.drained.catch(() => undefined);
  }

  get interrupted(): boolean {
    return this.cancelReason !== undefined;
  }

  /** Wakes a held response (`holdMs`) when it is interrupted, so it ends promptly. */
  readonly wakers = new Set<() => void>();

  interrupt(reason: 'turn_detected' | 'client_cancelled'): void {
    if (this.finished) return;
    this.cancelReason ??= reason;
    for (const wake of [...this.wakers]) wake();
  }
}

/** Bookkeeping the tests need not see. */
interface CallInner {
  readonly waiters: Set<() => void>;
  readonly runs: Run[];
  readonly plans: ResponsePlan[];
  session: EffectiveSession;
  sessionView: WireFrame;
  conversationId: string;
  sessionId: string;
  /** The run whose audio is in the output buffer, and when the buffer drains. */
  audio: { run?: Run; drainsAt?: number; timer?: NodeJS.Timeout };
  idleTimer?: NodeJS.Timeout;
  /** ms of input audio (the audio clock starts at the first attach). */
  epoch?: number;
  lastDrainAudioMs: number;
  scenarioStarted: boolean;
  /** Sockets we closed (and why), to tell our closes from the worker's. */
  readonly closedBy: WeakMap<WebSocket, 'server' | 'caller'>;
}

const DEFAULT_SESSION: EffectiveSession = {
  modality: 'audio',
  // The server's default for a realtime session is server_vad (REF §3.2 shows it as an option).
  turnDetection: {
    type: 'server_vad',
    createResponse: true,
    interruptResponse: true,
    idleTimeoutMs: null,
  },
  transcription: false,
};

export class RealtimeSimulator {
  readonly calls = new Map<string, SimulatedCall>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly inners = new Map<string, CallInner>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly responseMs: number;
  private readonly audioTailMs: number;
  private readonly goodbyeTailMs: number;
  private readonly workerWaitMs: number;
  private readonly ghostTimeoutMs: number;
  private readonly reattachWaitMs: number;
  private readonly idleTimeoutScale: number;
  private readonly attachFaults: { fault: AttachFault; remaining: number; callId?: string }[] = [];
  private readonly acceptDelays: { ms: number; remaining: number }[] = [];
  private readonly hung = new Set<Duplex>();
  /** `POST /v1/realtime/calls` (browser WebRTC calls): its timings and fault knobs. */
  readonly webRtc: RealtimeCallsRoute;

  constructor(
    private readonly api: OpenAiSimulator,
    options: RealtimeSimulatorOptions = {},
  ) {
    this.responseMs = options.responseMs ?? 20;
    this.audioTailMs = options.audioTailMs ?? this.responseMs * 2;
    this.goodbyeTailMs = options.goodbyeTailMs ?? 600;
    this.workerWaitMs = options.workerWaitMs ?? 5000;
    this.ghostTimeoutMs = options.ghostTimeoutMs ?? 15_000;
    this.reattachWaitMs = options.reattachWaitMs ?? 5000;
    this.idleTimeoutScale = options.idleTimeoutScale ?? 1;
    this.controlRoutes();
    this.webRtc = installRealtimeCallsRoute(api, this);
    const call = (id: string | undefined) => (id ? this.calls.get(id) : undefined);
    const gone = {
      status: 404,
      body: apiError('call_id_not_found', 'No session found for the provided call_id'),
    };
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/accept$/, async (request, m) => {
      const c = call(m[1]);
      if (!c || c.state === 'ended' || c.state === 'rejected' || c.state === 'failed') {
        if (c) this.log(c, { dir: 'api', type: 'POST /accept', text: '404 call_id_not_found' });
        return gone;
      }
      c.accepts++;
      c.acceptBody = request.body;
      c.timeline.accepted ??= Date.now();
      this.accept(c, request.body);
      // The call is taken at once; only the answer comes late (a client may time out first).
      const delay = this.acceptDelays.find((d) => d.remaining > 0);
      if (delay) {
        delay.remaining--;
        this.log(c, { dir: 'api', type: 'POST /accept', text: `answer delayed ${delay.ms} ms` });
        await new Promise((resolve) => this.after(delay.ms, () => resolve(undefined)));
      }
      return { status: 200 };
    });
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/reject$/, (request, m) => {
      const c = call(m[1]);
      if (c?.state !== 'ringing') return gone;
      c.rejects++;
      c.rejectStatus = Number(
        (request.body as { status_code?: number } | undefined)?.status_code ?? 603,
      );
      c.state = 'rejected';
      c.sipStatus = c.rejectStatus;
      this.log(c, { dir: 'api', type: 'POST /reject', text: `200 (SIP ${c.rejectStatus})` });
      this.signal(c);
      return { status: 200 };
    });
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/refer$/, (request, m) => {
      const c = call(m[1]);
      if (c?.state !== 'accepted') {
        if (c) this.log(c, { dir: 'api', type: 'POST /refer', text: '404 call_id_not_found' });
        return gone;
      }
      c.referTarget = String((request.body as { target_uri?: string } | undefined)?.target_uri);
      this.log(c, { dir: 'api', type: 'POST /refer', text: `200 → ${c.referTarget}` });
      this.checkEnding(c, 'refer');
      // A target containing "fail" reproduces the silent REFER failure: 200, then nothing.
      if (c.referTarget.includes('fail'))
        this.fact(c, 'refer_silent', 'REFER answered 200 but the transfer never happens');
      else this.after(50, () => this.end(c, 1000, 'transferred: the caller left the call'));
      return { status: 200 };
    });
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/hangup$/, (_request, m) => {
      const c = call(m[1]);
      if (!c || c.state === 'ended' || c.state === 'failed' || c.state === 'rejected') {
        if (c) this.log(c, { dir: 'api', type: 'POST /hangup', text: '404 call_id_not_found' });
        return gone;
      }
      c.hangups++;
      this.log(c, { dir: 'api', type: 'POST /hangup', text: '200' });
      this.checkEnding(c, 'hangup');
      this.after(5, () => this.end(c, 1000, 'hung up'));
      return { status: 200 };
    });
  }

  /** Loopback control routes, so another process (`npm run send -- call`) can play the caller. */
  private controlRoutes(): void {
    const found = (id: string | undefined) => (id ? this.calls.get(id) : undefined);
    const notFound = { status: 404, body: apiError('not_found', 'No such call.') };
    this.api.route('GET', /^\/_sim\/scenarios$/, () => ({
      status: 200,
      body: SCENARIOS.map(({ name, summary, sequence, expect }) => ({
        name,
        summary,
        sequence,
        expect,
      })),
    }));
    this.api.route('POST', /^\/_sim\/calls$/, (request) => {
      const body = (request.body ?? {}) as {
        from?: string;
        to?: string;
        scenario?: string;
        sip_headers?: SipHeader[];
      };
      try {
        return {
          status: 200,
          body: this.view(
            this.createCall({
              ...(body.from ? { from: body.from } : {}),
              ...(body.to ? { to: body.to } : {}),
              ...(body.scenario ? { scenario: body.scenario } : {}),
              ...(Array.isArray(body.sip_headers) ? { sipHeaders: body.sip_headers } : {}),
            }),
          ),
        };
      } catch (error) {
        return {
          status: 400,
          body: { ...apiError('unknown_scenario', String(error)), scenarios: SCENARIO_NAMES },
        };
      }
    });
    this.api.route('GET', /^\/_sim\/calls\/([^/]+)$/, (_r, m) => {
      const c = found(m[1]);
      return c ? { status: 200, body: this.view(c, true) } : notFound;
    });
    this.api.route('POST', /^\/_sim\/calls\/([^/]+)\/(say|tool|hangup)$/, (request, m) => {
      const c = found(m[1]);
      if (!c) return notFound;
      const body = (request.body ?? {}) as { text?: string; name?: string; arguments?: unknown };
      if (m[2] === 'say') this.callerSays(c.id, body.text ?? 'Hello?');
      if (m[2] === 'hangup') this.callerHangsUp(c.id);
      if (m[2] === 'tool')
        return {
          status: 200,
          body: {
            fn_call_id: this.requestTool(c.id, body.name ?? 'lookup_order', body.arguments ?? {}),
            at: Date.now(),
          },
        };
      return { status: 200, body: this.view(c) };
    });
  }

  /** A call as JSON: the control API's view, with its log and facts when `full`. */
  view(c: SimulatedCall, full = false): WireFrame {
    const base = {
      call_id: c.id,
      from: c.from,
      to: c.to,
      scenario: c.scenario,
      sip_headers: c.sipHeaders,
      state: c.state,
      accepts: c.accepts,
      connections: c.connections,
      timeline: c.timeline,
    };
    if (!full) return base;
    return {
      ...base,
      sip_status: c.sipStatus,
      hangups: c.hangups,
      refer_target: c.referTarget,
      accept_problems: c.acceptProblems,
      accept_warnings: c.acceptWarnings,
      conflicts: c.conflicts,
      idle_timeouts: c.idleTimeouts,
      facts: c.facts,
      cut_offs: c.cutOffs,
      function_calls: c.functionCalls,
      items: c.items,
      closes: c.closes,
      log: c.log,
      received: c.received.map((r) => ({ type: r.event.type, at: r.at, item: r.event.item })),
    };
  }

  /** Serves the sideband on the simulator's HTTP server. Call after the simulator started. */
  attach(): void {
    this.api.httpServer?.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /**
   * A SIP call arrives at OpenAI: returns its `call_id`, ringing. `scenario` (or an
   * `X-Sim-Scenario` INVITE header) names the script its sideband plays; unknown names throw.
   */
  createCall(
    options: {
      from?: string;
      to?: string;
      scenario?: string;
      sipHeaders?: readonly SipHeader[];
      goodbyeHoldMs?: number;
    } = {},
  ): SimulatedCall {
    const fromHeader = options.sipHeaders?.find(
      (h) => h?.name?.toLowerCase() === 'x-sim-scenario',
    )?.value;
    const scenario = options.scenario ?? fromHeader;
    if (scenario !== undefined && !scenarioNamed(scenario))
      throw new Error(`Unknown scenario "${scenario}". Scenarios: ${SCENARIO_NAMES.join(', ')}.`);
    const id = `rtc_u1_${randomBytes(12).toString('hex')}`;
    const from = options.from ?? '+14155550123';
    const to = options.to ?? '+18005550100';
    const sipHeaders: SipHeader[] = options.sipHeaders
      ? options.sipHeaders.filter(
          (h): h is SipHeader => typeof h?.name === 'string' && typeof h.value === 'string',
        )
      : [
          { name: 'From', value: `"Caller" <sip:${from}@sip.example.com>;tag=${hex(4)}` },
          { name: 'To', value: `sip:${to}@sip.api.openai.com` },
          { name: 'Call-ID', value: hex(12) },
        ];
    if (scenario !== undefined && !fromHeader)
      sipHeaders.push({ name: 'X-Sim-Scenario', value: scenario });
    const c: SimulatedCall = {
      id,
      from,
      to,
      scenario,
      ...(options.goodbyeHoldMs !== undefined ? { goodbyeHoldMs: options.goodbyeHoldMs } : {}),
      sipHeaders,
      state: 'ringing',
      accepts: 0,
      rejects: 0,
      acceptProblems: [],
      acceptWarnings: [],
      hangups: 0,
      sockets: new Set(),
      connections: 0,
      activeResponses: 0,
      conflicts: 0,
      received: [],
      timeline: { created: Date.now() },
      log: [],
      facts: [],
      cutOffs: [],
      functionCalls: [],
      items: [],
      closes: [],
      spans: [],
      audioPlaying: false,
      idleTimeouts: 0,
    };
    this.calls.set(id, c);
    this.log(c, {
      dir: 'note',
      type: 'ringing',
      text: `INVITE from ${from} to ${to}${scenario ? `, scenario ${scenario}` : ''}`,
    });
    return c;
  }

  /**
   * A browser's WebRTC call (`POST /v1/realtime/calls`: realtime-calls-route.ts): created with the
   * session sent beside the offer and answered at once (no ringing, no `/accept`, no SIP
   * headers); its sideband is then served like a SIP call's, to `?call_id=` with the project key.
   */
  createWebRtcCall(session: unknown): SimulatedCall {
    const c = this.createCall({ sipHeaders: [], from: 'webrtc', to: 'webrtc' });
    c.timeline.accepted = Date.now();
    c.acceptBody = session;
    this.accept(c, session);
    // No INVITE and no /accept happened: the log says what did.
    const kept = c.log.filter((e) => e.type !== 'ringing' && e.type !== 'POST /accept');
    c.log.splice(0, c.log.length, ...kept);
    c.log.unshift({
      at: c.timeline.accepted,
      dir: 'api',
      type: 'POST /realtime/calls',
      text: `201: a WebRTC offer, answered with the session sent beside it${c.state === 'failed' ? ' (the session breaks the rules: the call fails)' : ''}`,
    });
    return c;
  }

  /** The caller says something: VAD events, the user item, a response, its transcription. */
  callerSays(callId: string, text: string): void {
    const c = this.must(callId);
    if (this.session(c).turnDetection === null) {
      this.fact(c, 'no_vad', 'turn_detection is null: the caller is never heard', true);
      return;
    }
    const itemId = this.speechStarted(c);
    this.finishCallerTurn(c, itemId, text, { respond: { say: `You said: ${text}` } });
  }

  /** The model decides to call a tool; returns the function call's `call_id`. */
  requestTool(
    callId: string,
    name: string,
    args: unknown,
    options: { holdMs?: number } = {},
  ): string {
    const c = this.must(callId);
    const fnCallId = newId('call_', 8);
    // Synchronous up to the item's `output_item.done` (tests act on it at once); `response.done`
    // follows after `holdMs`.
    this.startResponse(
      c,
      { call: { name, arguments: args, callId: fnCallId }, holdMs: options.holdMs ?? 0 },
      'server',
      true,
    );
    return fnCallId;
  }

  /**
   * A response the server has started (a VAD turn) whose `response.created` has not reached the
   * client yet: a `response.create` sent now gets `conversation_already_has_active_response`.
   */
  startHiddenResponse(callId: string, durationMs: number): void {
    const c = this.must(callId);
    c.activeResponses++;
    this.after(durationMs, () => {
      c.activeResponses--;
      if (!isOver(c)) this.startResponse(c, { say: 'Sorry, go on.' }, 'vad', true);
    });
  }

  /**
   * Sends a prepared text frame as is: load generation without per-event JSON work (and, given a
   * Buffer, without encoding it again for every socket). Not logged.
   */
  sendRaw(callId: string, frame: string | Buffer): void {
    for (const socket of this.must(callId).sockets)
      if (socket.readyState === socket.OPEN) socket.send(frame, { binary: false });
  }

  /** Called for every client event as it arrives (benchmarks measure round trips with it). */
  onClientEvent: ((call: SimulatedCall, event: WireFrame, at: number) => void) | undefined;

  /** Re-sends an event already sent (OpenAI may repeat `function_call_arguments.done`). */
  resend(callId: string, event: Record<string, unknown>): void {
    this.emit(this.must(callId), event);
  }

  /** The caller hangs up: OpenAI drops the socket without a close frame (1006 at the client). */
  callerHangsUp(callId: string): void {
    const c = this.must(callId);
    if (c.state === 'ended') return;
    c.state = 'ended';
    c.timeline.ended = Date.now();
    this.log(c, { dir: 'note', type: 'caller_hung_up', text: 'the caller hung up' });
    this.drop(c, 'caller');
  }

  /** The network path dies silently: the server stops answering pings (and everything else). */
  goSilent(callId: string): void {
    for (const socket of this.must(callId).sockets) {
      (socket as unknown as { _socket?: { pause(): void } })._socket?.pause();
    }
  }

  /** The 60-minute cap: an error event, then close 1001. */
  expireSession(callId: string): void {
    const c = this.must(callId);
    this.emit(c, {
      type: 'error',
      error: {
        type: 'invalid_request_error',
        code: 'session_expired',
        message: 'Your session hit the maximum duration of 60 minutes.',
        param: null,
        event_id: null,
      },
    });
    this.end(c, 1001, 'the session hit its 60-minute cap');
  }

  /**
   * Fault injection: the next `count` sideband attaches (to `callId`, or to any call) fail with
   * `fault` instead of opening.
   */
  failAttach(fault: AttachFault, count = 1, callId?: string): void {
    this.attachFaults.push({ fault, remaining: count, ...(callId ? { callId } : {}) });
  }

  /** Fault injection: the next `count` `/accept`s take the call at once but answer `ms` late. */
  delayAccepts(ms: number, count = 1): void {
    this.acceptDelays.push({ ms, remaining: count });
  }

  /** Closes the call's sockets with `code` while the call goes on (a backend rotation). */
  rotate(callId: string, code: 1000 | 1001 = 1000): void {
    const c = this.must(callId);
    if (c.state === 'accepted') this.context(c).rotate(code);
  }

  /** Events of a given type the client sent for a call. */
  sent(callId: string, type: string): WireFrame[] {
    return this.must(callId)
      .received.filter((r) => r.event.type === type)
      .map((r) => r.event);
  }

  /** Server events of a given type sent for a call (in order), from its log. */
  sentToWorker(callId: string, type?: string): WireFrame[] {
    return this.must(callId).log.flatMap((e) =>
      e.dir === 'out' && e.event && (type === undefined || e.type === type) ? [e.event] : [],
    );
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const c of this.calls.values()) for (const s of c.sockets) s.terminate();
    for (const socket of this.hung) socket.destroy();
    this.wss.close();
  }

  // ── calls API ────────────────────────────────────────────────────────────────────────────────

  private accept(c: SimulatedCall, body: unknown): void {
    const check = checkAcceptBody(body);
    c.acceptProblems = check.problems;
    c.acceptWarnings = check.warnings;
    this.log(c, {
      dir: 'api',
      type: 'POST /accept',
      text: `200${check.problems.length > 0 ? ` (body invalid: ${check.problems.map((p) => p.path || p.rule).join(', ')})` : ''}`,
    });
    for (const warning of check.warnings) this.fact(c, 'accept_warning', warning);
    if (check.problems.length > 0) {
      // REF §3.4: "/accept can return 200 for an invalid body and then fail with SIP 400/504
      // and a sideband 404".
      c.state = 'failed';
      c.sipStatus = 400;
      this.fact(
        c,
        'accept_failed',
        `the accept body breaks OpenAI's rules, so after the 200 the session fails: SIP 400 to the caller, the sideband 404s. ${check.problems.map((p) => p.message).join(' ')}`,
        true,
      );
      this.signal(c);
      return;
    }
    c.state = 'accepted';
    c.sipStatus = 200;
    const inner = this.inner(c);
    inner.session = effectiveSession(body);
    inner.sessionView = sessionView(c, inner, body);
  }

  /** A hangup or refer: cut-offs, and acting on a function call the caller interrupted. */
  private checkEnding(c: SimulatedCall, action: 'hangup' | 'refer'): void {
    const inner = this.inner(c);
    const now = Date.now();
    if (c.audioPlaying && inner.audio.run) {
      const drainsAt = inner.audio.drainsAt;
      const cut: CutOff = {
        action,
        at: now,
        responseId: inner.audio.run.id,
        ...(drainsAt !== undefined ? { drainsAt, earlyMs: Math.max(0, drainsAt - now) } : {}),
      };
      c.cutOffs.push(cut);
      this.fact(
        c,
        'cut_off',
        cut.earlyMs !== undefined
          ? `${action} arrived ${cut.earlyMs} ms before the audio buffer drained (output_audio_buffer.stopped): the caller's last words were cut off`
          : `${action} arrived while response ${cut.responseId} was still generating audio: the caller was cut off`,
        true,
      );
    }
    const tool = action === 'hangup' ? 'end_call' : 'transfer_call';
    const calls = c.functionCalls.filter((f) => f.name === tool);
    if (calls.length > 0 && calls.every((f) => f.status === 'incomplete'))
      this.fact(
        c,
        'acted_on_interrupted_call',
        `${action} for ${tool} ${calls.map((f) => f.callId).join(', ')}, which the caller interrupted (item incomplete, response cancelled)`,
        true,
      );
  }

  // ── the sideband ─────────────────────────────────────────────────────────────────────────────

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/v1/realtime') {
      refuse(socket, 404, 'not_found');
      return;
    }
    if (req.headers.authorization !== `Bearer ${this.api.apiKey}`) {
      refuse(socket, 401, 'invalid_api_key');
      return;
    }
    const c = this.calls.get(url.searchParams.get('call_id') ?? '');
    if (c?.state !== 'accepted') {
      if (c)
        this.log(c, {
          dir: 'socket',
          type: 'refused',
          text: `attach refused: 404 (call ${c.state})`,
        });
      refuse(socket, 404, 'call_id_not_found');
      return;
    }
    const fault = this.attachFaults.find(
      (f) => f.remaining > 0 && (f.callId === undefined || f.callId === c.id),
    );
    if (fault) {
      fault.remaining--;
      const what = typeof fault.fault === 'string' ? fault.fault : String(fault.fault.status);
      this.log(c, { dir: 'socket', type: 'refused', text: `attach fault injected: ${what}` });
      if (fault.fault === 'reset') socket.destroy();
      else if (fault.fault === 'hang') {
        this.hung.add(socket);
        socket.on('close', () => this.hung.delete(socket));
      } else refuse(socket, fault.fault.status, 'server_error');
      return;
    }
    const beta = req.headers['openai-beta'] !== undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (beta) {
        ws.send(
          JSON.stringify({
            type: 'error',
            event_id: newId('event_'),
            error: {
              type: 'invalid_request_error',
              code: 'beta_api_shape_disabled',
              message:
                'The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.',
            },
          }),
        );
        ws.close(4000);
        return;
      }
      const inner = this.inner(c);
      c.sockets.add(ws);
      const span: SocketSpan = { openedAt: Date.now() };
      c.spans.push(span);
      c.connections++;
      c.timeline.attached ??= Date.now();
      inner.epoch ??= Date.now();
      this.log(c, {
        dir: 'socket',
        type: 'attached',
        text: `sideband attached (connection ${c.connections})`,
      });
      ws.on('close', (code) => {
        span.closedAt = Date.now();
        c.sockets.delete(ws);
        const by = inner.closedBy.get(ws) ?? 'worker';
        c.closes.push({ at: Date.now(), code, by });
        this.log(c, { dir: 'socket', type: 'closed', text: `socket closed ${code} by the ${by}` });
        this.signal(c);
      });
      ws.on('message', (data) => this.onClientFrame(c, ws, String(data)));
      // [SDK rt] SessionCreatedEvent, then ConversationCreatedEvent (REF §4.1).
      this.emitTo(c, ws, { type: 'session.created', session: inner.sessionView });
      this.emitTo(c, ws, {
        type: 'conversation.created',
        conversation: { id: inner.conversationId, object: 'realtime.conversation' },
      });
      this.signal(c);
      if (c.scenario && !inner.scenarioStarted) {
        inner.scenarioStarted = true;
        this.runScenario(c, c.scenario);
      }
    });
  }

  private onClientFrame(c: SimulatedCall, ws: WebSocket, text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.fact(
        c,
        'client_invalid_json',
        `the worker sent a frame that is not JSON: ${text.slice(0, 80)}`,
        true,
      );
      this.emitTo(
        c,
        ws,
        errorEvent('invalid_json', 'We could not parse the JSON body of your request.'),
      );
      return;
    }
    if (!isRecord(parsed)) {
      this.emitTo(c, ws, errorEvent('invalid_value', 'Expected an object.'));
      return;
    }
    const event = parsed as WireFrame;
    const at = Date.now();
    c.received.push({ event, at });
    this.log(c, { dir: 'in', type: String(event.type), event });
    this.onClientEvent?.(c, event, at);
    const clientEventId = typeof event.event_id === 'string' ? event.event_id : null;
    switch (event.type) {
      case 'response.create': {
        c.timeline.firstResponseCreate ??= at;
        if (c.activeResponses > 0) {
          c.conflicts++;
          this.emitTo(
            c,
            ws,
            errorEvent(
              'conversation_already_has_active_response',
              'Conversation already has an active response in progress.',
              clientEventId,
            ),
          );
          break;
        }
        const inner = this.inner(c);
        const plan = inner.plans.shift() ?? this.defaultPlan(c, event);
        const modalities = event.response?.output_modalities;
        this.startResponse(
          c,
          plan,
          'client',
          false,
          Array.isArray(modalities) && modalities[0] === 'text' ? 'text' : undefined,
        );
        break;
      }
      case 'response.cancel': {
        // [SDK rt] ResponseCancelEvent: "The server will respond with a `response.done` event
        // with a status of `response.status=cancelled`. If there is no response to cancel, the
        // server will respond with an error"; `response_id` names one, else the in-progress one.
        // The run ends at once (a held response's hold is cut short: see `hold`).
        const only = typeof event.response_id === 'string' ? event.response_id : undefined;
        const running = this.inner(c).runs.filter(
          (r) => !r.finished && (only === undefined || r.id === only),
        );
        if (running.length === 0)
          this.emitTo(
            c,
            ws,
            errorEvent(
              'response_cancel_not_active',
              'There is no active response to cancel.',
              clientEventId,
            ),
          );
        for (const run of running) run.interrupt('client_cancelled');
        break;
      }
      case 'conversation.item.create':
        this.clientItem(c, ws, event, clientEventId);
        break;
      case 'session.update': {
        const inner = this.inner(c);
        const update = isRecord(event.session) ? event.session : {};
        inner.sessionView = { ...inner.sessionView, ...update, type: 'realtime' };
        inner.session = effectiveSession(inner.sessionView);
        this.emit(c, { type: 'session.updated', session: inner.sessionView });
        break;
      }
      case 'input_audio_buffer.clear':
        this.emit(c, { type: 'input_audio_buffer.cleared' });
        break;
      case 'output_audio_buffer.clear':
        this.clearAudio(c);
        break;
      default:
        if (!CLIENT_EVENT_TYPES.includes(String(event.type))) {
          this.fact(
            c,
            'client_unknown_event',
            `the worker sent an unknown event type "${String(event.type)}"`,
            true,
          );
          this.emitTo(
            c,
            ws,
            errorEvent(
              'invalid_value',
              `Invalid value: '${String(event.type)}'. Supported values are: ${CLIENT_EVENT_TYPES.map((t) => `'${t}'`).join(', ')}.`,
              clientEventId,
              'type',
            ),
          );
        }
    }
    this.signal(c);
  }

  /** `conversation.item.create`: the item is added; a function output is matched to its call. */
  private clientItem(
    c: SimulatedCall,
    ws: WebSocket,
    event: WireFrame,
    clientEventId: string | null,
  ): void {
    const item = event.item;
    if (!isRecord(item)) {
      this.emitTo(
        c,
        ws,
        errorEvent(
          'missing_required_parameter',
          "Missing required parameter: 'item'.",
          clientEventId,
          'item',
        ),
      );
      return;
    }
    const id = typeof item.id === 'string' ? item.id : newId('item_', 10);
    let text: string | undefined;
    if (item.type === 'message' && Array.isArray(item.content)) {
      // A message's text parts ([SDK rt] RealtimeConversationItemSystemMessage: input_text).
      const parts = (item.content as unknown[]).flatMap((part) =>
        isRecord(part) && typeof part.text === 'string' ? [part.text] : [],
      );
      if (parts.length > 0) text = parts.join('\n');
    }
    if (item.type === 'function_call_output') {
      text = String(item.output ?? '');
      const fc = c.functionCalls.find((f) => f.callId === item.call_id);
      if (!fc)
        this.fact(
          c,
          'unknown_call_id',
          `function_call_output for call_id ${String(item.call_id)}, which no function call has`,
          true,
        );
      else {
        fc.outputs++;
        if (fc.status === 'incomplete')
          this.fact(
            c,
            'acted_on_interrupted_call',
            `function_call_output for ${fc.name} ${fc.callId}, which the caller interrupted (item incomplete, response cancelled): the tool ran anyway`,
            true,
          );
        if (fc.outputs > 1)
          this.fact(
            c,
            'duplicate_output',
            `function_call_output for ${fc.callId} sent ${fc.outputs} times`,
            true,
          );
      }
    }
    const previous = this.addItem(c, {
      id,
      type: String(item.type),
      ...(typeof item.role === 'string' ? { role: item.role } : {}),
      ...(text !== undefined ? { text } : {}),
    });
    const full = { ...item, id, object: 'realtime.item', status: 'completed' };
    this.emit(c, { type: 'conversation.item.added', previous_item_id: previous, item: full });
    this.emit(c, { type: 'conversation.item.done', previous_item_id: previous, item: full });
  }

  /**
   * What a `response.create` without a scenario plan says. The first one is the greeting: the
   * model says the line it was given, in `response.instructions` or in a system message just
   * before; a plain hello when it was given none.
   */
  private defaultPlan(c: SimulatedCall, event: WireFrame): ResponsePlan {
    if (!c.items.some((i) => i.role === 'assistant')) {
      const last = c.items.at(-1);
      const directive =
        typeof event.response?.instructions === 'string'
          ? event.response.instructions
          : last?.type === 'message' && last.role === 'system'
            ? last.text
            : undefined;
      if (directive !== undefined)
        return { say: lineToSay(directive) ?? 'Hello, thanks for calling.' };
    }
    if (event.response?.instructions) return { say: 'Hello, thanks for calling.' };
    const last = c.items.at(-1);
    if (last?.type === 'function_call_output')
      return { say: `Here is what I found: ${(last.text ?? '').slice(0, 160)}` };
    return { say: 'Is there anything else?' };
  }

  // ── responses ────────────────────────────────────────────────────────────────────────────────

  private startResponse(
    c: SimulatedCall,
    plan: ResponsePlan,
    trigger: ResponseTrigger,
    sync = false,
    modality?: 'audio' | 'text',
  ): Run {
    const run = new Run(newId('resp_', 10), trigger);
    this.inner(c).runs.push(run);
    void this.play(c, run, plan, sync, modality ?? this.session(c).modality);
    return run;
  }

  /**
   * One response, event by event ([SDK rt] ResponseCreatedEvent … ResponseDoneEvent). Runs
   * synchronously up to its first pause, so the events a caller of `startResponse` expects at once
   * (`response.created`, the first items) are sent before it returns; `sync` sends everything up
   * to `response.done` at once.
   */
  private async play(
    c: SimulatedCall,
    run: Run,
    plan: ResponsePlan,
    sync: boolean,
    modality: 'audio' | 'text',
  ): Promise<void> {
    const inner = this.inner(c);
    const steps = 2 + words(plan.say).length + (plan.call ? 3 : 0);
    const pace = Math.max(1, Math.floor(this.responseMs / steps));
    const step = async (ms = pace) => {
      if (!sync && ms > 0) await this.sleep(ms);
      if (isOver(c)) throw new CallOver();
    };
    const audio = modality === 'audio';
    const base = {
      object: 'realtime.response',
      id: run.id,
      conversation_id: inner.conversationId,
      output_modalities: [modality],
      max_output_tokens: 'inf',
      audio: {
        output: {
          format: { type: 'audio/pcmu' },
          voice: inner.sessionView.audio?.output?.voice ?? 'alloy',
        },
      },
      metadata: null,
    };
    const output: WireFrame[] = [];
    let functionCall: ResponseOutcome['functionCall'];
    let counted = false;
    try {
      if (isOver(c)) throw new CallOver();
      c.activeResponses++;
      counted = true;
      this.disarmIdle(c);
      this.emit(c, {
        type: 'response.created',
        response: { ...base, status: 'in_progress', status_details: null, output: [], usage: null },
      });
      // [SDK rt] RateLimitsUpdatedEvent: "Emitted at the beginning of a Response".
      this.emit(c, { type: 'rate_limits.updated', rate_limits: rateLimits(c) });
      this.signal(c);
      let outputIndex = 0;
      if (plan.say !== undefined) {
        const item = {
          id: newId('item_', 10),
          object: 'realtime.item',
          type: 'message',
          role: 'assistant',
          status: 'in_progress',
          content: [] as WireFrame[],
        };
        const where = {
          response_id: run.id,
          item_id: item.id,
          output_index: outputIndex,
          content_index: 0,
        };
        const previous = this.addItem(c, { id: item.id, type: 'message', role: 'assistant' });
        this.emit(c, {
          type: 'response.output_item.added',
          response_id: run.id,
          output_index: outputIndex,
          item,
        });
        this.emit(c, { type: 'conversation.item.added', previous_item_id: previous, item });
        this.emit(c, {
          type: 'response.content_part.added',
          ...where,
          part: audio ? { type: 'audio', transcript: '' } : { type: 'text', text: '' },
        });
        // [SDK rt] OutputAudioBufferStarted: "emitted after an audio content part has been added".
        if (audio) this.audioStarted(c, run);
        let spoken = '';
        const chunks = words(plan.say);
        for (const [i, chunk] of chunks.entries()) {
          await step();
          if (run.interrupted) break;
          spoken += chunk;
          this.emit(c, {
            type: audio ? 'response.output_audio_transcript.delta' : 'response.output_text.delta',
            ...where,
            delta: chunk,
          });
          if (plan.bargeIn === 'speech' && i === 0 && chunks.length > 1) {
            run.bargeInItemId = this.speechStarted(c);
            break;
          }
        }
        await step(0);
        const status = run.interrupted ? 'incomplete' : 'completed';
        if (audio) {
          // [SDK rt] these are "Also emitted when a Response is interrupted, incomplete, or cancelled".
          this.emit(c, { type: 'response.output_audio.done', ...where });
          this.emit(c, {
            type: 'response.output_audio_transcript.done',
            ...where,
            transcript: spoken,
          });
          this.emit(c, {
            type: 'response.content_part.done',
            ...where,
            part: { type: 'audio', transcript: spoken },
          });
        } else {
          this.emit(c, { type: 'response.output_text.done', ...where, text: spoken });
          this.emit(c, {
            type: 'response.content_part.done',
            ...where,
            part: { type: 'text', text: spoken },
          });
        }
        const done = {
          ...item,
          status,
          content: [
            audio
              ? { type: 'output_audio', transcript: spoken }
              : { type: 'output_text', text: spoken },
          ],
        };
        this.setItemText(c, item.id, spoken);
        this.emit(c, {
          type: 'response.output_item.done',
          response_id: run.id,
          output_index: outputIndex,
          item: done,
        });
        this.emit(c, { type: 'conversation.item.done', previous_item_id: previous, item: done });
        output.push(done);
        outputIndex++;
      }
      if (plan.call && !run.interrupted) {
        await step();
        const callId = plan.call.callId ?? newId('call_', 8);
        const args = JSON.stringify(plan.call.arguments ?? {});
        const item = {
          id: newId('item_', 10),
          object: 'realtime.item',
          type: 'function_call',
          status: 'in_progress',
          name: plan.call.name,
          call_id: callId,
          arguments: '',
        };
        const fc: SimFunctionCall = {
          callId,
          itemId: item.id,
          responseId: run.id,
          name: plan.call.name,
          status: 'in_progress',
          outputs: 0,
        };
        c.functionCalls.push(fc);
        const where = { response_id: run.id, item_id: item.id, output_index: outputIndex };
        const previous = this.addItem(c, { id: item.id, type: 'function_call' });
        this.emit(c, {
          type: 'response.output_item.added',
          response_id: run.id,
          output_index: outputIndex,
          item,
        });
        this.emit(c, { type: 'conversation.item.added', previous_item_id: previous, item });
        for (const piece of halves(args)) {
          await step();
          if (run.interrupted) break;
          this.emit(c, {
            type: 'response.function_call_arguments.delta',
            ...where,
            call_id: callId,
            delta: piece,
          });
        }
        if (plan.bargeIn === 'arguments' && !run.interrupted)
          run.bargeInItemId = this.speechStarted(c);
        // [SDK rt] ResponseFunctionCallArgumentsDoneEvent: "Also emitted when a Response is
        // interrupted, incomplete, or cancelled" (REF §4.5): with the whole arguments.
        this.emit(c, {
          type: 'response.function_call_arguments.done',
          ...where,
          call_id: callId,
          name: plan.call.name,
          arguments: args,
        });
        fc.status = run.interrupted ? 'incomplete' : 'completed';
        const done = { ...item, status: fc.status, arguments: args };
        this.setItemText(c, item.id, `${plan.call.name}(${args})`);
        this.emit(c, {
          type: 'response.output_item.done',
          response_id: run.id,
          output_index: outputIndex,
          item: done,
        });
        this.emit(c, { type: 'conversation.item.done', previous_item_id: previous, item: done });
        output.push(done);
        functionCall = { callId, itemId: item.id, name: plan.call.name, status: fc.status };
      }
      if (plan.holdMs !== undefined || !sync) await this.hold(run, plan.holdMs ?? pace);
      if (isOver(c)) throw new CallOver();
      c.activeResponses--;
      counted = false;
      run.finished = true;
      const cancelled = run.interrupted;
      this.emit(c, {
        type: 'response.done',
        response: {
          ...base,
          status: cancelled ? 'cancelled' : 'completed',
          status_details: cancelled ? { type: 'cancelled', reason: run.cancelReason } : null,
          output,
          usage: usageOf(c, output),
        },
      });
      run.resolveDone({
        status: cancelled ? 'cancelled' : 'completed',
        ...(functionCall ? { functionCall } : {}),
        ...(run.bargeInItemId ? { bargeInItemId: run.bargeInItemId } : {}),
      });
      // [SDK rt] OutputAudioBufferStopped: "emitted after the full response data has been sent
      // to the client (`response.done`)", once the buffer has drained.
      if (inner.audio.run === run && c.audioPlaying)
        this.scheduleDrain(c, run, plan.tailMs ?? this.audioTailMs);
      else {
        run.resolveDrained();
        this.armIdle(c);
      }
      this.signal(c);
    } catch (error) {
      if (counted) c.activeResponses--;
      run.finished = true;
      const over = error instanceof CallOver ? error : new CallOver();
      run.rejectDone(over);
      run.rejectDrained(over);
      if (!(error instanceof CallOver)) this.fact(c, 'simulator_error', String(error), true);
    }
  }

  // ── the caller ───────────────────────────────────────────────────────────────────────────────

  /**
   * `input_audio_buffer.speech_started`. With `interrupt_response` (the default) VAD cancels the
   * running responses (`turn_detected`) and clears the output audio (REF §4.3: the server
   * truncates unplayed audio itself). Returns the item the turn will create.
   */
  private speechStarted(c: SimulatedCall, itemId = newId('item_', 10)): string {
    this.disarmIdle(c);
    this.emit(c, {
      type: 'input_audio_buffer.speech_started',
      audio_start_ms: this.audioMs(c),
      item_id: itemId,
    });
    if (this.session(c).turnDetection?.interruptResponse !== false) {
      if (c.audioPlaying) this.clearAudio(c);
      for (const run of this.inner(c).runs) run.interrupt('turn_detected');
    }
    return itemId;
  }

  /** The rest of a caller's turn, from `speech_stopped` on (synchronous up to the response). */
  private finishCallerTurn(
    c: SimulatedCall,
    itemId: string,
    text: string,
    options: { respond?: ResponsePlan | false; transcript?: 'early' | 'late' },
  ): CallerTurn {
    const session = this.session(c);
    this.emit(c, {
      type: 'input_audio_buffer.speech_stopped',
      audio_end_ms: this.audioMs(c),
      item_id: itemId,
    });
    const previous = this.addItem(c, { id: itemId, type: 'message', role: 'user' });
    this.emit(c, {
      type: 'input_audio_buffer.committed',
      item_id: itemId,
      previous_item_id: previous,
    });
    const item = {
      id: itemId,
      object: 'realtime.item',
      type: 'message',
      role: 'user',
      status: 'completed',
      content: [{ type: 'input_audio', transcript: null }],
    };
    this.emit(c, { type: 'conversation.item.added', previous_item_id: previous, item });
    this.emit(c, { type: 'conversation.item.done', previous_item_id: previous, item });
    let response: Run | undefined;
    if (options.respond !== false && session.turnDetection?.createResponse !== false)
      response = this.startResponse(
        c,
        options.respond ?? this.inner(c).plans.shift() ?? { say: 'I see.' },
        'vad',
      );
    if (session.transcription) {
      // [SDK rt] ConversationItemInputAudioTranscriptionCompletedEvent: "Transcription runs
      // asynchronously with Response creation, so this event may come before or after the
      // Response events".
      const transcribe = () => {
        if (isOver(c)) return;
        this.emit(c, {
          type: 'conversation.item.input_audio_transcription.delta',
          item_id: itemId,
          content_index: 0,
          delta: text,
        });
        this.emit(c, {
          type: 'conversation.item.input_audio_transcription.completed',
          item_id: itemId,
          content_index: 0,
          transcript: text,
          usage: {
            type: 'tokens',
            input_tokens: 20 + text.length,
            output_tokens: Math.ceil(text.length / 4),
            total_tokens: 20 + text.length + Math.ceil(text.length / 4),
            input_token_details: { audio_tokens: 20 + text.length, text_tokens: 0 },
          },
        });
        this.setItemText(c, itemId, text);
        this.signal(c);
      };
      if (options.transcript === 'late' && response)
        response.done.then(transcribe, () => undefined);
      else transcribe();
    }
    return { itemId, response };
  }

  // ── output audio and the idle timeout ────────────────────────────────────────────────────────

  private audioStarted(c: SimulatedCall, run: Run): void {
    const inner = this.inner(c);
    const previous = inner.audio.run;
    if (inner.audio.timer) this.cancel(inner.audio.timer);
    inner.audio = { run };
    // Audio queued behind audio still playing: one buffer, no second `started`.
    if (c.audioPlaying) previous?.resolveDrained();
    else {
      c.audioPlaying = true;
      this.emit(c, { type: 'output_audio_buffer.started', response_id: run.id });
    }
  }

  private scheduleDrain(c: SimulatedCall, run: Run, tailMs: number): void {
    const inner = this.inner(c);
    inner.audio.drainsAt = Date.now() + tailMs;
    inner.audio.timer = this.after(tailMs, () => {
      if (inner.audio.run !== run || !c.audioPlaying || isOver(c)) return;
      c.audioPlaying = false;
      inner.audio = {};
      inner.lastDrainAudioMs = this.audioMs(c);
      this.emit(c, { type: 'output_audio_buffer.stopped', response_id: run.id });
      run.resolveDrained();
      this.armIdle(c);
      this.signal(c);
    });
  }

  /** [SDK rt] OutputAudioBufferCleared: on a VAD interruption or the client's `.clear`. */
  private clearAudio(c: SimulatedCall): void {
    const inner = this.inner(c);
    const run = inner.audio.run;
    if (!c.audioPlaying || !run) return;
    if (inner.audio.timer) this.cancel(inner.audio.timer);
    c.audioPlaying = false;
    inner.audio = {};
    inner.lastDrainAudioMs = this.audioMs(c);
    this.emit(c, { type: 'output_audio_buffer.cleared', response_id: run.id });
    run.resolveDrained();
  }

  /**
   * [SDK rt] ServerVad.idle_timeout_ms: "applied after the last model response's audio has
   * finished playing"; then InputAudioBufferTimeoutTriggered, the (silent) audio committed as a
   * user item, and a response.
   */
  private armIdle(c: SimulatedCall): void {
    const td = this.session(c).turnDetection;
    if (td?.type !== 'server_vad' || !td.idleTimeoutMs || isOver(c)) return;
    if (c.activeResponses > 0 || c.audioPlaying) return;
    this.disarmIdle(c);
    const inner = this.inner(c);
    inner.idleTimer = this.after(td.idleTimeoutMs * this.idleTimeoutScale, () => {
      inner.idleTimer = undefined;
      if (isOver(c) || c.sockets.size === 0) return;
      const itemId = newId('item_', 10);
      this.emit(c, {
        type: 'input_audio_buffer.timeout_triggered',
        audio_start_ms: inner.lastDrainAudioMs,
        audio_end_ms: this.audioMs(c),
        item_id: itemId,
      });
      const previous = this.addItem(c, { id: itemId, type: 'message', role: 'user' });
      this.emit(c, {
        type: 'input_audio_buffer.committed',
        item_id: itemId,
        previous_item_id: previous,
      });
      const item = {
        id: itemId,
        object: 'realtime.item',
        type: 'message',
        role: 'user',
        status: 'completed',
        content: [{ type: 'input_audio', transcript: null }],
      };
      this.emit(c, { type: 'conversation.item.added', previous_item_id: previous, item });
      this.emit(c, { type: 'conversation.item.done', previous_item_id: previous, item });
      c.idleTimeouts++;
      this.log(c, {
        dir: 'note',
        type: 'idle_timeout',
        text: `idle timeout ${c.idleTimeouts} (${td.idleTimeoutMs} ms of silence)`,
      });
      if (td.createResponse)
        this.startResponse(
          c,
          inner.plans.shift() ?? { say: 'Are you still there?' },
          'idle_timeout',
        );
      this.signal(c);
    });
  }

  private disarmIdle(c: SimulatedCall): void {
    const inner = this.inner(c);
    if (inner.idleTimer) this.cancel(inner.idleTimer);
    inner.idleTimer = undefined;
  }

  // ── scenarios ────────────────────────────────────────────────────────────────────────────────

  private runScenario(c: SimulatedCall, name: string): void {
    const scenario = scenarioNamed(name);
    if (!scenario) return;
    this.log(c, { dir: 'note', type: 'scenario', text: `scenario ${name}: ${scenario.summary}` });
    scenario.run(this.context(c)).then(
      () => this.log(c, { dir: 'note', type: 'scenario', text: `scenario ${name} finished` }),
      (error: unknown) => {
        if (error instanceof CallOver)
          this.log(c, {
            dir: 'note',
            type: 'scenario',
            text: `scenario ${name} stopped: the call is over`,
          });
        else this.fact(c, 'simulator_error', `scenario ${name} failed: ${String(error)}`, true);
      },
    );
  }

  private context(c: SimulatedCall): ScenarioContext {
    const inner = this.inner(c);
    const live = () => {
      if (isOver(c)) throw new CallOver();
    };
    return {
      callId: c.id,
      paceMs: this.responseMs,
      workerWaitMs: this.workerWaitMs,
      goodbyeTailMs: this.goodbyeTailMs,
      ...(c.goodbyeHoldMs !== undefined ? { goodbyeHoldMs: c.goodbyeHoldMs } : {}),
      ghostTimeoutMs: this.ghostTimeoutMs,
      reattachWaitMs: this.reattachWaitMs,
      session: () => this.session(c),
      sleep: async (ms) => {
        await this.sleep(ms);
        live();
      },
      received: () => c.received.length,
      waitForClient: (match, options = {}) =>
        this.until(
          c,
          () => c.received.slice(options.since ?? 0).find((r) => match(r.event))?.event,
          options.timeoutMs ?? this.workerWaitMs,
        ),
      nextResponse: (options = {}) => {
        const from = options.after ? inner.runs.indexOf(options.after as Run) + 1 : 0;
        return this.until(
          c,
          () =>
            inner.runs
              .slice(from)
              .find((r) => options.trigger === undefined || r.trigger === options.trigger),
          options.timeoutMs ?? this.workerWaitMs,
        );
      },
      lastResponse: () => inner.runs.at(-1),
      respond: (plan) => {
        live();
        return this.startResponse(c, plan, 'server');
      },
      planNext: (plan) => {
        inner.plans.push(plan);
      },
      callerSpeaks: async (text, options = {}) => {
        live();
        if (this.session(c).turnDetection === null) {
          this.fact(c, 'no_vad', 'turn_detection is null: the caller is never heard', true);
          return { itemId: undefined, response: undefined };
        }
        const itemId = options.itemId ?? this.speechStarted(c);
        await this.sleep(this.responseMs * 2);
        live();
        return this.finishCallerTurn(c, itemId, text, options);
      },
      dtmf: (key) => {
        live();
        // [SDK rt] InputAudioBufferDtmfEventReceivedEvent has no event_id ([OAS] example too).
        this.emit(
          c,
          {
            type: 'input_audio_buffer.dtmf_event_received',
            event: key,
            received_at: Math.floor(Date.now() / 1000),
          },
          false,
        );
      },
      junk: (frame, label) => {
        live();
        let delivered = 0;
        for (const socket of c.sockets)
          if (socket.readyState === socket.OPEN) {
            socket.send(frame);
            delivered++;
          }
        this.log(c, { dir: 'out', type: `(junk: ${label})`, text: frame, delivered });
      },
      rotate: (code) => {
        live();
        this.log(c, {
          dir: 'note',
          type: 'rotation',
          text: `backend rotation: close ${code} while the call lives`,
        });
        for (const socket of c.sockets) {
          inner.closedBy.set(socket, 'server');
          socket.close(code);
        }
      },
      waitForAttach: async (connections, timeoutMs) =>
        (await this.until(
          c,
          () => (c.connections > connections && c.sockets.size > 0 ? true : undefined),
          timeoutMs,
        )) === true,
      connections: () => c.connections,
      waitForEnd: async (timeoutMs) =>
        (await this.until(c, () => (isOver(c) ? true : undefined), timeoutMs, true)) === true,
      waitForIdleTimeouts: async (count, timeoutMs) =>
        (await this.until(c, () => (c.idleTimeouts >= count ? true : undefined), timeoutMs)) ===
        true,
      callerHangsUp: () => {
        live();
        this.callerHangsUp(c.id);
      },
      serverDrops: (why) => {
        live();
        this.fact(c, 'server_dropped', why, true);
        c.state = 'ended';
        c.timeline.ended = Date.now();
        this.drop(c, 'server');
      },
      note: (kind, text, warn = false) => this.fact(c, kind, text, warn),
    };
  }

  // ── plumbing ─────────────────────────────────────────────────────────────────────────────────

  private must(callId: string): SimulatedCall {
    const c = this.calls.get(callId);
    if (!c) throw new Error(`No simulated call ${callId}.`);
    return c;
  }

  private inner(c: SimulatedCall): CallInner {
    let inner = this.inners.get(c.id);
    if (!inner) {
      inner = {
        waiters: new Set(),
        runs: [],
        plans: [],
        session: DEFAULT_SESSION,
        sessionView: {},
        conversationId: newId('conv_', 10),
        sessionId: newId('sess_', 10),
        audio: {},
        lastDrainAudioMs: 0,
        scenarioStarted: false,
        closedBy: new WeakMap(),
      };
      this.inners.set(c.id, inner);
      if (c.acceptBody !== undefined) inner.session = effectiveSession(c.acceptBody);
      inner.sessionView = sessionView(c, inner, c.acceptBody);
    }
    return inner;
  }

  private session(c: SimulatedCall): EffectiveSession {
    return this.inner(c).session;
  }

  private end(c: SimulatedCall, code: number, why: string): void {
    if (c.state !== 'ended') this.log(c, { dir: 'note', type: 'ended', text: why });
    c.state = 'ended';
    c.timeline.ended ??= Date.now();
    this.stopTimers(c);
    const inner = this.inner(c);
    for (const socket of c.sockets) {
      inner.closedBy.set(socket, 'server');
      socket.close(code);
    }
    this.signal(c);
  }

  /** The socket goes without a close frame (the worker sees 1006). */
  private drop(c: SimulatedCall, by: 'server' | 'caller'): void {
    this.stopTimers(c);
    const inner = this.inner(c);
    for (const socket of c.sockets) {
      inner.closedBy.set(socket, by);
      socket.terminate();
    }
    this.signal(c);
  }

  private stopTimers(c: SimulatedCall): void {
    const inner = this.inner(c);
    if (inner.audio.timer) this.cancel(inner.audio.timer);
    this.disarmIdle(c);
  }

  private emit(c: SimulatedCall, event: Record<string, unknown>, withEventId = true): void {
    const frame = withEventId ? { event_id: newId('event_', 10), ...event } : event;
    const text = JSON.stringify(frame);
    let delivered = 0;
    for (const socket of c.sockets)
      if (socket.readyState === socket.OPEN) {
        socket.send(text);
        delivered++;
      }
    this.log(c, { dir: 'out', type: String(frame.type), event: frame, delivered });
  }

  private emitTo(c: SimulatedCall, ws: WebSocket, event: Record<string, unknown>): void {
    const frame: Record<string, unknown> = { event_id: newId('event_', 10), ...event };
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
    this.log(c, { dir: 'out', type: String(frame.type), event: frame, delivered: 1 });
  }

  private log(c: SimulatedCall, entry: Omit<SimLogEntry, 'at'>): void {
    if (c.log.length < LOG_LIMIT) c.log.push({ at: Date.now(), ...entry });
  }

  private fact(c: SimulatedCall, kind: string, text: string, warn = false): void {
    const at = Date.now();
    c.facts.push({ at, kind, text, warn });
    this.log(c, { dir: 'note', type: kind, text, warn });
  }

  private addItem(c: SimulatedCall, item: Omit<SimItem, 'previousItemId'>): string | null {
    const previous = c.items.at(-1)?.id ?? null;
    c.items.push({ ...item, previousItemId: previous });
    return previous;
  }

  private setItemText(c: SimulatedCall, id: string, text: string): void {
    const item = c.items.find((i) => i.id === id);
    if (item) item.text = text;
  }

  private audioMs(c: SimulatedCall): number {
    const epoch = this.inner(c).epoch;
    return epoch === undefined ? 0 : Date.now() - epoch;
  }

  /** Wakes the scenario waits of a call: something happened. */
  private signal(c: SimulatedCall): void {
    for (const waiter of [...this.inner(c).waiters]) waiter();
  }

  /**
   * Resolves with `check()` once it is defined (re-checked on every signal), undefined after
   * `timeoutMs`; rejects with CallOver when the call ends first (resolves undefined if `endOk`).
   */
  private until<T>(
    c: SimulatedCall,
    check: () => T | undefined,
    timeoutMs: number,
    endOk = false,
  ): Promise<T | undefined> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    if (isOver(c)) return endOk ? Promise.resolve(undefined) : Promise.reject(new CallOver());
    const waiters = this.inner(c).waiters;
    return new Promise((resolve, reject) => {
      const finish = () => {
        this.cancel(timer);
        waiters.delete(waiter);
      };
      const waiter = () => {
        const value = check();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (isOver(c)) {
          finish();
          if (endOk) resolve(undefined);
          else reject(new CallOver());
        }
      };
      const timer = this.after(timeoutMs, () => {
        waiters.delete(waiter);
        resolve(undefined);
      });
      waiters.add(waiter);
    });
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  private cancel(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** Sleeps `ms`, or less: an interrupted (cancelled) run stops holding at once. */
  private hold(run: Run, ms: number): Promise<void> {
    if (run.interrupted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        run.wakers.delete(wake);
        this.cancel(timer);
        resolve();
      };
      const timer = this.after(ms, wake);
      run.wakers.add(wake);
    });
  }
}

function isOver(c: SimulatedCall): boolean {
  return c.state === 'ended' || c.state === 'failed' || c.state === 'rejected';
}

/** The session as the server runs it: defaults where the accept body said nothing. */
function effectiveSession(body: unknown): EffectiveSession {
  const b = isRecord(body) ? body : {};
  const audio = isRecord(b.audio) ? b.audio : {};
  const input = isRecord(audio.input) ? audio.input : {};
  const td = input.turn_detection;
  let turnDetection = DEFAULT_SESSION.turnDetection;
  if (td === null) turnDetection = null;
  else if (isRecord(td))
    turnDetection = {
      type: td.type === 'semantic_vad' ? 'semantic_vad' : 'server_vad',
      createResponse: td.create_response !== false,
      interruptResponse: td.interrupt_response !== false,
      idleTimeoutMs:
        td.type === 'server_vad' && typeof td.idle_timeout_ms === 'number'
          ? td.idle_timeout_ms
          : null,
    };
  const modalities = b.output_modalities;
  return {
    modality: Array.isArray(modalities) && modalities[0] === 'text' ? 'text' : 'audio',
    turnDetection,
    transcription: isRecord(input.transcription),
  };
}

/** `session.created`'s session: the accept body with the server's defaults filled in. */
function sessionView(c: SimulatedCall, inner: CallInner, body: unknown): WireFrame {
  const b = isRecord(body) ? body : {};
  const audio = isRecord(b.audio) ? b.audio : {};
  const input = isRecord(audio.input) ? audio.input : {};
  const out = isRecord(audio.output) ? audio.output : {};
  const td = inner.session.turnDetection;
  return {
    type: 'realtime',
    object: 'realtime.session',
    id: inner.sessionId,
    model: b.model ?? 'gpt-realtime',
    output_modalities: b.output_modalities ?? ['audio'],
    instructions: b.instructions ?? 'You are a helpful assistant.',
    tools: b.tools ?? [],
    tool_choice: b.tool_choice ?? 'auto',
    max_output_tokens: b.max_output_tokens ?? 'inf',
    tracing: b.tracing ?? null,
    truncation: b.truncation ?? 'auto',
    prompt: b.prompt ?? null,
    expires_at: Math.floor((c.timeline.created ?? Date.now()) / 1000) + 3600,
    include: b.include ?? null,
    audio: {
      input: {
        // SIP: the codec negotiated in SDP (G.711 μ-law here).
        format: { type: 'audio/pcmu' },
        transcription: input.transcription ?? null,
        noise_reduction: input.noise_reduction ?? null,
        turn_detection:
          input.turn_detection === null || td === null
            ? null
            : {
                type: td.type,
                ...(td.type === 'server_vad'
                  ? {
                      threshold: 0.5,
                      prefix_padding_ms: 300,
                      silence_duration_ms: 500,
                      idle_timeout_ms: td.idleTimeoutMs,
                    }
                  : {
                      eagerness:
                        (isRecord(input.turn_detection) && input.turn_detection.eagerness) ||
                        'auto',
                    }),
                create_response: td.createResponse,
                interrupt_response: td.interruptResponse,
              },
      },
      output: {
        format: { type: 'audio/pcmu' },
        voice: out.voice ?? 'alloy',
        speed: out.speed ?? 1,
      },
    },
  };
}

/**
 * [SDK rt] RealtimeResponseUsage with its input/output token details (cached tokens are a subset
 * of input tokens). Input grows with the conversation, as context does.
 */
function usageOf(c: SimulatedCall, output: readonly WireFrame[]): WireFrame {
  const spoken = output
    .map((item) =>
      item.type === 'message'
        ? String(item.content?.[0]?.transcript ?? item.content?.[0]?.text ?? '')
        : String(item.arguments ?? ''),
    )
    .join(' ');
  const textOut = Math.max(1, Math.ceil(spoken.length / 4));
  const audioOut = output.some((i) => i.type === 'message') ? Math.ceil(spoken.length / 2) : 0;
  const textIn = 120 + c.items.length * 12;
  const audioIn = c.items.filter((i) => i.role === 'user').length * 40;
  const cached = Math.min(textIn, 64 * Math.floor(c.items.length / 2));
  return {
    total_tokens: textIn + audioIn + textOut + audioOut,
    input_tokens: textIn + audioIn,
    output_tokens: textOut + audioOut,
    input_token_details: {
      text_tokens: textIn,
      audio_tokens: audioIn,
      image_tokens: 0,
      cached_tokens: cached,
      cached_tokens_details: { text_tokens: cached, audio_tokens: 0, image_tokens: 0 },
    },
    output_token_details: { text_tokens: textOut, audio_tokens: audioOut },
  };
}

function rateLimits(c: SimulatedCall): WireFrame[] {
  const used = c.functionCalls.length + c.items.length;
  return [
    { name: 'requests', limit: 5000, remaining: 4999 - used, reset_seconds: 0.012 },
    { name: 'tokens', limit: 40_000, remaining: 36_000 - used * 100, reset_seconds: 0.6 },
  ];
}

function errorEvent(
  code: string,
  message: string,
  clientEventId: string | null = null,
  param: string | null = null,
): Record<string, unknown> {
  // [SDK rt] RealtimeErrorEvent { event_id, type: 'error', error: RealtimeError } (REF §4.2).
  return {
    type: 'error',
    error: { type: 'invalid_request_error', code, message, param, event_id: clientEventId },
  };
}

/** Transcript deltas: a few words each. */
function words(text: string | undefined): string[] {
  if (!text) return [];
  const parts = text.match(/\S+\s*/g) ?? [text];
  const chunks: string[] = [];
  for (let i = 0; i < parts.length; i += 3) chunks.push(parts.slice(i, i + 3).join(''));
  return chunks;
}

/** Arguments deltas: the JSON in two pieces. */
function halves(text: string): string[] {
  const mid = Math.ceil(text.length / 2);
  return text.length < 2 ? [text] : [text.slice(0, mid), text.slice(mid)];
}

function newId(prefix: string, bytes = 6): string {
  return `${prefix}${randomBytes(bytes).toString('hex')}`;
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function refuse(socket: Duplex, status: number, code: string): void {
  const body = JSON.stringify(
    apiError(
      code,
      code === 'call_id_not_found' ? 'No session found for the provided call_id' : code,
    ),
  );
  socket.write(
    `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  socket.end();
}

/**
 * The line an instruction tells the model to say, as a model would pick it out: the quoted text
 * of its last paragraph, or what follows its colon (`Greet the caller: Thanks for calling…`).
 */
function lineToSay(instruction: string): string | undefined {
  const paragraph =
    instruction
      .trim()
      .split(/\n\s*\n/)
      .at(-1)
      ?.trim() ?? '';
  const quoted = /["“]([^"”]+)["”]/.exec(paragraph)?.[1]?.trim();
  if (quoted) return quoted;
  const said = /^[^:\n]{1,80}:\s*(\S[\s\S]*)$/.exec(paragraph)?.[1]?.trim();
  return said || undefined;
}
