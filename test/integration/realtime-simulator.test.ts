import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildAcceptBody } from '#core/calls/accept-body';
import { localCallsConfig } from '../../local/calls';
import { OpenAiSimulator } from '../../local/stand-ins/openai-simulator';
import { SCENARIO_NAMES } from '../../local/stand-ins/realtime-scenarios';
import {
  RealtimeSimulator,
  type SimulatedCall,
  type WireFrame,
} from '../../local/stand-ins/realtime-simulator';

/**
 * The Realtime simulator on its own, over real HTTP and WebSocket on loopback, driven by a small
 * reference client that does what a correct worker does (greets, acts on a function call only
 * when its item is `completed`, hangs up or transfers once the audio drained, reattaches once
 * after an unexpected 1000/1001). It checks the simulator, not the project's worker.
 */

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const GOODBYE_TAIL_MS = 600;
let api: OpenAiSimulator;
let sim: RealtimeSimulator;

beforeAll(async () => {
  api = new OpenAiSimulator();
  await api.start();
  sim = new RealtimeSimulator(api, {
    responseMs: 20,
    goodbyeTailMs: GOODBYE_TAIL_MS,
    workerWaitMs: 1500,
    ghostTimeoutMs: 400,
    reattachWaitMs: 1500,
    idleTimeoutScale: 0.02,
  });
  sim.attach();
});
afterAll(async () => {
  sim.close();
  await api.stop();
});

const config = localCallsConfig();
/** The body this project sends, as its builder makes it. */
const PROJECT_BODY = buildAcceptBody(
  config.policy.sessions.default,
  config.tools.map(({ name, description, parameters }) => ({ name, description, parameters })),
  Object.keys(config.transferTargets),
);

async function callsApi(callId: string, action: string, body?: unknown): Promise<number> {
  const response = await fetch(`${api.baseUrl}/realtime/calls/${callId}/${action}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.apiKey}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  await response.text();
  return response.status;
}

async function until<T>(probe: () => T | undefined, timeoutMs = 10_000, what = 'it'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface ClientOptions {
  /** Act on function calls at `response.function_call_arguments.done` (the wrong way). */
  readonly actOnArguments?: boolean;
  /**
   * When to hang up or transfer after end_call / transfer_call: once the audio drained (`drain`,
   * right), at the response's `response.done`, or at the item's `output_item.done` (too early).
   */
  readonly endAt?: 'drain' | 'done' | 'item';
  readonly reattach?: boolean;
}

/** A reference sideband client on a raw `ws` socket. */
class Client {
  readonly frames: string[] = [];
  readonly events: WireFrame[] = [];
  readonly closes: number[] = [];
  closed = false;
  private pending: WireFrame[] = [];
  private endAfter: 'hangup' | 'refer' | undefined;
  private reattached = false;

  constructor(
    readonly callId: string,
    readonly options: ClientOptions = {},
  ) {}

  get types(): string[] {
    return this.events.map((e) => String(e.type));
  }

  /** 101 once open, or the refusal's HTTP status. */
  connect(greet = true): Promise<number> {
    return new Promise((resolve) => {
      const url = `${api.baseUrl.replace(/^http/, 'ws')}/realtime?call_id=${this.callId}`;
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${api.apiKey}` } });
      ws.on('unexpected-response', (_req, res) => {
        res.resume();
        this.closed = true;
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', () => undefined);
      ws.on('open', () => {
        resolve(101);
        if (greet)
          send(ws, { type: 'response.create', response: { instructions: 'Greet the caller.' } });
      });
      ws.on('message', (data) => this.onFrame(ws, String(data)));
      ws.on('close', (code) => {
        this.closes.push(code);
        if (
          this.options.reattach &&
          !this.reattached &&
          (code === 1000 || code === 1001) &&
          !sim.calls.get(this.callId)?.hangups
        ) {
          this.reattached = true;
          void this.connect(false);
        } else this.closed = true;
      });
    });
  }

  private onFrame(ws: WebSocket, text: string): void {
    this.frames.push(text);
    let e: unknown;
    try {
      e = JSON.parse(text);
    } catch {
      return;
    }
    if (
      typeof e !== 'object' ||
      e === null ||
      Array.isArray(e) ||
      typeof (e as WireFrame).type !== 'string'
    )
      return;
    const event = e as WireFrame;
    this.events.push(event);
    const item = event.item ?? {};
    const isCall = item.type === 'function_call';
    const act =
      (this.options.actOnArguments && event.type === 'response.function_call_arguments.done') ||
      (!this.options.actOnArguments &&
        event.type === 'response.output_item.done' &&
        isCall &&
        item.status === 'completed');
    if (act) {
      const name = String(event.name ?? item.name);
      const callId = String(event.call_id ?? item.call_id);
      if (name === 'end_call' || name === 'transfer_call') {
        const action = name === 'end_call' ? 'hangup' : 'refer';
        if (this.options.endAt === 'item' || this.options.actOnArguments) void this.end(action);
        else this.endAfter = action;
      } else this.pending.push({ call_id: callId });
    }
    if (event.type === 'response.done' && this.pending.length > 0) {
      for (const call of this.pending)
        send(ws, {
          type: 'conversation.item.create',
          item: {
            type: 'function_call_output',
            call_id: call.call_id,
            output: '{"status":"shipped"}',
          },
        });
      this.pending = [];
      send(ws, { type: 'response.create' });
    }
    const ending = this.options.endAt === 'done' ? 'response.done' : 'output_audio_buffer.stopped';
    if (event.type === ending && this.endAfter) {
      const action = this.endAfter;
      this.endAfter = undefined;
      void this.end(action);
    }
  }

  private async end(action: 'hangup' | 'refer'): Promise<void> {
    await callsApi(
      this.callId,
      action,
      action === 'refer' ? { target_uri: 'sip:support@example.com' } : undefined,
    );
  }
}

