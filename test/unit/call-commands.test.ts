import { describe, expect, it } from 'vitest';
import {
  type CallCommand,
  type CommandLimits,
  MAX_SAY_CHARS,
  newCommandId,
  parseCallCommand,
  parseCommandBody,
  type StoredCommand,
  storedCommandOf,
  wireBodyOf,
} from '#core/sideband/call-commands';
import type { SessionCommand } from '#core/sideband/call-session-machine';
import {
  framesSent,
  ofType,
  parts,
  SessionScript,
  sessionEnd,
  T0,
} from '../support/sideband-fakes';

/**
 * Call-control commands (issue 16), pure: the body's validation, and the call-session machine
 * applying a command: the frames it sends, the status it writes, the timeline part. No mocks.
 */

const LIMITS: CommandLimits = {
  toolNames: ['lookup_order'],
  transferTargets: { support: 'sip:support@example.com' },
};

function refused(body: unknown) {
  const parsed = parseCallCommand(body, LIMITS);
  if (parsed.ok) throw new Error(`accepted: ${JSON.stringify(body)}`);
  return { status: parsed.status, code: parsed.code };
}

describe('command bodies', () => {
  it('takes each action with its defaults', () => {
    expect(parseCallCommand({ action: 'say', text: 'Your refund went through.' }, LIMITS)).toEqual({
      ok: true,
      value: { action: 'say', text: 'Your refund went through.', role: 'system', respond: true },
    });
    expect(
      parseCallCommand({ action: 'say', text: 'hi', role: 'user', respond: false }, LIMITS),
    ).toMatchObject({ ok: true, value: { role: 'user', respond: false } });
    expect(
      parseCallCommand(
        { action: 'update', instructions: 'Speak Spanish.', tools: [], tool_choice: 'none' },
        LIMITS,
      ),
    ).toEqual({
      ok: true,
      value: { action: 'update', instructions: 'Speak Spanish.', tools: [], toolChoice: 'none' },
    });
    expect(parseCallCommand({ action: 'cancel' }, LIMITS)).toEqual({
      ok: true,
      value: { action: 'cancel' },
    });
    expect(parseCallCommand({ action: 'hangup', goodbye: 'Bye now.' }, LIMITS)).toEqual({
      ok: true,
      value: { action: 'hangup', goodbye: 'Bye now.' },
    });
    expect(parseCallCommand({ action: 'transfer', target: 'support' }, LIMITS)).toEqual({
      ok: true,
      value: { action: 'transfer', target: 'support' },
    });
  });

  it('refuses bad actions, bodies and fields with a 400 and a code', () => {
    expect(refused({ action: 'explode' })).toEqual({ status: 400, code: 'unknown_action' });
    expect(refused({})).toEqual({ status: 400, code: 'unknown_action' });
    expect(refused([])).toEqual({ status: 400, code: 'invalid_body' });
    expect(refused(null)).toEqual({ status: 400, code: 'invalid_body' });
    expect(refused({ action: 'say' })).toEqual({ status: 400, code: 'invalid_body' });
    expect(refused({ action: 'say', text: '   ' })).toEqual({ status: 400, code: 'invalid_body' });
    expect(refused({ action: 'say', text: 'x', role: 'assistant' })).toEqual({
      status: 400,
      code: 'invalid_body',
    });
    expect(refused({ action: 'say', text: 'x', instruction: 'typo' })).toEqual({
      status: 400,
      code: 'invalid_body',
    });
    expect(refused({ action: 'update' })).toEqual({ status: 400, code: 'invalid_body' });
    expect(refused({ action: 'update', tool_choice: 'sometimes' })).toEqual({
      status: 400,
      code: 'invalid_body',
    });
  });

  it('refuses an oversize text', () => {
    expect(refused({ action: 'say', text: 'x'.repeat(MAX_SAY_CHARS + 1) })).toEqual({
      status: 400,
      code: 'text_too_long',
    });
    expect(parseCallCommand({ action: 'say', text: 'x'.repeat(MAX_SAY_CHARS) }, LIMITS).ok).toBe(
      true,
    );
    expect(parseCommandBody('x'.repeat(70_000), LIMITS)).toMatchObject({
      ok: false,
      status: 413,
      code: 'body_too_large',
    });
    expect(parseCommandBody('{not json', LIMITS)).toMatchObject({
      ok: false,
      code: 'invalid_json',
    });
  });

  it('refuses unknown transfer targets and tools by own properties only', () => {
    for (const target of ['sales', '__proto__', 'toString', 'constructor'])
      expect(refused({ action: 'transfer', target })).toEqual({
        status: 400,
        code: 'unknown_transfer_target',
      });
    expect(refused({ action: 'update', tools: ['lookup_order', 'admin_tool'] })).toEqual({
      status: 400,
      code: 'unknown_tool',
    });
    expect(refused({ action: 'update', tools: ['__proto__'] })).toEqual({
      status: 400,
      code: 'unknown_tool',
    });
    expect(
      refused({
        action: 'update',
        tools: [],
        tool_choice: { type: 'function', name: 'lookup_order' },
      }),
    ).toEqual({ status: 400, code: 'unknown_tool' });
    // Built-ins are always kept: listing them changes nothing.
    expect(parseCallCommand({ action: 'update', tools: ['end_call'] }, LIMITS)).toMatchObject({
      ok: true,
      value: { tools: [] },
    });
  });

  it('refuses a voice or model change with a clear error', () => {
    const voice = parseCallCommand({ action: 'update', voice: 'cedar' }, LIMITS);
    expect(voice).toMatchObject({ ok: false, status: 409, code: 'voice_locked' });
    expect(voice.ok ? '' : voice.message).toMatch(/responded with audio/);
    expect(refused({ action: 'update', audio: { output: { voice: { id: 'voice_1' } } } })).toEqual({
      status: 409,
      code: 'voice_locked',
    });
    expect(refused({ action: 'update', model: 'gpt-realtime-2' })).toEqual({
      status: 409,
      code: 'model_locked',
    });
  });

  it('reads a stored command back only if it still validates', () => {
    const command: CallCommand = {
      action: 'update',
      tools: ['lookup_order'],
      toolChoice: { type: 'function', name: 'lookup_order' },
    };
    const item = {
      id: 'cmd_1',
      callId: 'rtc_1',
      command: wireBodyOf(command),
      sender: 'ops',
      createdAt: 5,
      status: 'pending',
    };
    expect(storedCommandOf(item, LIMITS)).toEqual({ ...item, command });
    expect(storedCommandOf({ ...item, status: 'done' }, LIMITS)).toBeUndefined();
    expect(
      storedCommandOf({ ...item, command: { action: 'transfer', target: 'x' } }, LIMITS),
    ).toBeUndefined();
  });

  it('makes time-ordered ids', () => {
    expect(newCommandId(1000, 'aa') < newCommandId(2000, 'aa')).toBe(true);
    expect(newCommandId(T0, 'ab')).toMatch(/^cmd_[0-9a-z]{9}ab$/);
  });
});

