import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { validateAcceptBody } from '#core/calls/accept-body';
import type { WireEvent } from '#core/wire';
import { apiError, type OpenAiSimulator } from './openai-simulator';

/**
 * OpenAI's SIP calls API and sideband WebSocket, as documented (openai-protocol.md §3–§4),
 * including its pitfalls: `/accept` answers 200 to an invalid body and the sideband then 404s;
 * a REFER can "succeed" and never happen; a caller hang-up closes the socket without a frame.
 */
export type CallState = 'ringing' | 'accepted' | 'failed' | 'ended' | 'rejected';

export interface SimulatedCall {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  state: CallState;
  accepts: number;
  rejects: number;
  acceptBody?: unknown;
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
  readonly received: { event: WireEvent; at: number }[];
  readonly timeline: Record<string, number>;
}

export interface RealtimeSimulatorOptions {
  /** How long a simulated response takes, in ms. */
  readonly responseMs?: number;
}

export class RealtimeSimulator {
  readonly calls = new Map<string, SimulatedCall>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly responseMs: number;

  constructor(
    private readonly api: OpenAiSimulator,
    options: RealtimeSimulatorOptions = {},
  ) {
    this.responseMs = options.responseMs ?? 20;
    this.controlRoutes();
    const call = (id: string | undefined) => (id ? this.calls.get(id) : undefined);
    const gone = {
      status: 404,
      body: apiError('call_id_not_found', 'No session found for the provided call_id'),
    };
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/accept$/, (request, m) => {
      const c = call(m[1]);
      if (!c || c.state === 'ended' || c.state === 'rejected') return gone;
      c.accepts++;
      c.acceptBody = request.body;
      c.timeline.accepted ??= Date.now();
      // Like OpenAI: an invalid body still gets 200, and the call fails afterwards.
      c.state = validateAcceptBody(request.body).length === 0 ? 'accepted' : 'failed';
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
      return { status: 200 };
    });
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/refer$/, (request, m) => {
      const c = call(m[1]);
      if (c?.state !== 'accepted') return gone;
      c.referTarget = String((request.body as { target_uri?: string } | undefined)?.target_uri);
      // A target containing "fail" reproduces the silent REFER failure: 200, then nothing.
      if (!c.referTarget.includes('fail')) setTimeout(() => this.end(c, 1000), 50);
      return { status: 200 };
    });
    api.route('POST', /^\/v1\/realtime\/calls\/([^/]+)\/hangup$/, (_request, m) => {
      const c = call(m[1]);
      if (!c || c.state === 'ended') return gone;
      c.hangups++;
      setTimeout(() => this.end(c, 1000), 5);
      return { status: 200 };
    });
  }

  /** Loopback control routes, so another process (`npm run send -- call`) can play the caller. */
  private controlRoutes(): void {
    const found = (id: string | undefined) => (id ? this.calls.get(id) : undefined);
    const view = (c: SimulatedCall) => ({
      call_id: c.id,
      from: c.from,
      to: c.to,
      state: c.state,
      accepts: c.accepts,
      connections: c.connections,
      timeline: c.timeline,
    });
    this.api.route('POST', /^\/_sim\/calls$/, (request) => {
      const body = (request.body ?? {}) as { from?: string; to?: string };
      return { status: 200, body: view(this.createCall(body)) };
    });
    this.api.route('GET', /^\/_sim\/calls\/([^/]+)$/, (_r, m) => {
      const c = found(m[1]);
      return c
        ? {
            status: 200,
            body: {
              ...view(c),
              received: c.received.map((r) => ({
                type: r.event.type,
                at: r.at,
                item: r.event.item,
              })),
            },
          }
        : { status: 404, body: apiError('not_found', 'No such call.') };
    });
    this.api.route('POST', /^\/_sim\/calls\/([^/]+)\/(say|tool|hangup)$/, (request, m) => {
      const c = found(m[1]);
      if (!c) return { status: 404, body: apiError('not_found', 'No such call.') };
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
      return { status: 200, body: view(c) };
    });
  }

  /** Serves the sideband on the simulator's HTTP server. Call after the simulator started. */
  attach(): void {
    this.api.httpServer?.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** A SIP call arrives at OpenAI: returns its `call_id`, ringing. */
  createCall(parties: { from?: string; to?: string } = {}): SimulatedCall {
    const id = `rtc_u1_${randomBytes(12).toString('hex')}`;
    const c: SimulatedCall = {
      id,
      from: parties.from ?? '+14155550123',
      to: parties.to ?? '+18005550100',
      state: 'ringing',
      accepts: 0,
      rejects: 0,
      hangups: 0,
      sockets: new Set(),
      connections: 0,
      activeResponses: 0,
      conflicts: 0,
      received: [],
      timeline: { created: Date.now() },
    };
    this.calls.set(id, c);
    return c;
  }

  /** The caller says something: a completed transcript, then the model answers (VAD). */
  callerSays(callId: string, text: string): void {
    const c = this.must(callId);
    const itemId = `item_${randomBytes(6).toString('hex')}`;
    this.broadcast(c, { type: 'input_audio_buffer.speech_started', item_id: itemId });
    this.broadcast(c, {
      type: 'conversation.item.input_audio_transcription.completed',
      item_id: itemId,
      content_index: 0,
      transcript: text,
    });
    this.respond(c, `You said: ${text}`);
  }

  /** The model decides to call a tool; returns the function call's `call_id`. */
  requestTool(
    callId: string,
    name: string,
    args: unknown,
    options: { holdMs?: number } = {},
  ): string {
    const c = this.must(callId);
    const fnCallId = `call_${randomBytes(8).toString('hex')}`;
    const responseId = `resp_${randomBytes(6).toString('hex')}`;
    c.activeResponses++;
    this.broadcast(c, {
      type: 'response.created',
      response: { id: responseId, status: 'in_progress' },
    });
    this.broadcast(c, {
      type: 'response.function_call_arguments.done',
      response_id: responseId,
      item_id: `item_${fnCallId}`,
      output_index: 0,
      call_id: fnCallId,
      name,
      arguments: JSON.stringify(args),
    });
    setTimeout(() => {
      c.activeResponses--;
      this.broadcast(c, {
        type: 'response.done',
        response: { id: responseId, status: 'completed', usage: usage(40) },
      });
    }, options.holdMs ?? 0);
    return fnCallId;
  }

  /**
   * A response the server has started (a VAD turn) whose `response.created` has not reached the
   * client yet: a `response.create` sent now gets `conversation_already_has_active_response`.
   */
  startHiddenResponse(callId: string, durationMs: number): void {
    const c = this.must(callId);
    c.activeResponses++;
    const responseId = `resp_${randomBytes(6).toString('hex')}`;
    setTimeout(() => {
      this.broadcast(c, {
        type: 'response.created',
        response: { id: responseId, status: 'in_progress' },
      });
      c.activeResponses--;
      this.broadcast(c, {
        type: 'response.done',
        response: { id: responseId, status: 'completed', usage: usage(10) },
      });
    }, durationMs);
  }

  /**
   * Sends a prepared text frame as is: load generation without per-event JSON work (and, given a
   * Buffer, without encoding it again for every socket).
   */
  sendRaw(callId: string, frame: string | Buffer): void {
    for (const socket of this.must(callId).sockets)
      if (socket.readyState === socket.OPEN) socket.send(frame, { binary: false });
  }

  /** Called for every client event as it arrives (benchmarks measure round trips with it). */
  onClientEvent: ((call: SimulatedCall, event: WireEvent, at: number) => void) | undefined;

  /** Re-sends an event already sent (OpenAI may repeat `function_call_arguments.done`). */
  resend(callId: string, event: Record<string, unknown>): void {
    this.broadcast(this.must(callId), event);
  }

  /** The caller hangs up: OpenAI drops the socket without a close frame (1006 at the client). */
  callerHangsUp(callId: string): void {
    const c = this.must(callId);
    c.state = 'ended';
    c.timeline.ended = Date.now();
    for (const socket of c.sockets) socket.terminate();
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
    this.broadcast(c, {
      type: 'error',
      event_id: null,
      error: {
        type: 'invalid_request_error',
        code: 'session_expired',
        message: 'Your session hit the maximum duration of 60 minutes.',
        param: null,
        event_id: null,
      },
    });
    this.end(c, 1001);
  }

  /** Events of a given type the client sent for a call. */
  sent(callId: string, type: string): WireEvent[] {
    return this.must(callId)
      .received.filter((r) => r.event.type === type)
      .map((r) => r.event);
  }

  close(): void {
    for (const c of this.calls.values()) for (const s of c.sockets) s.terminate();
    this.wss.close();
  }

  private must(callId: string): SimulatedCall {
    const c = this.calls.get(callId);
    if (!c) throw new Error(`No simulated call ${callId}.`);
    return c;
  }

  private end(c: SimulatedCall, code: number): void {
    c.state = 'ended';
    c.timeline.ended ??= Date.now();
    for (const socket of c.sockets) socket.close(code);
  }

  private broadcast(c: SimulatedCall, event: Record<string, unknown>): void {
    const frame = JSON.stringify({ event_id: `event_${randomBytes(6).toString('hex')}`, ...event });
    for (const socket of c.sockets) if (socket.readyState === socket.OPEN) socket.send(frame);
  }

  private respond(
    c: SimulatedCall,
    transcript: string,
    responseId = `resp_${randomBytes(6).toString('hex')}`,
  ): void {
    c.activeResponses++;
    this.broadcast(c, {
      type: 'response.created',
      response: { id: responseId, status: 'in_progress' },
    });
    setTimeout(() => {
      this.broadcast(c, {
        type: 'response.output_audio_transcript.done',
        response_id: responseId,
        item_id: `item_${responseId}`,
        output_index: 0,
        content_index: 0,
        transcript,
      });
      c.activeResponses--;
      this.broadcast(c, {
        type: 'response.done',
        response: { id: responseId, status: 'completed', usage: usage(transcript.length) },
      });
    }, this.responseMs);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/v1/realtime') {
      reject(socket, 404, 'not_found');
      return;
    }
    if (req.headers.authorization !== `Bearer ${this.api.apiKey}`) {
      reject(socket, 401, 'invalid_api_key');
      return;
    }
    const c = this.calls.get(url.searchParams.get('call_id') ?? '');
    if (c?.state !== 'accepted') {
      reject(socket, 404, 'call_id_not_found');
      return;
    }
    const beta = req.headers['openai-beta'] !== undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (beta) {
        ws.send(
          JSON.stringify({
            type: 'error',
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
      c.sockets.add(ws);
      c.connections++;
      c.timeline.attached ??= Date.now();
      ws.on('close', () => c.sockets.delete(ws));
      ws.on('message', (data) => {
        let event: WireEvent;
        try {
          event = JSON.parse(String(data));
        } catch {
          return;
        }
        const at = Date.now();
        c.received.push({ event, at });
        this.onClientEvent?.(c, event, at);
        if (event.type === 'response.create') {
          c.timeline.firstResponseCreate ??= Date.now();
          if (c.activeResponses > 0) {
            c.conflicts++;
            ws.send(
              JSON.stringify({
                type: 'error',
                error: {
                  type: 'invalid_request_error',
                  code: 'conversation_already_has_active_response',
                  message: 'Conversation already has an active response in progress.',
                  param: null,
                  event_id: event.event_id ?? null,
                },
              }),
            );
            return;
          }
          this.respond(
            c,
            event.response?.instructions ? 'Hello, thanks for calling.' : 'Is there anything else?',
          );
        }
      });
      ws.send(
        JSON.stringify({
          type: 'session.created',
          event_id: 'event_1',
          session: { id: `sess_${c.id}`, type: 'realtime', ...(c.acceptBody as object) },
        }),
      );
      ws.send(
        JSON.stringify({
          type: 'conversation.created',
          event_id: 'event_2',
          conversation: { id: `conv_${c.id}` },
        }),
      );
    });
  }
}

function usage(outputTokens: number) {
  return { total_tokens: 100 + outputTokens, input_tokens: 100, output_tokens: outputTokens };
}

function reject(socket: Duplex, status: number, code: string): void {
  const body = JSON.stringify(
    apiError(
      code,
      code === 'call_id_not_found' ? 'No session found for the provided call_id' : code,
    ),
  );
  socket.write(
    `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Unauthorized'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  socket.end();
}