function send(ws: WebSocket, event: Record<string, unknown>): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(event));
}

/** Creates a call with `scenario`, accepts it, attaches the client and waits for the end. */
async function play(
  scenario: string,
  options: ClientOptions = {},
  body: unknown = PROJECT_BODY,
  callOptions: { goodbyeHoldMs?: number } = {},
) {
  const call = sim.createCall({ scenario, ...callOptions });
  expect(await callsApi(call.id, 'accept', body)).toBe(200);
  const client = new Client(call.id, options);
  expect(await client.connect()).toBe(101);
  await until(
    () => (call.state === 'ended' && client.closed ? true : undefined),
    15_000,
    `${scenario} to end`,
  );
  return { call, client, types: client.types };
}

/** The indexes of `expected` found in order in `types` (each after the previous one). */
function inOrder(types: readonly string[], expected: readonly string[], from = 0): number[] {
  const found: number[] = [];
  let i = from;
  for (const type of expected) {
    const j = types.indexOf(type, i);
    if (j < 0)
      throw new Error(
        `expected ${type} after #${i} (${found.length} of ${expected.length} found); got: ${types.slice(i).join(', ')}`,
      );
    found.push(j);
    i = j + 1;
  }
  return found;
}

const warnings = (call: SimulatedCall) => call.facts.filter((f) => f.warn).map((f) => f.text);
const at = (events: WireFrame[], i: number) => events[i] as WireFrame;

