import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import type { SessionConfig } from '#core/calls/session-config';
import type { MetricPoint } from '#core/observability/metrics';
import type { SessionEnd } from '#core/sideband/call-session-machine';
import type { WireEvent } from '#core/wire';
import { CallSession } from '../../containers/sideband/src/call-session';
import { localCallsConfig } from '../../local/calls';
import {
  callRecord,
  FakeCallStore,
  FakeCallsApi,
  FakeRecorder,
  FakeToolCallClaims,
  FakeToolRunner,
  functionCallItem,
  memoryLogger,
  until,
} from '../support/sideband-fakes';
import { holdsFor } from '../support/webhooks';

/**
 * The call session's shell on a real socket, against a minimal Realtime server in this process:
 * what lives in the shell (frame parsing, `maxPayload`, a second socket for a reattach, ports that
 * throw) rather than in the machine.
 */

/**
 * Accepts sideband sockets (or refuses the next `refuse` upgrades with `refuseStatus`, or leaves
 * the next `hang` unanswered) and keeps what it got.
 */
class MiniRealtime {
  readonly sockets: WebSocket[] = [];
  readonly received: WireEvent[][] = [];
  refuse = 0;
  refuseStatus = 404;
  refused = 0;
  hang = 0;
  private readonly hung: import('node:stream').Duplex[] = [];
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly http: Server = createServer((_req, res) => res.writeHead(404).end());