let ids = 0;
function stored(command: CallCommand, overrides: Partial<StoredCommand> = {}): StoredCommand {
  return {
    id: `cmd_${String(++ids).padStart(4, '0')}`,
    callId: 'rtc_test',
    command,
    sender: 'arn:aws:iam::123456789012:user/lead',
    createdAt: T0,
    status: 'pending',
    ...overrides,
  };
}

/** A call attached and greeted, its greeting done and played, its commands loaded (none). */
function liveCall(options: ConstructorParameters<typeof SessionScript>[0] = {}) {
  const s = new SessionScript(options);
  s.open();
  loadCommands(s, []);
  s.responseCreated('resp_greet');
  s.responseDone('resp_greet');
  return s;
}

function loadCommands(s: SessionScript, commands: StoredCommand[]): SessionCommand[] {
  return s.input({ type: 'commands-loaded', op: s.pending('load-commands').op, commands });
}

/** Sends a command and answers its claim (`pending` → `applied`) as the shell would. */
function apply(s: SessionScript, command: StoredCommand, claimed = true): SessionCommand[] {
  const asked = s.input({ type: 'command', command });
  const claim = ofType(asked, 'update-command')[0];
  if (claim?.from !== 'pending' || claim.to !== 'applied') return asked;
  return [...asked, ...s.input({ type: 'command-updated', op: claim.op, done: claimed })];
}

function statusWrites(commands: readonly SessionCommand[]) {
  return ofType(commands, 'update-command').map(({ from, to, error }) => ({
    from,
    to,
    ...(error ? { code: error.code } : {}),
  }));
}