describe('accept bodies: 200, then a failed call and a 404 sideband, as OpenAI does', () => {
  it('accepts the body this project builds: the sideband attaches with the session it asked for', async () => {
    const call = sim.createCall();
    expect(await callsApi(call.id, 'accept', PROJECT_BODY)).toBe(200);
    expect(call).toMatchObject({ state: 'accepted', sipStatus: 200, acceptProblems: [] });
    const client = new Client(call.id);
    expect(await client.connect(false)).toBe(101);
    const created = await until(() => client.events.find((e) => e.type === 'session.created'));
    expect(created.session).toMatchObject({
      type: 'realtime',
      model: 'gpt-realtime-2.1',
      audio: {
        output: { voice: 'marin' },
        input: { transcription: { model: expect.any(String) } },
      },
    });
    await until(() => client.events.find((e) => e.type === 'conversation.created'));
    sim.callerHangsUp(call.id);
    await until(() => (client.closed ? true : undefined));
    expect(client.closes).toEqual([1006]);
  });

  const BAD: [string, Record<string, unknown>, string][] = [
    ['no type', { ...PROJECT_BODY, type: undefined }, 'type'],
    [
      'idle_timeout_ms 1000',
      withTurnDetection({ type: 'server_vad', idle_timeout_ms: 1000 }),
      'turn_detection.idle_timeout_ms',
    ],
    [
      'idle_timeout_ms with semantic_vad',
      withTurnDetection({ type: 'semantic_vad', idle_timeout_ms: 10_000 }),
      'turn_detection.idle_timeout_ms',
    ],
    [
      'eagerness "eager"',
      withTurnDetection({ type: 'semantic_vad', eagerness: 'eager' }),
      'turn_detection.eagerness',
    ],
    [
      'VAD threshold',
      withTurnDetection({ type: 'server_vad', threshold: 0.5 }),
      'turn_detection.sip_vad_field',
    ],
    [
      'audio.output.format',
      {
        ...PROJECT_BODY,
        audio: {
          ...PROJECT_BODY.audio,
          output: { voice: 'marin', format: { type: 'audio/pcmu' } },
        },
      },
      'audio.format',
    ],
    [
      'voice {name}',
      { ...PROJECT_BODY, audio: { ...PROJECT_BODY.audio, output: { voice: { name: 'mine' } } } },
      'voice',
    ],
    [
      'transcription model "gpt-5-transcribe"',
      {
        ...PROJECT_BODY,
        audio: { ...PROJECT_BODY.audio, input: { transcription: { model: 'gpt-5-transcribe' } } },
      },
      'transcription.model',
    ],
    [
      'output_modalities both',
      { ...PROJECT_BODY, output_modalities: ['text', 'audio'] },
      'output_modalities',
    ],
    [
      'a tool without parameters',
      { ...PROJECT_BODY, tools: [{ type: 'function', name: 'x' }] },
      'tools.parameters',
    ],
    ['tool_choice "always"', { ...PROJECT_BODY, tool_choice: 'always' }, 'tool_choice'],
    [
      'max_output_tokens 10000',
      { ...PROJECT_BODY, max_output_tokens: 10_000 },
      'max_output_tokens',
    ],
  ];
  it.each(BAD)(
    'answers 200 to %s, then fails the call: SIP 400, sideband 404, hangup 404',
    async (_label, body, rule) => {
      const call = sim.createCall();
      expect(await callsApi(call.id, 'accept', JSON.parse(JSON.stringify(body)))).toBe(200);
      expect(call.state).toBe('failed');
      expect(call.sipStatus).toBe(400);
      expect(call.acceptProblems.map((p) => p.rule)).toContain(rule);
      expect(call.facts.find((f) => f.kind === 'accept_failed')?.warn).toBe(true);
      expect(await new Client(call.id).connect()).toBe(404);
      expect(await callsApi(call.id, 'hangup')).toBe(404);
      expect(await callsApi(call.id, 'accept', PROJECT_BODY)).toBe(404);
    },
  );

  it('accepts a deprecated transcription model, with a warning on the call', async () => {
    const call = sim.createCall();
    const body = {
      ...PROJECT_BODY,
      audio: { ...PROJECT_BODY.audio, input: { transcription: { model: 'gpt-4o-transcribe' } } },
    };
    expect(await callsApi(call.id, 'accept', body)).toBe(200);
    expect(call.state).toBe('accepted');
    expect(call.acceptWarnings.join()).toMatch(/gpt-4o-transcribe.*deprecated/);
    expect(call.facts.some((f) => f.kind === 'accept_warning' && !f.warn)).toBe(true);
    sim.callerHangsUp(call.id);
  });
});

function withTurnDetection(turnDetection: Record<string, unknown>): Record<string, unknown> {
  return {
    ...PROJECT_BODY,
    audio: {
      ...PROJECT_BODY.audio,
      input: { ...PROJECT_BODY.audio.input, turn_detection: turnDetection },
    },
  };
}