  async start(): Promise<string> {
    this.http.on('upgrade', (req, socket, head) => {
      if (this.hang > 0) {
        this.hang--;
        this.hung.push(socket);
        return;
      }
      if (this.refuse > 0) {
        this.refuse--;
        this.refused++;
        socket.end(
          `HTTP/1.1 ${this.refuseStatus} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
        );
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const frames: WireEvent[] = [];
        this.sockets.push(ws);
        this.received.push(frames);
        ws.on('message', (data) => frames.push(JSON.parse(String(data)) as WireEvent));
      });
    });
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    return `ws://127.0.0.1:${(this.http.address() as AddressInfo).port}/v1/realtime`;
  }

  /** The socket attached last. */
  get latest(): WebSocket {
    const ws = this.sockets.at(-1);
    if (!ws) throw new Error('nothing attached');
    return ws;
  }

  /** Client events of one type, over every socket. */
  sent(type: string): WireEvent[] {
    return this.received.flat().filter((e) => e.type === type);
  }

  /** A function call that completed: its arguments, then its item (realtime.d.ts). */
  toolCall(fnCallId: string, name: string, args: unknown, ws = this.latest): void {
    const text = JSON.stringify(args);
    ws.send(
      JSON.stringify({
        type: 'response.function_call_arguments.done',
        response_id: 'resp_1',
        item_id: `item_${fnCallId}`,
        call_id: fnCallId,
        name,
        arguments: text,
      }),
    );
    ws.send(
      JSON.stringify({
        type: 'response.output_item.done',
        response_id: 'resp_1',
        item: functionCallItem(fnCallId, name, text),
      }),
    );
  }

  async stop(): Promise<void> {
    for (const socket of this.hung) socket.destroy();
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    await new Promise((resolve) => this.http.close(resolve));
  }
}

const servers: MiniRealtime[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function setUp() {
  const server = new MiniRealtime();
  servers.push(server);
  const realtimeUrl = await server.start();
  const config = localCallsConfig({ noSpeechTimeoutMs: 0 });
  const session = config.policy.sessions.default as SessionConfig;
  const calls = new FakeCallStore();
  const api = new FakeCallsApi();
  const tools = new FakeToolRunner();
  const claims = new FakeToolCallClaims();
  const log = memoryLogger();
  const metrics: MetricPoint[] = [];
  const record = callRecord({ callId: 'rtc_shell', acceptedAt: Date.now() });
  calls.put(record);
  const open = (
    greet: boolean,
    recorder = new FakeRecorder(),
    extra: Partial<ConstructorParameters<typeof CallSession>[3]> = {},
  ) => {
    const s = new CallSession(record, session, greet, {
      config,
      calls,
      api,
      tools,
      claims,
      recorder,
      realtimeUrl,
      apiKey: async () => 'sk-test',
      owner: 'worker-1',
      clock: Date.now,
      log,
      pingIntervalMs: 60_000,
      metrics: (points) => metrics.push(...points),
      ...extra,
    });
    let end: SessionEnd | undefined;
    void s.ended.then((e) => {
      end = e;
    });
    return { session: s, recorder, ended: () => end };
  };
  return { server, calls, api, tools, claims, log, metrics, open };
}

describe('the call session on a socket', () => {
  it('ignores frames that are not events and unknown event types, logs a few, and goes on', async () => {
    const t = await setUp();
    const call = t.open(true);
    expect(await call.session.attach()).toBe('attached');
    const ws = t.server.latest;
    for (const junk of ['null', '[]', '42', '"text"', '{"type":"response.done","response":', '{}'])
      ws.send(junk);
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    ws.send(JSON.stringify({ type: 'response.future_event.delta', delta: 'new' }));
    ws.send(JSON.stringify({ type: 'response.future_event.delta', delta: 'new' }));
    t.server.toolCall('call_1', 'lookup_order', { order_number: '1' });
    await until(() => t.server.sent('conversation.item.create').length === 1, 3000, 'the output');
    expect(
      t.log.lines.filter((l) => l === 'warn: ignored a frame that is not an event'),
    ).toHaveLength(5);
    expect(t.log.lines.filter((l) => l === 'debug: ignored an unknown event type')).toHaveLength(1);
    expect(call.ended()).toBeUndefined();
  });

  it('refuses a frame above 1 MiB (maxPayload) instead of buffering it, and reattaches once', async () => {
    const t = await setUp();
    const call = t.open(true);
    await call.session.attach();
    t.server.latest.send(
      JSON.stringify({ type: 'response.output_text.delta', delta: 'x'.repeat(1_100_000) }),
    );
    // The socket it refused the frame on is closed (1009); the call itself may well live.
    await until(() => t.server.sockets.length === 2, 3000, 'the reattach');
    // The server sees the new socket before the worker's side has opened it.
    await until(
      () => call.recorder.parts.some((p) => p.kind === 'event' && p.name === 'reattached'),
      3000,
      'the reattach recorded',
    );
    expect(call.recorder.parts).toContainEqual({
      kind: 'event',
      name: 'reattached',
      detail: { code: 1009, reattaches: 1 },
    });
    expect(call.ended()).toBeUndefined();
  });

  it('turns a tool runner that throws into the tool error output, never an unhandled rejection', async () => {
    const t = await setUp();
    t.tools.impl = async () => {
      throw new Error('runner bug');
    };
    const call = t.open(true);
    await call.session.attach();
    t.server.toolCall('call_1', 'lookup_order', { order_number: '1' });
    const [output] = await until(
      () => t.server.sent('conversation.item.create').length === 1,
      3000,
      'the output',
    ).then(() => t.server.sent('conversation.item.create'));
    expect(output?.item.call_id).toBe('call_1');
    expect(JSON.parse(output?.item.output)).toEqual({
      error: { code: 'tool_failed', message: 'The lookup_order tool failed.' },
    });
    expect(call.recorder.parts).toContainEqual(
      expect.objectContaining({
        kind: 'tool',
        status: 'failed',
        error: expect.stringContaining('runner bug'),
      }),
    );
  });

  it('retries a claim that threw, and runs the tool once', async () => {
    const t = await setUp();
    t.claims.failNext = 1;
    const call = t.open(true);
    await call.session.attach();
    t.server.toolCall('call_1', 'lookup_order', { order_number: '1' });
    await until(() => t.server.sent('conversation.item.create').length === 1, 3000, 'the output');
    expect(t.claims.attempts).toEqual(['call_1', 'call_1']);
    expect(t.tools.runs).toHaveLength(1);
  });

  it('reattaches once with a second socket after a clean close it did not cause, and the call goes on', async () => {
    const t = await setUp();
    const call = t.open(true);
    await call.session.attach();
    t.server.latest.close(1001);
    await until(() => t.server.sockets.length === 2, 3000, 'the reattach');
    t.server.toolCall('call_2', 'lookup_order', { order_number: '2' });
    await until(() => (t.server.received[1] ?? []).length >= 1, 3000, 'the output');
    expect(t.server.received[1]?.[0]?.item?.call_id).toBe('call_2');
    // The greeting was the first socket's only.
    expect(t.server.sent('response.create').filter((e) => e.response?.instructions)).toHaveLength(
      1,
    );
    expect(call.ended()).toBeUndefined();
    await until(() => t.calls.records.get('rtc_shell')?.reattaches === 1, 3000, 'the record');
    t.server.latest.terminate();
    await until(() => call.ended() !== undefined, 3000, 'the end');
    expect(call.ended()?.reason).toBe('caller_hung_up');
    expect(call.recorder.parts).toContainEqual(
      expect.objectContaining({ kind: 'event', name: 'reattached' }),
    );
  });

  it('ends the call when the reattach finds it gone (404)', async () => {
    const t = await setUp();
    const call = t.open(true);
    await call.session.attach();
    t.server.refuse = 1;
    t.server.latest.close(1000);
    await until(() => call.ended() !== undefined, 3000, 'the end');
    expect(t.server.refused).toBe(1);
    expect(call.ended()).toEqual({ reason: 'normal_closure', code: 1000, handedOff: false });
    expect(t.calls.records.get('rtc_shell')?.endReason).toBe('normal_closure');
  });

  it('on a hand-off, finishes a running tool and stores its output; the next session sends it', async () => {
    const t = await setUp();
    let finish: () => void = () => undefined;
    t.tools.impl = (_name, args) =>
      new Promise((resolve) => {
        finish = () => resolve({ output: `{"late":${args}}` });
      });
    const first = t.open(true);
    await first.session.attach();
    t.server.toolCall('call_slow', 'lookup_order', { order_number: '7' });
    await until(() => t.tools.runs.length === 1, 3000, 'the tool to start');
    const handedOff = first.session.handOff();
    await until(() => t.server.latest.readyState === t.server.latest.CLOSED, 3000, 'the close');
    // Still running: the hand-off waits for it.
    expect(first.ended()).toBeUndefined();
    finish();
    await handedOff;
    expect(first.ended()).toEqual({ reason: 'handed_off', code: 1000, handedOff: true });
    expect(t.server.received[0]?.filter((e) => e.type === 'conversation.item.create')).toEqual([]);
    expect(t.claims.items.get('rtc_shell/call_slow')).toMatchObject({
      delivered: false,
      stored: { output: '{"late":{"order_number":"7"}}', status: 'done' },
    });
    // The worker that takes the call over.
    const second = t.open(false);
    await second.session.attach();
    await until(() => (t.server.received[1] ?? []).length >= 2, 3000, 'the delivery');
    expect(t.server.received[1]).toEqual([
      {
        type: 'conversation.item.create',
        item: {
          type: 'function_call_output',
          call_id: 'call_slow',
          output: '{"late":{"order_number":"7"}}',
        },
      },
      { type: 'response.create' },
    ]);
    expect(t.claims.items.get('rtc_shell/call_slow')?.delivered).toBe(true);
    expect(t.tools.runs).toHaveLength(1);
  });

  it('holds back what the socket says while the lease is in doubt, and acts on it once confirmed', async () => {
    const t = await setUp();
    let held = true;
    let doubts = 0;
    const lease = {
      held: () => held,
      doubt: () => {
        doubts++;
      },
    };
    const call = t.open(true, new FakeRecorder(), { lease });
    await call.session.attach();
    await until(() => t.server.sent('response.create').length === 1, 3000, 'the greeting');
    held = false;
    t.server.toolCall('call_1', 'lookup_order', { order_number: '1' });
    t.server.latest.send(
      JSON.stringify({
        type: 'conversation.item.input_audio_transcription.completed',
        item_id: 'item_c',
        transcript: 'Where is my order?',
      }),
    );
    await until(() => doubts === 1, 3000, 'the worker asked to renew');
    // Proves that nothing was acted on while in doubt: a claim, a tool run and a transcript take
    // milliseconds here (in-memory fakes, a loopback socket).
    await holdsFor(
      () =>
        t.claims.attempts.length === 0 && !call.recorder.parts.some((p) => p.kind === 'transcript'),
      100,
      'nothing acted on',
    );
    held = true;
    call.session.resume();
    await until(() => t.server.sent('conversation.item.create').length === 1, 3000, 'the output');
    expect(t.tools.runs).toHaveLength(1);
    expect(call.recorder.parts.filter((p) => p.kind === 'transcript')).toHaveLength(1);
    expect(doubts).toBe(1);
  });

  it('on a lost lease drops the socket and what was held back, without a hang-up or an end', async () => {
    const t = await setUp();
    let held = true;
    const call = t.open(true, new FakeRecorder(), { lease: { held: () => held, doubt: () => {} } });
    await call.session.attach();
    await until(() => t.server.sent('response.create').length === 1, 3000, 'the greeting');
    held = false;
    t.server.toolCall('call_1', 'lookup_order', { order_number: '1' });
    t.server.latest.send(
      JSON.stringify({
        type: 'conversation.item.input_audio_transcription.completed',
        item_id: 'item_c',
        transcript: 'Hello?',
      }),
    );
    await until(() =>
      t.log.lines.includes('warn: lease in doubt: holding the session until it is confirmed'),
    );
    const ws = t.server.latest;
    await call.session.loseLease();
    expect(call.ended()).toEqual({ reason: 'handed_off', code: 1006, handedOff: true });
    await until(() => ws.readyState === ws.CLOSED, 3000, 'the socket dropped');
    expect(t.api.hangups).toEqual([]);
    expect(t.calls.transitions.filter((x) => x.to === 'ended')).toEqual([]);
    expect(t.claims.attempts).toEqual([]);
    expect(call.recorder.parts.filter((p) => p.kind === 'transcript')).toEqual([]);
    expect(call.recorder.parts).toContainEqual({ kind: 'event', name: 'lease_lost' });
  });

  it('ends the session on a lost lease when the socket closed while the lease was in doubt', async () => {
    const t = await setUp();
    let held = true;
    const call = t.open(true, new FakeRecorder(), { lease: { held: () => held, doubt: () => {} } });
    await call.session.attach();
    await until(() => t.server.sent('response.create').length === 1, 3000, 'the greeting');
    held = false;
    // The peer closes the socket while the worker cannot act (a caller hanging up, say).
    t.server.latest.terminate();
    await until(() =>
      t.log.lines.includes('warn: lease in doubt: holding the session until it is confirmed'),
    );
    // The close was held back; losing the lease must still end the session (a drain waits on it).
    await call.session.loseLease();
    expect(call.ended()).toMatchObject({ reason: 'handed_off', handedOff: true });
    expect(t.api.hangups).toEqual([]);
    expect(t.calls.transitions.filter((x) => x.to === 'ended')).toEqual([]);
  });

  it('retries an attach refused with a 5xx, left unanswered, or unable to read the key, then attaches', async () => {
    const t = await setUp();
    t.server.refuse = 1;
    t.server.refuseStatus = 503;
    t.server.hang = 1;
    let keyFailures = 1;
    const call = t.open(true, new FakeRecorder(), {
      handshakeTimeoutMs: 200,
      apiKey: async () => {
        if (keyFailures-- > 0) throw new Error('secret unavailable');
        return 'sk-test';
      },
    });
    expect(await call.session.attach()).toBe('attached');
    expect(t.server.refused).toBe(1);
    expect(t.metrics.filter((m) => m.name === 'AttachRetries')).toHaveLength(3);
    expect(t.api.hangups).toEqual([]);
    await until(() => t.server.sent('response.create').length === 1, 3000, 'the greeting');
  });

  it('hangs up and records why once no attach got through within the window', async () => {
    const t = await setUp();
    t.server.refuse = 1000;
    t.server.refuseStatus = 502;
    const call = t.open(true, new FakeRecorder(), { attachWindowMs: 600 });
    expect(await call.session.attach()).toBe('failed');
    expect(t.api.hangups).toEqual(['rtc_shell']);
    expect(call.ended()).toEqual({ reason: 'attach_failed_502', code: 0, handedOff: false });
    expect(t.calls.records.get('rtc_shell')).toMatchObject({
      status: 'ended',
      endReason: 'attach_failed_502',
    });
    expect(t.server.refused).toBeGreaterThan(2);
  });
});
