/**
 * Named call scenarios for the Realtime simulator: what OpenAI's side of a SIP call does, event by
 * event, in the happy case and in the awkward ones a sideband worker must survive. Each scenario
 * is a script over a `ScenarioContext` that the simulator (realtime-simulator.ts) implements; the
 * event shapes and orders come from the `openai` package's types
 * (test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts) and ../shared/reference/openai-protocol.md
 * §4.2–§4.5, never from this project's worker.
 *
 * A scenario starts when the first sideband socket attaches and plays until the call ends. Every
 * wait for the worker is bounded (`workerWaitMs`): a worker that does not react is noted, and the
 * script goes on, so a scenario always ends.
 */

/** What one model response does. */
export interface ResponsePlan {
  /** The words the model says (audio plus transcript; text in a text-only session). */
  readonly say?: string;
  /** A function call the response makes after its words. */
  readonly call?: {
    readonly name: string;
    readonly arguments: unknown;
    /** The function call's `call_id`. @default generated */
    readonly callId?: string;
  };
  /** How long the audio keeps playing after `response.done`. @default the simulator's `audioTailMs` */
  readonly tailMs?: number;
  /**
   * The caller barges in: while the words stream (`speech`), or while the function call's
   * arguments stream (`arguments`). The response is then cancelled (`turn_detected`).
   */
  readonly bargeIn?: 'speech' | 'arguments';
  /** Holds `response.done` back this long after the last item. */
  readonly holdMs?: number;
}

export type ResponseTrigger = 'client' | 'vad' | 'idle_timeout' | 'server';

export interface ResponseOutcome {
  readonly status: 'completed' | 'cancelled';
  readonly functionCall?: {
    readonly callId: string;
    readonly itemId: string;
    readonly name: string;
    readonly status: 'completed' | 'incomplete';
  };
  /** The caller's item when the plan barged in (its `speech_started` was sent). */
  readonly bargeInItemId?: string;
}

/** A response the simulated server runs. */
export interface ResponseRun {
  readonly id: string;
  readonly trigger: ResponseTrigger;
  /** At `response.done`. Rejects if the call ends first. */
  readonly done: Promise<ResponseOutcome>;
  /**
   * When its audio stopped playing (`output_audio_buffer.stopped` or `.cleared`), or at
   * `response.done` when it had no audio. Rejects if the call ends first.
   */
  readonly drained: Promise<void>;
}

export interface EffectiveTurnDetection {
  readonly type: 'server_vad' | 'semantic_vad';
  readonly createResponse: boolean;
  readonly interruptResponse: boolean;
  readonly idleTimeoutMs: number | null;
}

/** The session a call runs with, after `/accept` (server defaults filled in). */
export interface EffectiveSession {
  readonly modality: 'audio' | 'text';
  /** null: no VAD, so nothing the caller says is ever committed. */
  readonly turnDetection: EffectiveTurnDetection | null;
  /** Caller transcription on (`audio.input.transcription`). */
  readonly transcription: boolean;
}

export interface CallerTurn {
  /** The caller's conversation item, or undefined when there is no VAD to commit it. */
  readonly itemId: string | undefined;
  /** The response VAD started for the turn (with `create_response`). */
  readonly response: ResponseRun | undefined;
}