describe('applying a command on a live call', () => {
  it('say: claims it under the lease, adds the message, asks for a response, and records who sent it', () => {
    const s = liveCall();
    const command = stored({
      action: 'say',
      text: 'The refund went through.',
      role: 'system',
      respond: true,
    });
    const asked = s.input({ type: 'command', command });
    // Nothing is sent before the claim comes back.
    expect(framesSent(asked)).toEqual([]);
    expect(statusWrites(asked)).toEqual([{ from: 'pending', to: 'applied' }]);
    const done = s.input({
      type: 'command-updated',
      op: ofType(asked, 'update-command')[0]?.op ?? 0,
      done: true,
    });
    expect(framesSent(done)).toEqual([
      {
        type: 'conversation.item.create',
        item: {
          type: 'message',
          role: 'system',
          content: [{ type: 'input_text', text: 'The refund went through.' }],
        },
      },
      { type: 'response.create' },
    ]);
    expect(parts(done)).toEqual([
      {
        kind: 'event',
        name: 'command',
        detail: {
          id: command.id,
          action: 'say',
          sender: 'arn:aws:iam::123456789012:user/lead',
          status: 'applied',
        },
      },
    ]);
    // Applied once: the same command again (a second nudge, the attach's read) does nothing.
    expect(s.input({ type: 'command', command })).toEqual([]);
  });

  it('say without a response only adds the message', () => {
    const s = liveCall();
    const done = apply(s, stored({ action: 'say', text: 'note', role: 'user', respond: false }));
    expect(framesSent(done).map((f) => f.type)).toEqual(['conversation.item.create']);
  });

  it('update: session.update with type realtime and only what changes; later turns keep it', () => {
    const s = liveCall();
    const done = apply(
      s,
      stored({
        action: 'update',
        instructions: 'Answer in Spanish.',
        tools: [],
        toolChoice: 'auto',
      }),
    );
    expect(framesSent(done)).toEqual([
      {
        type: 'session.update',
        session: {
          type: 'realtime',
          instructions: 'Answer in Spanish.',
          tools: [
            expect.objectContaining({ type: 'function', name: 'end_call' }),
            expect.objectContaining({ type: 'function', name: 'transfer_call' }),
          ],
          tool_choice: 'auto',
        },
      },
    ]);
    // lookup_order was taken away: the model calling it now gets an error, and nothing runs.
    s.toolCall('call_1', 'lookup_order', { order_number: '1' });
    s.claimed();
    expect(ofType(s.commands, 'run-tool')).toEqual([]);
    s.responseCreated('resp_refused');
    s.responseDone('resp_refused');
    // The wrap-up keeps the new instructions.
    const wrap = s.advance(55 * 60_000);
    expect(framesSent(wrap, 'response.create')[0]).toMatchObject({
      response: { instructions: expect.stringMatching(/^Answer in Spanish\.\n\n/) },
    });
  });

  it('an update applied by an earlier owner is adopted on attach without a frame', () => {
    const s = new SessionScript({ greet: false });
    s.open();
    const earlier = stored(
      { action: 'update', instructions: 'New persona.' },
      { status: 'applied', appliedBy: 'worker-0' },
    );
    const loaded = loadCommands(s, [earlier]);
    expect(framesSent(loaded)).toEqual([]);
    expect(statusWrites(loaded)).toEqual([]);
    const wrap = s.advance(55 * 60_000);
    expect(framesSent(wrap, 'response.create')[0]).toMatchObject({
      response: { instructions: expect.stringMatching(/^New persona\./) },
    });
  });

  it('cancel: response.cancel then output_audio_buffer.clear, only while a response runs', () => {
    const s = liveCall();
    expect(
      statusWrites(s.input({ type: 'command', command: stored({ action: 'cancel' }) })),
    ).toEqual([{ from: 'pending', to: 'refused', code: 'no_active_response' }]);
    s.responseCreated('resp_2');
    s.audioStarted('resp_2');
    expect(framesSent(apply(s, stored({ action: 'cancel' })))).toEqual([
      { type: 'response.cancel' },
      { type: 'output_audio_buffer.clear' },
    ]);
    // Its audio cleared on our request: on the record as cut off by the cancel, not by the caller.
    expect(parts(s.server({ type: 'output_audio_buffer.cleared', response_id: 'resp_2' }))).toEqual(
      [
        {
          kind: 'event',
          name: 'assistant_cut_off',
          detail: { responseId: 'resp_2', reason: 'cancelled' },
        },
      ],
    );
  });

  it('cancel: refused, not sent, when the response finished while the claim was on its way', () => {
    const s = liveCall();
    s.responseCreated('resp_2');
    s.audioStarted('resp_2');
    const command = stored({ action: 'cancel' });
    const asked = s.input({ type: 'command', command });
    expect(statusWrites(asked)).toEqual([{ from: 'pending', to: 'applied' }]);
    // The response ends and its audio drains before the claim comes back.
    s.responseDone('resp_2');
    s.audioStopped('resp_2');
    const done = s.input({
      type: 'command-updated',
      op: ofType(asked, 'update-command')[0]?.op ?? 0,
      done: true,
    });
    expect(framesSent(done)).toEqual([]);
    expect(statusWrites(done)).toEqual([
      { from: 'applied', to: 'refused', code: 'no_active_response' },
    ]);
    expect(parts(done)).toEqual([
      {
        kind: 'event',
        name: 'command',
        detail: expect.objectContaining({
          id: command.id,
          status: 'refused',
          error: 'no_active_response',
        }),
      },
    ]);
  });

  it('hangup: the goodbye plays out, then /hangup, as end_call; the call ends hung up by the agent', () => {
    const s = liveCall();
    const done = apply(s, stored({ action: 'hangup', goodbye: 'Goodbye from Example Co.' }));
    expect(framesSent(done)).toEqual([
      {
        type: 'response.create',
        response: { instructions: expect.stringContaining('"Goodbye from Example Co."') },
      },
    ]);
    expect(ofType(done, 'hangup')).toEqual([]);
    s.responseCreated('resp_bye');
    s.audioStarted('resp_bye');
    expect(ofType(s.responseDone('resp_bye'), 'hangup')).toEqual([]);
    // Only once the goodbye drained.
    expect(ofType(s.audioStopped('resp_bye'), 'hangup')).toHaveLength(1);
    s.hungUp();
    expect(sessionEnd(s.close(1000))).toMatchObject({ reason: 'hung_up_by_agent' });
    // The session is over: a command now is left as it is (the API reports a pending command of
    // an ended call as failed: call_ended).
    expect(
      s.input({
        type: 'command',
        command: stored({ action: 'say', text: 'x', role: 'system', respond: true }),
      }),
    ).toEqual([]);
  });

  it('refuses a say while the call is leaving, and fails one whose call is ending', () => {
    const s = liveCall();
    apply(s, stored({ action: 'hangup' }));
    expect(
      statusWrites(
        s.input({
          type: 'command',
          command: stored({ action: 'say', text: 'x', role: 'system', respond: true }),
        }),
      ),
    ).toEqual([{ from: 'pending', to: 'refused', code: 'call_leaving' }]);
    const ending = liveCall({ autoAnswer: false });
    ending.close(1006);
    expect(
      statusWrites(ending.input({ type: 'command', command: stored({ action: 'cancel' }) })),
    ).toEqual([{ from: 'pending', to: 'failed', code: 'call_ended' }]);
  });

  it('hangup: the goodbye is capped when it never plays', () => {
    const s = liveCall();
    apply(s, stored({ action: 'hangup' }));
    expect(ofType(s.advance(s.timerDueIn('farewell') ?? 0), 'hangup')).toHaveLength(1);
  });

  it('transfer: /refer after what is playing, confirmed by the socket closing', () => {
    const s = liveCall();
    s.responseCreated('resp_talk');
    const done = apply(s, stored({ action: 'transfer', target: 'support' }));
    expect(ofType(done, 'refer')).toEqual([]);
    expect(ofType(s.responseDone('resp_talk'), 'refer')).toEqual([
      expect.objectContaining({ uri: 'sip:support@example.com' }),
    ]);
    // The /refer on its way: the call is leaving, a hang-up now is refused and sends nothing.
    const meanwhile = s.input({ type: 'command', command: stored({ action: 'hangup' }) });
    expect(statusWrites(meanwhile)).toEqual([
      { from: 'pending', to: 'refused', code: 'call_leaving' },
    ]);
    expect(framesSent(meanwhile)).toEqual([]);
    s.referred('referred');
    expect(parts(s.commands)).toContainEqual(
      expect.objectContaining({
        name: 'transfer_started',
        detail: { target: 'support', why: 'command' },
      }),
    );
    expect(sessionEnd(s.close(1000))).toMatchObject({ reason: 'transferred' });
  });

  it('transfer with an announcement while a response runs: it waits, keeps its words, and /refer follows it', () => {
    const s = liveCall();
    s.responseCreated('resp_talk');
    s.audioStarted('resp_talk');
    const done = apply(
      s,
      stored({ action: 'transfer', target: 'support', announce: 'Transferring you now.' }),
    );
    // The server would refuse a second response now: the announcement waits for response.done.
    expect(framesSent(done)).toEqual([]);
    // ...and then goes out with its instructions, not as a bare response.create.
    const talked = s.responseDone('resp_talk');
    expect(framesSent(talked)).toEqual([
      {
        type: 'response.create',
        response: { instructions: expect.stringContaining('"Transferring you now."') },
      },
    ]);
    expect(ofType(s.audioStopped('resp_talk'), 'refer')).toEqual([]);
    s.responseCreated('resp_announce');
    s.audioStarted('resp_announce');
    expect(ofType(s.responseDone('resp_announce'), 'refer')).toEqual([]);
    expect(ofType(s.audioStopped('resp_announce'), 'refer')).toHaveLength(1);
  });

  it('claims one command at a time, in the order they came: a hang-up behind a transfer is refused', () => {
    const s = liveCall();
    const first = s.input({
      type: 'command',
      command: stored({ action: 'transfer', target: 'support' }),
    });
    // The hang-up came while the transfer's claim is on its way: it waits for it, unclaimed (two
    // claims in flight could come back in either order, and the hang-up win).
    const second = s.input({ type: 'command', command: stored({ action: 'hangup' }) });
    expect(statusWrites(first)).toEqual([{ from: 'pending', to: 'applied' }]);
    expect(statusWrites(second)).toEqual([]);
    const settled = s.input({
      type: 'command-updated',
      op: ofType(first, 'update-command')[0]?.op ?? 0,
      done: true,
    });
    expect(ofType(settled, 'refer')).toHaveLength(1);
    expect(ofType(settled, 'hangup')).toEqual([]);
    expect(framesSent(settled)).toEqual([]);
    expect(statusWrites(settled)).toContainEqual({
      from: 'pending',
      to: 'refused',
      code: 'call_leaving',
    });
  });

  it('a goodbye refused as a conflict is asked for again with its words', () => {
    const s = liveCall();
    const done = apply(s, stored({ action: 'hangup', goodbye: 'Goodbye from Example Co.' }));
    expect(framesSent(done)).toHaveLength(1);
    // A server-started response won the race: ours is refused.
    s.responseCreated('resp_vad');
    s.server({
      type: 'error',
      error: { code: 'conversation_already_has_active_response', message: 'busy' },
    });
    // The VAD turn is not the goodbye: its end sends the goodbye again, and hangs up nothing.
    s.audioStarted('resp_vad');
    const vadDone = s.responseDone('resp_vad');
    expect(framesSent(vadDone)).toEqual([
      {
        type: 'response.create',
        response: { instructions: expect.stringContaining('"Goodbye from Example Co."') },
      },
    ]);
    expect(ofType(vadDone, 'hangup')).toEqual([]);
    expect(ofType(s.audioStopped('resp_vad'), 'hangup')).toEqual([]);
    // The goodbye's own response plays out, then /hangup.
    s.responseCreated('resp_bye');
    s.audioStarted('resp_bye');
    expect(ofType(s.responseDone('resp_bye'), 'hangup')).toEqual([]);
    expect(ofType(s.audioStopped('resp_bye'), 'hangup')).toHaveLength(1);
  });

  it('re-applies a dead worker’s hang-up in its place among the pending commands: a later transfer is refused', () => {
    const s = new SessionScript({ greet: false });
    s.open();
    const hangup = stored({ action: 'hangup' }, { status: 'applied', appliedBy: 'worker-dead' });
    const transfer = stored({ action: 'transfer', target: 'support' });
    const asked = loadCommands(s, [transfer, hangup]);
    // One claim: the hang-up's re-claim (applied → applied); the transfer waits behind it.
    expect(statusWrites(asked)).toEqual([{ from: 'applied', to: 'applied' }]);
    const reclaimed = s.input({
      type: 'command-updated',
      op: ofType(asked, 'update-command')[0]?.op ?? 0,
      done: true,
    });
    expect(statusWrites(reclaimed)).toContainEqual({
      from: 'pending',
      to: 'refused',
      code: 'call_leaving',
    });
    expect(ofType(reclaimed, 'refer')).toEqual([]);
  });

  it('transfer: refused for a browser call, and for a target no longer configured', () => {
    const webrtc = liveCall({ record: { channel: 'webrtc' } as never });
    expect(
      statusWrites(
        webrtc.input({
          type: 'command',
          command: stored({ action: 'transfer', target: 'support' }),
        }),
      ),
    ).toEqual([{ from: 'pending', to: 'refused', code: 'not_sip' }]);
    const sip = liveCall();
    expect(
      statusWrites(
        sip.input({ type: 'command', command: stored({ action: 'transfer', target: 'gone' }) }),
      ),
    ).toEqual([{ from: 'pending', to: 'refused', code: 'unknown_transfer_target' }]);
  });
});