describe('response.cancel from the client', () => {
  // [SDK rt] ResponseCancelEvent: "The server will respond with a `response.done` event with a
  // status of `response.status=cancelled`. If there is no response to cancel, the server will
  // respond with an error" (test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts).
  it('ends a held response at once with response.done cancelled (client_cancelled); with none in progress, error response_cancel_not_active', async () => {
    const call = sim.createCall();
    expect(await callsApi(call.id, 'accept', PROJECT_BODY)).toBe(200);
    const events: WireFrame[] = [];
    const ws = new WebSocket(`${api.baseUrl.replace(/^http/, 'ws')}/realtime?call_id=${call.id}`, {
      headers: { Authorization: `Bearer ${api.apiKey}` },
    });
    ws.on('message', (data) => events.push(JSON.parse(String(data)) as WireFrame));
    try {
      await until(() => (events.some((e) => e.type === 'session.created') ? true : undefined));
      // A response the server holds open for a minute: only a cancel can end it within the wait.
      sim.requestTool(call.id, 'lookup_order', { order_number: '1' }, { holdMs: 60_000 });
      const created = await until(() => events.find((e) => e.type === 'response.created'));
      const responseId = String((created.response as WireFrame | undefined)?.id);
      send(ws, { type: 'response.cancel', event_id: 'evt_cancel_1' });
      const done = await until(
        () => events.find((e) => e.type === 'response.done'),
        5_000,
        'response.done after response.cancel',
      );
      expect(done.response).toMatchObject({
        id: responseId,
        status: 'cancelled',
        status_details: { type: 'cancelled', reason: 'client_cancelled' },
      });
      expect(events.some((e) => e.type === 'error')).toBe(false);
      // Nothing in progress now: an error naming the client's event, and the session goes on.
      send(ws, { type: 'response.cancel', event_id: 'evt_cancel_2' });
      const error = await until(() => events.find((e) => e.type === 'error'));
      expect(error.error).toMatchObject({
        code: 'response_cancel_not_active',
        event_id: 'evt_cancel_2',
      });
      expect(call.state).not.toBe('ended');
    } finally {
      ws.close();
      sim.callerHangsUp(call.id);
    }
  });
});

describe('scenario selection', () => {
  it('takes the scenario from the API, the X-Sim-Scenario INVITE header, or the control route, and refuses unknown names', async () => {
    expect(() => sim.createCall({ scenario: 'nope' })).toThrow(
      /Unknown scenario "nope". Scenarios: happy/,
    );
    const byHeader = sim.createCall({
      sipHeaders: [
        { name: 'From', value: 'sip:+14155550123@example.com' },
        { name: 'x-sim-scenario', value: 'dtmf' },
      ],
    });
    expect(byHeader.scenario).toBe('dtmf');
    const base = api.baseUrl.replace(/\/v1$/, '');
    const created = await fetch(`${base}/_sim/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scenario: 'ghost' }),
    });
    const view = (await created.json()) as WireFrame;
    expect(view.scenario).toBe('ghost');
    expect(view.sip_headers).toContainEqual({ name: 'X-Sim-Scenario', value: 'ghost' });
    const refused = await fetch(`${base}/_sim/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scenario: 'nope' }),
    });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as WireFrame).scenarios).toEqual(SCENARIO_NAMES);
    const listed = (await (await fetch(`${base}/_sim/scenarios`)).json()) as WireFrame[];
    expect(listed.map((s) => s.name)).toEqual(SCENARIO_NAMES);
  });

  it('lists the scenarios from the CLI (`send call --scenario list`), and names them on an unknown one (exit 2)', async () => {
    const run = promisify(execFile);
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'local/send.ts', 'call', '--scenario', ...args], {
        cwd: ROOT,
      });
    const listed = await cli('list');
    for (const name of SCENARIO_NAMES) expect(listed.stdout).toContain(name);
    const unknown = await cli('nope').catch((error: { code: number; stderr: string }) => error);
    expect(unknown).toMatchObject({ code: 2 });
    expect((unknown as { stderr: string }).stderr).toMatch(/Unknown scenario "nope"[\s\S]*goodbye/);
  });
});