export interface ScenarioContext {
  readonly callId: string;
  /** The simulator's unit of time: a response takes about this long. */
  readonly paceMs: number;
  /** How long a scenario waits for the worker to do something before noting it and moving on. */
  readonly workerWaitMs: number;
  readonly goodbyeTailMs: number;
  /** How long a goodbye response holds `response.done` after its function call (unset: the pace). */
  readonly goodbyeHoldMs?: number;
  readonly ghostTimeoutMs: number;
  readonly reattachWaitMs: number;
  session(): EffectiveSession;
  /** Resolves after `ms`; throws if the call ended meanwhile (which ends the script). */
  sleep(ms: number): Promise<void>;
  /** How many client events the call has had so far (a mark for `waitForClient`). */
  received(): number;
  /**
   * The first worker event from index `since` (default 0: the whole call) that matches;
   * undefined after `timeoutMs` (default `workerWaitMs`).
   */
  waitForClient(
    match: (event: Record<string, unknown>) => boolean,
    options?: { readonly since?: number; readonly timeoutMs?: number },
  ): Promise<Record<string, unknown> | undefined>;
  /**
   * The first response started after `after` (default: from the call's start) with this
   * `trigger`, once it has started; undefined after `timeoutMs` (default `workerWaitMs`).
   */
  nextResponse(options?: {
    readonly after?: ResponseRun;
    readonly trigger?: ResponseTrigger;
    readonly timeoutMs?: number;
  }): Promise<ResponseRun | undefined>;
  /** The latest response started so far. */
  lastResponse(): ResponseRun | undefined;
  /** A response the server starts by itself. */
  respond(plan: ResponsePlan): ResponseRun;
  /** What the next response the worker asks for (`response.create`) will do. */
  planNext(plan: ResponsePlan): void;
  /**
   * The caller says something: `speech_started`, `speech_stopped`, `committed`, the user item,
   * then (VAD `create_response`) a response following `respond`, and the transcription: `early`
   * right after that response started, `late` after its `response.done`. `itemId`: the turn
   * began already (a barge-in sent its `speech_started`).
   */
  callerSpeaks(
    text: string,
    options?: {
      readonly respond?: ResponsePlan | false;
      readonly transcript?: 'early' | 'late';
      readonly itemId?: string;
    },
  ): Promise<CallerTurn>;
  /** A keypad press: `input_audio_buffer.dtmf_event_received`. */
  dtmf(key: string): void;
  /** Sends a frame as is (junk: not an object, not JSON, unknown type). */
  junk(frame: string, label: string): void;
  /** Closes every attached socket with `code` while the call goes on (a backend rotation). */
  rotate(code: 1000 | 1001): void;
  /** True once a socket attached after `connections` attaches; false after `timeoutMs`. */
  waitForAttach(connections: number, timeoutMs: number): Promise<boolean>;
  connections(): number;
  /** True once the call ended (by anyone); false after `timeoutMs`. Never throws. */
  waitForEnd(timeoutMs: number): Promise<boolean>;
  /** True once `count` idle timeouts fired; false after `timeoutMs`. */
  waitForIdleTimeouts(count: number, timeoutMs: number): Promise<boolean>;
  /** The caller hangs up: the socket drops without a close frame (1006 at the worker). */
  callerHangsUp(): void;
  /** The server gives up on the call: the socket drops too, as when the SIP leg times out. */
  serverDrops(why: string): void;
  /** A fact for the timeline (`warn`: something a correct worker would not have caused). */
  note(kind: string, text: string, warn?: boolean): void;
}

export interface Scenario {
  readonly name: string;
  /** One line: what happens on OpenAI's side. */
  readonly summary: string;
  /** The server events in order, in brief. */
  readonly sequence: string;
  /** What a correct worker does. */
  readonly expect: string;
  run(ctx: ScenarioContext): Promise<void>;
}

const isFunctionOutput = (callId: string) => (e: Record<string, unknown>) =>
  e.type === 'conversation.item.create' &&
  isRecord(e.item) &&
  e.item.type === 'function_call_output' &&
  e.item.call_id === callId;

/** Waits for the worker's greeting response and lets it play out. */
async function greeting(ctx: ScenarioContext): Promise<void> {
  const greet = await ctx.nextResponse({ trigger: 'client' });
  if (!greet) {
    ctx.note(
      'no_greeting',
      `no response.create from the worker within ${ctx.workerWaitMs} ms`,
      true,
    );
    return;
  }
  await greet.drained;
  await ctx.sleep(ctx.paceMs);
}

/**
 * After a tool response: waits for the worker's `function_call_output` for `callId`, then for the
 * response it asks for, and lets that play out.
 */