describe('call-command metrics', () => {
  const points = (commands: readonly SessionCommand[]) =>
    ofType(commands, 'metrics').flatMap((m) => m.points);

  it('counts an applied command by Action, with its latency from the API accept', () => {
    const s = liveCall();
    const command = stored(
      { action: 'say', text: 'The refund went through.', role: 'system', respond: true },
      { createdAt: s.now - 240 },
    );
    const asked = s.input({ type: 'command', command });
    // Nothing counted before the claim: a claim lost to another worker is not this worker's.
    expect(points(asked)).toEqual([]);
    const done = s.input({
      type: 'command-updated',
      op: ofType(asked, 'update-command')[0]?.op ?? 0,
      done: true,
    });
    expect(points(done)).toEqual([
      { name: 'CallCommandsApplied', value: 1, dimension: { name: 'Action', value: 'say' } },
      { name: 'CallCommandLatency', value: 240, dimension: { name: 'Action', value: 'say' } },
    ]);
    // Not ours (claimed elsewhere): nothing counted here.
    const other = liveCall();
    expect(points(apply(other, stored({ action: 'hangup' }), false))).toEqual([]);
  });

  it('counts refused and failed commands by Reason (the error code)', () => {
    const s = liveCall();
    expect(points(s.input({ type: 'command', command: stored({ action: 'cancel' }) }))).toEqual([
      {
        name: 'CallCommandsRefused',
        value: 1,
        dimension: { name: 'Reason', value: 'no_active_response' },
      },
    ]);
    const ending = liveCall({ autoAnswer: false });
    ending.close(1006);
    expect(
      points(ending.input({ type: 'command', command: stored({ action: 'cancel' }) })),
    ).toEqual([
      { name: 'CallCommandsFailed', value: 1, dimension: { name: 'Reason', value: 'call_ended' } },
    ]);
  });
});