describe('scenarios: the documented events, in order', () => {
  it('happy: session and conversation, a greeting, a caller turn, a tool call, the answer, then a hang-up without a close frame', async () => {
    const { call, client, types } = await play('happy');
    const e = client.events;
    const greeting = inOrder(types, [
      'session.created',
      'conversation.created',
      'response.created',
      'rate_limits.updated',
      'response.output_item.added',
      'conversation.item.added',
      'response.content_part.added',
      'output_audio_buffer.started',
      'response.output_audio_transcript.delta',
      'response.output_audio.done',
      'response.output_audio_transcript.done',
      'response.content_part.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done',
      'output_audio_buffer.stopped',
    ]);
    const turn = inOrder(
      types,
      [
        'input_audio_buffer.speech_started',
        'input_audio_buffer.speech_stopped',
        'input_audio_buffer.committed',
        'conversation.item.added',
        'conversation.item.done',
        'response.created',
        'rate_limits.updated',
        'conversation.item.input_audio_transcription.completed',
        'response.output_audio_transcript.done',
        'response.output_item.added',
        'response.function_call_arguments.delta',
        'response.function_call_arguments.done',
        'response.output_item.done',
        'conversation.item.done',
        'response.done',
        // the client's function_call_output, then its response.create
        'conversation.item.added',
        'response.created',
        'response.done',
        'output_audio_buffer.stopped',
      ],
      (greeting.at(-1) ?? 0) + 1,
    );
    // Every server event has an event_id; the ids chain the conversation.
    for (const event of e) expect(event.event_id, event.type).toMatch(/^event_/);
    const greetingItem = at(e, greeting[4] ?? 0).item;
    const user = at(e, turn[3] ?? 0);
    expect(user).toMatchObject({
      previous_item_id: greetingItem.id,
      item: { type: 'message', role: 'user' },
    });
    expect(at(e, turn[2] ?? 0)).toMatchObject({
      item_id: user.item.id,
      previous_item_id: greetingItem.id,
    });
    // The caller's transcript arrives after the assistant started answering.
    expect(at(e, turn[7] ?? 0)).toMatchObject({
      item_id: user.item.id,
      transcript: 'Hi, where is my order 1234?',
    });
    const added = at(e, turn[9] ?? 0);
    expect(added.item).toMatchObject({
      type: 'function_call',
      status: 'in_progress',
      name: 'lookup_order',
      arguments: '',
    });
    const args = at(e, turn[11] ?? 0);
    expect(args).toMatchObject({
      call_id: added.item.call_id,
      item_id: added.item.id,
      name: 'lookup_order',
      arguments: '{"order_number":"1234"}',
    });
    expect(at(e, turn[12] ?? 0).item).toMatchObject({
      id: added.item.id,
      status: 'completed',
      arguments: '{"order_number":"1234"}',
    });
    const done = at(e, turn[14] ?? 0).response;
    expect(done).toMatchObject({ status: 'completed', status_details: null });
    expect(done.usage.total_tokens).toBe(done.usage.input_tokens + done.usage.output_tokens);
    expect(done.usage.input_token_details).toMatchObject({
      text_tokens: expect.any(Number),
      audio_tokens: expect.any(Number),
      cached_tokens: expect.any(Number),
      cached_tokens_details: expect.any(Object),
    });
    expect(done.usage.output_token_details).toMatchObject({
      text_tokens: expect.any(Number),
      audio_tokens: expect.any(Number),
    });
    expect(at(e, turn[15] ?? 0)).toMatchObject({
      previous_item_id: added.item.id,
      item: { type: 'function_call_output', call_id: added.item.call_id },
    });
    expect(client.closes).toEqual([1006]);
    expect(call.closes.map((c) => c.by)).toEqual(['caller']);
    expect(call.functionCalls).toMatchObject([
      { name: 'lookup_order', status: 'completed', outputs: 1 },
    ]);
    expect(warnings(call)).toEqual([]);
    // The call is over: attaching again gives 404.
    expect(await new Client(call.id).connect()).toBe(404);
  });

  it('barge-in: the caller cuts the greeting short, then a response calling lookup_order; both are cancelled (turn_detected)', async () => {
    const { call, client, types } = await play('barge-in');
    const e = client.events;
    const greeting = inOrder(types, [
      'response.created',
      'output_audio_buffer.started',
      'response.output_audio_transcript.delta',
      'input_audio_buffer.speech_started',
      'output_audio_buffer.cleared',
      'response.output_audio.done',
      'response.output_audio_transcript.done',
      'response.content_part.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done',
    ]);
    expect(at(e, greeting[6] ?? 0).transcript).toBe('Thanks for calling ');
    expect(at(e, greeting[8] ?? 0).item.status).toBe('incomplete');
    expect(at(e, greeting[10] ?? 0).response).toMatchObject({
      status: 'cancelled',
      status_details: { type: 'cancelled', reason: 'turn_detected' },
    });
    const tool = inOrder(
      types,
      [
        'input_audio_buffer.speech_stopped',
        'response.created',
        'output_audio_buffer.started',
        'response.output_item.done',
        'response.output_item.added',
        'response.function_call_arguments.delta',
        'input_audio_buffer.speech_started',
      ],
      (greeting.at(-1) ?? 0) + 1,
    );
    const barge = tool.at(-1) ?? 0;
    expect(types.slice(barge + 1, barge + 6)).toEqual([
      'output_audio_buffer.cleared',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done',
    ]);
    expect(at(e, barge + 3).item).toMatchObject({
      type: 'function_call',
      status: 'incomplete',
      name: 'lookup_order',
    });
    expect(at(e, barge + 5).response).toMatchObject({
      status: 'cancelled',
      status_details: { reason: 'turn_detected' },
    });
    // The caller's turn goes on with the item its speech_started announced.
    const stopped = e.slice(barge + 6).find((x) => x.type === 'input_audio_buffer.speech_stopped');
    expect(stopped?.item_id).toBe(at(e, barge).item_id);
    expect(call.functionCalls).toMatchObject([{ status: 'incomplete', outputs: 0 }]);
    expect(warnings(call)).toEqual([]);
  });

  for (const [scenario, name] of [
    ['interrupted-end-call', 'end_call'],
    ['interrupted-transfer', 'transfer_call'],
    ['interrupted-tool', 'lookup_order'],
  ] as const) {
    it(`${scenario}: speech_started, then ${name}'s arguments.done still arrives, its item incomplete, the response cancelled`, async () => {
      const { call, client, types } = await play(scenario);
      const e = client.events;
      const found = inOrder(types, [
        'output_audio_buffer.stopped',
        'response.created',
        'response.output_item.added',
        'response.function_call_arguments.delta',
        'input_audio_buffer.speech_started',
      ]);
      const barge = found.at(-1) ?? 0;
      expect(at(e, found[2] ?? 0).item).toMatchObject({
        type: 'function_call',
        name,
        status: 'in_progress',
      });
      expect(types.slice(barge + 1, barge + 5)).toEqual([
        'response.function_call_arguments.done',
        'response.output_item.done',
        'conversation.item.done',
        'response.done',
      ]);
      expect(at(e, barge + 1)).toMatchObject({
        name,
        arguments: expect.stringMatching(/^\{.*\}$/),
      });
      expect(at(e, barge + 2).item).toMatchObject({ name, status: 'incomplete' });
      expect(at(e, barge + 4).response).toMatchObject({
        status: 'cancelled',
        status_details: { type: 'cancelled', reason: 'turn_detected' },
      });
      inOrder(
        types,
        [
          'input_audio_buffer.speech_stopped',
          'input_audio_buffer.committed',
          'conversation.item.added',
          'response.created',
          'response.done',
        ],
        barge + 5,
      );
      // A correct client leaves the cancelled call alone: the caller ends the call.
      expect(call.hangups).toBe(0);
      expect(call.referTarget).toBeUndefined();
      expect(call.functionCalls[0]).toMatchObject({ name, status: 'incomplete', outputs: 0 });
      if (name === 'lookup_order')
        expect(call.functionCalls[1]).toMatchObject({ status: 'completed', outputs: 1, name });
      expect(client.closes).toEqual([1006]);
      expect(warnings(call)).toEqual([]);
    });
  }

  it('records a client that acts on the interrupted call at arguments.done', async () => {
    const ended = await play('interrupted-end-call', { actOnArguments: true });
    expect(ended.call.hangups).toBe(1);
    expect(warnings(ended.call).join('\n')).toMatch(
      /hangup for end_call call_\w+, which the caller interrupted/,
    );
    const transferred = await play('interrupted-transfer', { actOnArguments: true });
    expect(transferred.call.referTarget).toBe('sip:support@example.com');
    expect(warnings(transferred.call).join('\n')).toMatch(/refer for transfer_call/);
    const tool = await play('interrupted-tool', { actOnArguments: true });
    expect(tool.call.functionCalls[0]).toMatchObject({ status: 'incomplete', outputs: 1 });
    expect(warnings(tool.call).join('\n')).toMatch(
      /function_call_output for lookup_order .* the tool ran anyway/,
    );
  });

  for (const [scenario, action] of [
    ['goodbye', 'hangup'],
    ['goodbye-transfer', 'refer'],
  ] as const) {
    it(`${scenario}: the audio plays on after response.done; a ${action} after output_audio_buffer.stopped cuts nobody off, one before it is recorded`, async () => {
      const { call, client, types } = await play(scenario);
      const found = inOrder(types, [
        'input_audio_buffer.committed',
        'response.created',
        'output_audio_buffer.started',
        'response.output_audio_transcript.done',
        'response.output_item.added',
        'response.function_call_arguments.done',
        'response.output_item.done',
        'response.done',
        'output_audio_buffer.stopped',
      ]);
      expect(at(client.events, found[6] ?? 0).item).toMatchObject({
        status: 'completed',
        name: action === 'hangup' ? 'end_call' : 'transfer_call',
      });
      const log = call.log.filter((x) => x.dir === 'out');
      const doneAt = log.findLast((x) => x.type === 'response.done')?.at ?? 0;
      const stoppedAt = log.findLast((x) => x.type === 'output_audio_buffer.stopped')?.at ?? 0;
      expect(stoppedAt - doneAt).toBeGreaterThanOrEqual(GOODBYE_TAIL_MS - 5);
      expect(call.cutOffs).toEqual([]);
      expect(client.closes).toEqual([1000]);
      if (action === 'refer') expect(call.referTarget).toBe('sip:support@example.com');
      else expect(call.hangups).toBe(1);
      expect(warnings(call)).toEqual([]);

      // At response.done: the last words are still in the buffer.
      const early = await play(scenario, { endAt: 'done' });
      expect(early.call.cutOffs).toHaveLength(1);
      const [cut] = early.call.cutOffs;
      expect(cut?.action).toBe(action);
      expect(cut?.earlyMs).toBeGreaterThan(0);
      expect(cut?.earlyMs).toBeLessThanOrEqual(GOODBYE_TAIL_MS);
      expect(warnings(early.call).join()).toMatch(
        new RegExp(`${action} arrived \\d+ ms before the audio buffer drained`),
      );
      // At the item's output_item.done: the response is still generating. The call holds its
      // response.done back long enough for the loopback round trip on a loaded machine.
      const earlier = await play(scenario, { endAt: 'item' }, PROJECT_BODY, {
        goodbyeHoldMs: 5_000,
      });
      expect(earlier.call.cutOffs).toMatchObject([{ action, responseId: expect.any(String) }]);
      expect(earlier.call.cutOffs[0]?.earlyMs).toBeUndefined();
      expect(warnings(earlier.call).join()).toMatch(/still generating audio/);
    });
  }

  it('ghost: the call is accepted and attached, the greeting plays to nobody, no speech event ever comes; the server gives up', async () => {
    const { call, client, types } = await play('ghost');
    inOrder(types, [
      'session.created',
      'conversation.created',
      'response.created',
      'response.done',
      'output_audio_buffer.stopped',
    ]);
    expect(
      types.filter(
        (t) => t.startsWith('input_audio_buffer.') || t.startsWith('conversation.item.input_audio'),
      ),
    ).toEqual([]);
    expect(call.facts.map((f) => f.kind)).toContain('server_dropped');
    expect(client.closes).toEqual([1006]);
    expect(call.closes.map((c) => c.by)).toEqual(['server']);
  });

  it('silent-caller with server_vad idle_timeout_ms: timeout_triggered after the audio drained, the silence committed, a prompt; twice', async () => {
    const body = withTurnDetection({ type: 'server_vad', idle_timeout_ms: 5000 });
    const { call, client, types } = await play('silent-caller', {}, body);
    const e = client.events;
    const first = inOrder(types, [
      'output_audio_buffer.stopped',
      'input_audio_buffer.timeout_triggered',
      'input_audio_buffer.committed',
      'conversation.item.added',
      'conversation.item.done',
      'response.created',
      'response.done',
      'output_audio_buffer.stopped',
      'input_audio_buffer.timeout_triggered',
      'input_audio_buffer.committed',
      'response.created',
    ]);
    const timeout = at(e, first[1] ?? 0);
    expect(timeout.audio_end_ms).toBeGreaterThan(timeout.audio_start_ms);
    expect(at(e, first[2] ?? 0).item_id).toBe(timeout.item_id);
    expect(at(e, first[3] ?? 0).item).toMatchObject({
      id: timeout.item_id,
      role: 'user',
      content: [{ type: 'input_audio', transcript: null }],
    });
    expect(types).not.toContain('input_audio_buffer.speech_started');
    expect(call.idleTimeouts).toBeGreaterThanOrEqual(2);
    expect(client.closes).toEqual([1006]);

    // Without idle_timeout_ms the server sends nothing: the caller stays silent, then hangs up.
    const plain = await play('silent-caller');
    expect(plain.types).not.toContain('input_audio_buffer.timeout_triggered');
    expect(plain.call.facts.find((f) => f.kind === 'no_idle_timeout')?.warn).toBe(true);
  });

  it('dtmf: dtmf_event_received for 1 2 3 4 # * 0 with received_at and no event_id, then a caller turn', async () => {
    const { client, types } = await play('dtmf');
    const keys = client.events.filter((x) => x.type === 'input_audio_buffer.dtmf_event_received');
    expect(keys.map((k) => k.event)).toEqual(['1', '2', '3', '4', '#', '*', '0']);
    const now = Date.now() / 1000;
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(['event', 'received_at', 'type']);
      expect(Number.isInteger(key.received_at)).toBe(true);
      expect(Math.abs(key.received_at - now)).toBeLessThan(60);
    }
    inOrder(types, [
      'input_audio_buffer.dtmf_event_received',
      'input_audio_buffer.speech_started',
      'response.done',
    ]);
  });

  for (const [scenario, code] of [
    ['rotation', 1001],
    ['rotation-1000', 1000],
  ] as const) {
    it(`${scenario}: a clean ${code} close while the call lives; a reattach works and the call goes on`, async () => {
      const { call, client, types } = await play(scenario, { reattach: true });
      expect(client.closes).toEqual([code, 1006]);
      expect(call.connections).toBe(2);
      const second = inOrder(types, [
        'session.created',
        'response.done',
        'session.created',
        'conversation.created',
        'input_audio_buffer.speech_started',
        'response.created',
        'response.done',
      ]);
      expect(second).toHaveLength(7);
      expect(call.closes.map((c) => [c.code, c.by])).toEqual([
        [code, 'server'],
        [1006, 'caller'],
      ]);
      expect(warnings(call)).toEqual([]);
    });
  }

  it('rotation without a reattach: the caller gives up, and a late attach gets 404', async () => {
    const { call, client } = await play('rotation');
    expect(client.closes).toEqual([1001]);
    expect(call.facts.find((f) => f.kind === 'no_reattach')?.warn).toBe(true);
    expect(await new Client(call.id).connect()).toBe(404);
  });

  it('junk: null, [], 42, "text", invalid JSON, {} and an unknown type are really sent, and the call still plays', async () => {
    const { call, client } = await play('junk');
    for (const frame of [
      'null',
      '[]',
      '42',
      '"text"',
      '{"type":"response.done","response":',
      '{}',
      '[1,2,3]',
    ])
      expect(client.frames).toContain(frame);
    expect(client.events.find((x) => x.type === 'response.future_event.delta')).toBeDefined();
    expect(call.functionCalls).toMatchObject([
      { name: 'lookup_order', status: 'completed', outputs: 1 },
    ]);
    expect(client.closes).toEqual([1006]);
  });

  it('late-transcript: the caller transcript comes after the answer is done; the item chain gives the real order', async () => {
    const { call, client, types } = await play('late-transcript');
    const e = client.events;
    const found = inOrder(types, [
      'output_audio_buffer.stopped',
      'input_audio_buffer.committed',
      'response.created',
      'response.output_item.added',
      'response.output_audio_transcript.done',
      'response.done',
      'conversation.item.input_audio_transcription.completed',
    ]);
    const user = at(e, found[1] ?? 0).item_id;
    const assistant = at(e, found[3] ?? 0).item.id;
    expect(at(e, found[6] ?? 0)).toMatchObject({
      item_id: user,
      transcript: 'What are your opening hours?',
    });
    const added = e.filter((x) => x.type === 'conversation.item.added');
    const userAdded = added.find((x) => x.item.id === user);
    expect(added.find((x) => x.item.id === assistant)?.previous_item_id).toBe(user);
    expect(userAdded?.previous_item_id).toBe(
      e.find((x) => x.type === 'response.output_item.added')?.item.id,
    );
    expect(call.items.map((i) => i.id).slice(0, 3)).toEqual([
      userAdded?.previous_item_id,
      user,
      assistant,
    ]);
    expect(call.items[1]).toMatchObject({ role: 'user', text: 'What are your opening hours?' });
  });
});