async function toolRoundTrip(
  ctx: ScenarioContext,
  toolResponse: ResponseRun,
  call: { readonly callId: string; readonly name: string },
): Promise<void> {
  const { callId, name } = call;
  const output = await ctx.waitForClient(isFunctionOutput(callId));
  if (!output) {
    ctx.note(
      'no_tool_output',
      `no function_call_output for ${name} (${callId}) within ${ctx.workerWaitMs} ms`,
      true,
    );
    return;
  }
  const answer = await ctx.nextResponse({ after: toolResponse, trigger: 'client' });
  if (!answer) {
    ctx.note('no_answer', `no response.create after the ${name} output`, true);
    return;
  }
  await answer.drained;
}

async function happy(ctx: ScenarioContext, junk = false): Promise<void> {
  if (junk) {
    ctx.junk('null', 'null');
    ctx.junk('[]', 'an array');
  }
  await greeting(ctx);
  if (junk) {
    ctx.junk('42', 'a number');
    ctx.junk('"text"', 'a string');
    ctx.junk('{"type":"response.done","response":', 'invalid JSON');
    ctx.junk('{}', 'an object without a type');
    ctx.junk(
      JSON.stringify({
        type: 'response.future_event.delta',
        event_id: 'event_junk_unknown',
        delta: 'an event type newer than every SDK',
      }),
      'an unknown event type',
    );
  }
  const turn = await ctx.callerSpeaks('Hi, where is my order 1234?', {
    respond: {
      say: 'Let me look that up.',
      call: { name: 'lookup_order', arguments: { order_number: '1234' } },
    },
  });
  const outcome = await turn.response?.done;
  if (junk) ctx.junk('[1,2,3]', 'an array');
  if (turn.response && outcome?.functionCall)
    await toolRoundTrip(ctx, turn.response, outcome.functionCall);
  await ctx.sleep(ctx.paceMs * 2);
  ctx.callerHangsUp();
}

/** The caller interrupts a response that is calling `name`; the response is cancelled. */
function interrupted(
  name: string,
  call: { readonly name: string; readonly arguments: unknown },
  asks: string,
  bargeIn: string,
  then: ResponsePlan,
): Scenario {
  return {
    name,
    summary: `The caller speaks while the model is calling ${call.name}: the response is cancelled and the function call left incomplete.`,
    sequence:
      'greeting · caller turn · response.created, output_item.added (function_call in_progress), ' +
      'function_call_arguments.delta…, input_audio_buffer.speech_started, function_call_arguments.done ' +
      '(still sent), output_item.done (status incomplete), conversation.item.done, response.done ' +
      '(cancelled, turn_detected) · the caller goes on: speech_stopped, committed, item added, new response · caller hangs up',
    expect: `not act on the interrupted ${call.name} (its item is incomplete and its response cancelled): no ${
      call.name === 'end_call'
        ? '/hangup'
        : call.name === 'transfer_call'
          ? '/refer'
          : 'tool run, no function_call_output'
    } for it; the call goes on until the caller hangs up (1006).`,
    async run(ctx) {
      await greeting(ctx);
      const turn = await ctx.callerSpeaks(asks, { respond: { call, bargeIn: 'arguments' } });
      const outcome = await turn.response?.done;
      const next = await ctx.callerSpeaks(bargeIn, {
        respond: then,
        ...(outcome?.bargeInItemId ? { itemId: outcome.bargeInItemId } : {}),
      });
      const after = await next.response?.done;
      if (next.response && after?.functionCall)
        await toolRoundTrip(ctx, next.response, after.functionCall);
      else await next.response?.drained;
      // Room for a worker that acted on the cancelled call to show it.
      await ctx.sleep(ctx.paceMs * 5);
      ctx.callerHangsUp();
    },
  };
}