describe('applied exactly once across owners', () => {
  it('does not act when the claim is refused (another worker applied it, or the lease moved)', () => {
    const s = liveCall();
    const done = apply(
      s,
      stored({ action: 'say', text: 'x', role: 'system', respond: true }),
      false,
    );
    expect(framesSent(done)).toEqual([]);
    expect(parts(done)).toEqual([]);
  });

  it('leaves commands pending while handing off, and gives back one claimed meanwhile', () => {
    const s = liveCall();
    const command = stored({ action: 'say', text: 'x', role: 'system', respond: true });
    const asked = s.input({ type: 'command', command });
    s.input({ type: 'hand-off' });
    const back = s.input({
      type: 'command-updated',
      op: ofType(asked, 'update-command')[0]?.op ?? 0,
      done: true,
    });
    expect(framesSent(back)).toEqual([]);
    expect(statusWrites(back)).toEqual([{ from: 'applied', to: 'pending' }]);
    // A new command while handing off is not touched at all: the next owner applies it.
    expect(s.input({ type: 'command', command: stored({ action: 'cancel' }) })).toEqual([]);
  });

  it('gives back a hang-up or transfer whose goodbye was still playing at a hand-off; one already carried out stays applied', () => {
    for (const action of [
      { action: 'hangup', goodbye: 'Bye.' },
      { action: 'transfer', target: 'support', announce: 'Transferring you.' },
    ] as const) {
      const s = liveCall();
      const command = stored(action);
      apply(s, command);
      s.responseCreated('resp_bye');
      s.audioStarted('resp_bye');
      const out = [...s.input({ type: 'hand-off' }), ...s.close(1000)];
      expect(ofType(out, 'hangup'), action.action).toEqual([]);
      expect(ofType(out, 'refer'), action.action).toEqual([]);
      expect(
        ofType(out, 'update-command').map(({ commandId, from, to }) => ({ commandId, from, to })),
        action.action,
      ).toEqual([{ commandId: command.id, from: 'applied', to: 'pending' }]);
      expect(sessionEnd(out)).toMatchObject({ reason: 'handed_off' });
    }
    // Its /hangup already sent: nothing to give back.
    const s = liveCall();
    apply(s, stored({ action: 'hangup' }));
    s.responseCreated('resp_bye');
    s.audioStarted('resp_bye');
    s.responseDone('resp_bye');
    expect(ofType(s.audioStopped('resp_bye'), 'hangup')).toHaveLength(1);
    expect(ofType([...s.input({ type: 'hand-off' }), ...s.close(1000)], 'update-command')).toEqual(
      [],
    );
  });

  it('the next owner applies what is pending on attach, in the order sent, once', () => {
    const s = new SessionScript({ greet: false });
    s.open();
    const first = stored({ action: 'say', text: 'one', role: 'system', respond: false });
    const second = stored({ action: 'say', text: 'two', role: 'system', respond: false });
    const asked = loadCommands(s, [second, first]);
    // One claim at a time, the first sent first; the next is claimed once it is settled.
    const claims = ofType(asked, 'update-command');
    expect(claims.map((c) => c.commandId)).toEqual([first.id]);
    const applied = s.input({ type: 'command-updated', op: claims[0]?.op ?? 0, done: true });
    const next = ofType(applied, 'update-command').filter((c) => c.from === 'pending');
    expect(next.map((c) => c.commandId)).toEqual([second.id]);
    const sent = [
      ...framesSent(applied),
      ...framesSent(s.input({ type: 'command-updated', op: next[0]?.op ?? 0, done: true })),
    ];
    expect(sent.map((f) => (f.item as { content: { text: string }[] }).content[0]?.text)).toEqual([
      'one',
      'two',
    ]);
    // The nudge for the same command arriving late changes nothing.
    expect(s.input({ type: 'command', command: first })).toEqual([]);
  });

  it('re-applies, once, a hang-up a dead worker applied but never carried out (the call is still live); nothing else applied is', () => {
    const s = new SessionScript({ greet: false });
    s.open();
    const dead = { status: 'applied', appliedBy: 'worker-dead' } as const;
    const hangup = stored({ action: 'hangup', goodbye: 'Bye now.' }, dead);
    const say = stored({ action: 'say', text: 'once', role: 'system', respond: true }, dead);
    const mine = stored({ action: 'hangup' }, { status: 'applied', appliedBy: 'worker-1' });
    const asked = loadCommands(s, [say, hangup, mine]);
    const claims = ofType(asked, 'update-command');
    // A guarded re-claim (the shell adds the lease guard to applied → applied).
    expect(claims.map(({ commandId, from, to }) => ({ commandId, from, to }))).toEqual([
      { commandId: hangup.id, from: 'applied', to: 'applied' },
    ]);
    expect(framesSent(asked)).toEqual([]);
    const done = s.input({ type: 'command-updated', op: claims[0]?.op ?? 0, done: true });
    expect(framesSent(done)).toEqual([
      {
        type: 'response.create',
        response: { instructions: expect.stringContaining('"Bye now."') },
      },
    ]);
    s.responseCreated('resp_bye');
    s.audioStarted('resp_bye');
    s.responseDone('resp_bye');
    expect(ofType(s.audioStopped('resp_bye'), 'hangup')).toHaveLength(1);
    // Re-claimed by another worker first: nothing here.
    const other = new SessionScript({ greet: false });
    other.open();
    const lost = ofType(loadCommands(other, [hangup]), 'update-command')[0];
    expect(
      framesSent(other.input({ type: 'command-updated', op: lost?.op ?? 0, done: false })),
    ).toEqual([]);
  });

  it('a claim that throws leaves the command to be tried again', () => {
    const s = liveCall();
    const command = stored({ action: 'cancel' });
    s.responseCreated('resp_x');
    const asked = s.input({ type: 'command', command });
    s.input({
      type: 'command-updated',
      op: ofType(asked, 'update-command')[0]?.op ?? 0,
      done: false,
      error: 'throttled',
    });
    expect(statusWrites(s.input({ type: 'command', command }))).toEqual([
      { from: 'pending', to: 'applied' },
    ]);
  });

  it('a command before the socket opened waits for the attach to read it', () => {
    const s = new SessionScript();
    expect(s.input({ type: 'command', command: stored({ action: 'cancel' }) })).toEqual([]);
  });
});