function goodbye(
  name: string,
  asks: string,
  says: string,
  call: { readonly name: string; readonly arguments: unknown },
): Scenario {
  const action = call.name === 'end_call' ? '/hangup' : '/refer';
  return {
    name,
    summary: `The model says "${says}" and calls ${call.name} in the same response; its audio keeps playing after response.done.`,
    sequence:
      'greeting · caller turn · response.created, output_item.added (message), content_part.added, ' +
      'output_audio_buffer.started, output_audio_transcript.delta…, output_audio_transcript.done, ' +
      'output_item.done (message), output_item.added (function_call), function_call_arguments.delta/.done, ' +
      `output_item.done (completed), response.done · output_audio_buffer.stopped (goodbyeTailMs after response.done)`,
    expect: `wait for output_audio_buffer.stopped (with a cap), then ${action}. A ${action} before it cuts the caller off; the simulator records by how many ms (cutOffs).`,
    async run(ctx) {
      await greeting(ctx);
      const turn = await ctx.callerSpeaks(asks, {
        respond: {
          say: says,
          call,
          tailMs: ctx.goodbyeTailMs,
          ...(ctx.goodbyeHoldMs !== undefined ? { holdMs: ctx.goodbyeHoldMs } : {}),
        },
      });
      await turn.response?.drained;
      if (!(await ctx.waitForEnd(ctx.workerWaitMs))) {
        ctx.note(
          'no_end',
          `the worker did not ${action} within ${ctx.workerWaitMs} ms of the audio draining; the caller hung up`,
          true,
        );
        ctx.callerHangsUp();
      }
    },
  };
}

function rotation(name: string, code: 1000 | 1001): Scenario {
  return {
    name,
    summary: `OpenAI closes the sideband cleanly (${code}) while the call is still live, as in a backend rotation; a reattach with the same call_id works and the call goes on.`,
    sequence: `greeting · caller turn and answer · close ${code} (the call lives) · [reattach: session.created, conversation.created] · caller turn and answer · caller hangs up`,
    expect: `treat an unexpected ${code} as possibly a rotation: reattach once to the same call_id (a 404 would mean the call is gone), and keep the call, its transcript and its tool calls.`,
    async run(ctx) {
      await greeting(ctx);
      const turn = await ctx.callerSpeaks('Where is my order 1234?', {
        respond: { say: 'One moment, please.' },
      });
      await turn.response?.drained;
      const before = ctx.connections();
      ctx.rotate(code);
      if (!(await ctx.waitForAttach(before, ctx.reattachWaitMs))) {
        ctx.note(
          'no_reattach',
          `no reattach within ${ctx.reattachWaitMs} ms of the ${code} close; the caller, talking to nobody, hung up`,
          true,
        );
        ctx.callerHangsUp();
        return;
      }
      await ctx.sleep(ctx.paceMs);
      const again = await ctx.callerSpeaks('Hello? Are you still there?', {
        respond: { say: "Yes, I'm still here." },
      });
      await again.response?.drained;
      await ctx.sleep(ctx.paceMs * 2);
      ctx.callerHangsUp();
    },
  };
}

/**
 * `control` (issue 16): a live call steered from outside through the call-control API (`npm run
 * send -- call --scenario control` sends the commands; local/call-control.ts). OpenAI's side only
 * waits for what each command puts on the wire and plays along, as the reference describes it.
 */
const CONTROL: Scenario = {
  name: 'control',
  summary:
    'A live call steered from outside (the call-control API, owh calls …): a message for the model to say, new instructions, a long response cancelled, a transfer, then a hang-up, refused because the call is already being transferred.',
  sequence:
    'greeting · caller turn and answer · [say] conversation.item.create (system message), response.create, the answer · ' +
    '[update] session.update, session.updated · a long response (held open) · [cancel] response.cancel, output_audio_buffer.clear, ' +
    'response.done (cancelled) · [transfer] POST /refer, the socket closes · [hangup] refused: the call is leaving',
  expect:
    'apply each command once, in the order sent, with the wire form of the reference: the say as a message item plus a response, the update as session.update (type realtime), the cancel as response.cancel then output_audio_buffer.clear, the transfer through /refer after what is playing.',
  async run(ctx) {
    const wait = ctx.workerWaitMs * 4;
    await greeting(ctx);
    const turn = await ctx.callerSpeaks('Hi, I am waiting for news about my refund.', {
      respond: { say: 'Let me check on that for you.' },
    });
    await turn.response?.drained;
    const said = await ctx.waitForClient(
      (e) => e.type === 'conversation.item.create' && isRecord(e.item) && e.item.type === 'message',
      { timeoutMs: wait },
    );
    if (!said) {
      ctx.note('no_command', `no say command reached the call within ${wait} ms`, true);
      ctx.callerHangsUp();
      return;
    }
    // The say's response: the first one the worker asks for after its greeting. The say may
    // reach the call before the caller's turn as well as after it.
    const greet = await ctx.nextResponse({ trigger: 'client' });
    const spoken = await ctx.nextResponse({
      ...(greet ? { after: greet } : {}),
      trigger: 'client',
    });
    await spoken?.drained;
    if (!(await ctx.waitForClient((e) => e.type === 'session.update', { timeoutMs: wait }))) {
      ctx.note('no_update', `no session.update within ${wait} ms`, true);
      ctx.callerHangsUp();
      return;
    }
    // A long answer, held open, for the cancel to stop: only a cancel sent from now on counts
    // (one that stopped an earlier answer leaves this one held to its end, and the transfer
    // waiting behind it). The cue tells the command side (local/call-control.ts) it plays.
    const since = ctx.received();
    const long = ctx.respond({
      say: 'Our refund policy has several parts, and I will go through each of them in detail.',
      holdMs: wait,
    });
    ctx.note('long_answer', 'a long answer plays, held open until it is cancelled');
    if (!(await ctx.waitForClient((e) => e.type === 'response.cancel', { since, timeoutMs: wait })))
      ctx.note('no_cancel', `no response.cancel within ${wait} ms`, true);
    await long.done.catch(() => undefined);
    if (!(await ctx.waitForEnd(wait))) {
      ctx.note(
        'no_transfer',
        `the call was not transferred within ${wait} ms; the caller hung up`,
        true,
      );
      ctx.callerHangsUp();
    }
  },
};

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'happy',
    summary:
      'Greeting, the caller asks about an order, the model calls lookup_order, answers with its output, the caller hangs up.',
    sequence:
      'session.created, conversation.created · [worker: response.create] response.created, rate_limits.updated, ' +
      'output_item.added, conversation.item.added, content_part.added, output_audio_buffer.started, ' +
      'output_audio_transcript.delta…, output_audio.done, output_audio_transcript.done, content_part.done, ' +
      'output_item.done, conversation.item.done, response.done (usage), output_audio_buffer.stopped · ' +
      'speech_started, speech_stopped, committed, conversation.item.added/.done (user, previous_item_id), ' +
      'response.created…, input_audio_transcription.completed (after the answer started), … function_call ' +
      'output_item.added, function_call_arguments.delta/.done, output_item.done (completed), response.done · ' +
      '[worker: function_call_output, response.create] the answer · caller hangs up (no close frame)',
    expect:
      'greet at once, run lookup_order once, send its output and a response.create, record both transcripts; the call ends as caller_hung_up (1006).',
    run: (ctx) => happy(ctx),
  },
  {
    name: 'barge-in',
    summary:
      'The caller talks over the greeting, then over a response that says a few words and calls lookup_order.',
    sequence:
      'greeting: …output_audio_transcript.delta, input_audio_buffer.speech_started, output_audio_buffer.cleared, ' +
      'output_audio_transcript.done (partial), output_item.done (incomplete), response.done (cancelled, turn_detected) · ' +
      'caller turn · response: message (audio playing), function_call_arguments.delta…, speech_started, ' +
      'output_audio_buffer.cleared, function_call_arguments.done (still sent), output_item.done (function_call ' +
      'incomplete), response.done (cancelled, turn_detected) · caller goes on · answer · caller hangs up',
    expect:
      'record the interrupted greeting as cut short, never run the cancelled lookup_order (act only on output_item.done with status completed), and go on with the next turn.',
    async run(ctx) {
      ctx.planNext({
        say: 'Thanks for calling Example Co. How can I help you today?',
        bargeIn: 'speech',
      });
      const greet = await ctx.nextResponse({ trigger: 'client' });
      if (!greet) {
        ctx.note(
          'no_greeting',
          `no response.create from the worker within ${ctx.workerWaitMs} ms`,
          true,
        );
        return;
      }
      const cut = await greet.done;
      const first = await ctx.callerSpeaks('Hi, sorry, where is my order 1234?', {
        respond: {
          say: 'Let me look that up for you, one moment please.',
          call: { name: 'lookup_order', arguments: { order_number: '1234' } },
          bargeIn: 'arguments',
        },
        ...(cut.bargeInItemId ? { itemId: cut.bargeInItemId } : {}),
      });
      const outcome = await first.response?.done;
      const next = await ctx.callerSpeaks('Hello? Are you there?', {
        respond: { say: "Yes, I'm here. I was checking order 1234." },
        ...(outcome?.bargeInItemId ? { itemId: outcome.bargeInItemId } : {}),
      });
      await next.response?.drained;
      await ctx.sleep(ctx.paceMs * 5);
      ctx.callerHangsUp();
    },
  },
  interrupted(
    'interrupted-end-call',
    { name: 'end_call', arguments: { reason: 'caller said goodbye' } },
    'OK, that is all, goodbye.',
    'Oh wait, one more thing!',
    { say: 'Of course, what else can I do for you?' },
  ),
  interrupted(
    'interrupted-transfer',
    { name: 'transfer_call', arguments: { target: 'support' } },
    'Can I talk to a person?',
    'Actually, never mind, you can help me.',
    { say: 'Sure, how can I help?' },
  ),
  interrupted(
    'interrupted-tool',
    { name: 'lookup_order', arguments: { order_number: '1234' } },
    'Where is my order 1234?',
    'Sorry, I meant order 5678.',
    {
      say: 'Checking order 5678.',
      call: { name: 'lookup_order', arguments: { order_number: '5678' } },
    },
  ),
  goodbye(
    'goodbye',
    "That's all I needed, thanks. Bye!",
    "You're welcome. Thanks for calling Example Co, goodbye!",
    { name: 'end_call', arguments: { reason: 'caller said goodbye' } },
  ),
  goodbye(
    'goodbye-transfer',
    'Can I talk to a person, please?',
    "Of course. I'm transferring you to our support team now, please hold.",
    { name: 'transfer_call', arguments: { target: 'support' } },
  ),
  {
    name: 'ghost',
    summary:
      'The caller hung up while it rang: the accept works and the sideband attaches, but nobody is on the line and nobody ever speaks.',
    sequence:
      'session.created, conversation.created · the greeting (to nobody) · no speech events at all (input_audio_buffer.timeout_triggered only if the session set server_vad idle_timeout_ms) · after ghostTimeoutMs the server drops the call',
    expect:
      'notice that nobody speaks (its own no-speech timer, or idle timeouts) and hang up well before the server gives up.',
    async run(ctx) {
      await greeting(ctx);
      if (!(await ctx.waitForEnd(ctx.ghostTimeoutMs)))
        ctx.serverDrops(
          `nobody spoke for ${ctx.ghostTimeoutMs} ms and the worker never hung up; the server gave up on the call`,
        );
    },
  },
  {
    name: 'silent-caller',
    summary:
      'Someone is on the line but says nothing. With server_vad idle_timeout_ms the server sends input_audio_buffer.timeout_triggered and the model prompts; after two prompts the caller hangs up.',
    sequence:
      'greeting · output_audio_buffer.stopped + idle_timeout_ms: input_audio_buffer.timeout_triggered, committed, conversation.item.added/.done (empty user audio), response ("Are you still there?") · again · caller hangs up',
    expect:
      'treat timeout_triggered as a silent caller (count it, record it) and end the call by its own policy; without idle_timeout_ms in the session the server sends nothing, so the worker needs its own timer.',
    async run(ctx) {
      await greeting(ctx);
      const td = ctx.session().turnDetection;
      if (td?.type !== 'server_vad' || !td.idleTimeoutMs) {
        ctx.note(
          'no_idle_timeout',
          'the session has no server_vad idle_timeout_ms: the server never sends input_audio_buffer.timeout_triggered',
          true,
        );
        if (!(await ctx.waitForEnd(ctx.ghostTimeoutMs))) {
          ctx.note('silent', `the caller stayed silent for ${ctx.ghostTimeoutMs} ms, then hung up`);
          ctx.callerHangsUp();
        }
        return;
      }
      const patience = (td.idleTimeoutMs + ctx.workerWaitMs) * 3;
      if (await ctx.waitForIdleTimeouts(2, patience)) {
        await ctx.lastResponse()?.drained;
        await ctx.sleep(ctx.paceMs * 2);
      }
      ctx.callerHangsUp();
    },
  },
  {
    name: 'dtmf',
    summary: 'The caller types digits on the keypad, then says what they were.',
    sequence:
      'greeting · input_audio_buffer.dtmf_event_received {event, received_at} for 1 2 3 4 # * 0 (no event_id, as in the SDK type) · caller turn and answer · caller hangs up',
    expect:
      'record each key (event, received_at) in order; DTMF starts no response by itself, so act on it if the session needs to.',
    async run(ctx) {
      await greeting(ctx);
      for (const key of ['1', '2', '3', '4', '#', '*', '0']) {
        ctx.dtmf(key);
        await ctx.sleep(ctx.paceMs);
      }
      const turn = await ctx.callerSpeaks('I typed my order number.', {
        respond: { say: 'Thanks, I got 1234.' },
      });
      await turn.response?.drained;
      await ctx.sleep(ctx.paceMs * 2);
      ctx.callerHangsUp();
    },
  },
  rotation('rotation', 1001),
  rotation('rotation-1000', 1000),
  {
    name: 'junk',
    summary:
      'The happy call with frames no event handler expects: null, [], 42, "text", invalid JSON, {}, an unknown event type.',
    sequence:
      'null, [] after conversation.created · greeting · 42, "text", invalid JSON, {}, an unknown type · the happy call · [1,2,3] after the tool response',
    expect:
      'ignore (and count) frames that are not event objects and types it does not know, and play the call as in happy.',
    run: (ctx) => happy(ctx, true),
  },
  CONTROL,
  {
    name: 'late-transcript',
    summary:
      "The caller's transcription completes only after the assistant's answer is done: arrival order is not conversation order.",
    sequence:
      'greeting · speech_started, speech_stopped, committed, conversation.item.added (user U, previous_item_id = greeting) · ' +
      'response: conversation.item.added (assistant A, previous_item_id = U) … output_audio_transcript.done, response.done · ' +
      'then conversation.item.input_audio_transcription.completed for U · caller hangs up',
    expect:
      'order transcripts by the conversation (item ids and previous_item_id), not by arrival: caller U before assistant A.',
    async run(ctx) {
      await greeting(ctx);
      const turn = await ctx.callerSpeaks('What are your opening hours?', {
        transcript: 'late',
        respond: { say: 'We are open from nine to five, Monday to Friday.' },
      });
      await turn.response?.drained;
      await ctx.sleep(ctx.paceMs * 3);
      ctx.callerHangsUp();
    },
  },
];

export function scenarioNamed(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

export const SCENARIO_NAMES: readonly string[] = SCENARIOS.map((s) => s.name);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
