import { describe, expect, it } from 'vitest';
import {
  callUpdates,
  framesSent,
  logMessages,
  metricPoints,
  ofType,
  parts,
  SessionScript,
  sessionEnd,
  T0,
  timeline,
} from '../support/sideband-fakes';

/**
 * Whole calls played through the pure call-session machine: every socket event, timer and command
 * result is an input, and every effect is a command the test reads. No socket, no DynamoDB.
 */

const WRAP_UP_AFTER = 55 * 60_000;
/** The local default session's instructions. */
const PERSONA = 'You are the phone assistant of Example Co. Be brief and friendly.';

/** A call attached and greeted, with the greeting's response already done. */
function attachedCall(options: ConstructorParameters<typeof SessionScript>[0] = {}) {
  const s = new SessionScript(options);
  s.open();
  s.server({ type: 'response.created', response: { id: 'resp_greet' } });
  s.server({ type: 'response.done', response: { id: 'resp_greet' } });
  return s;
}

describe('attach and greeting', () => {
  it('greets at once on the first attach, starts its timers, and marks the call active', () => {
    const s = new SessionScript({ greeting: 'Hi there!' });
    const commands = s.open();
    expect(metricPoints(commands)).toEqual([{ name: 'AttachLatency', value: 200 }]);
    // The session's own instructions, then the greeting: response.instructions replaces them.
    expect(framesSent(commands)).toEqual([
      {
        type: 'response.create',
        response: { instructions: `${PERSONA}\n\nGreet the caller: Hi there!` },
      },
    ]);
    expect(ofType(commands, 'start-timer')).toEqual([
      { type: 'start-timer', timer: 'ping', ms: 25_000, repeat: true },
      // The session cap counts from accept (200 ms before the attach).
      { type: 'start-timer', timer: 'wrap-up', ms: WRAP_UP_AFTER - 200, repeat: false },
    ]);
    expect(callUpdates(commands)).toEqual([
      expect.objectContaining({
        from: ['accepted', 'accepting', 'active'],
        to: 'active',
        fields: { attachedAt: T0, owner: 'worker-1' },
      }),
    ]);
    expect(parts(commands)).toEqual([
      { kind: 'event', name: 'attached', detail: { owner: 'worker-1', greet: true } },
    ]);
    // The greeting goes out before anything else is written.
    expect(commands.map((c) => c.type)).toEqual([
      'metrics',
      'send',
      'start-timer',
      'start-timer',
      'update-call',
      'record',
      // The call's commands sent while nobody held it (call-commands.ts), read once per attach.
      'load-commands',
    ]);
  });

  it('asks for a plain response when the session has no greeting', () => {
    const s = new SessionScript({ greeting: null });
    expect(framesSent(s.open())).toEqual([{ type: 'response.create' }]);
  });

  it('neither greets nor reports setup latency on a reattach, and keeps the original wrap-up deadline', () => {
    const s = new SessionScript({ greet: false, record: { acceptedAt: T0 - 50 * 60_000 } });
    const commands = s.open();
    expect(framesSent(commands)).toEqual([]);
    expect(metricPoints(commands)).toEqual([]);
    expect(s.timerDueIn('wrap-up')).toBe(5 * 60_000);
    expect(parts(commands)).toContainEqual(
      expect.objectContaining({ name: 'attached', detail: { owner: 'worker-1', greet: false } }),
    );
  });

  it('wraps up at once when a reattached call is already past the wrap-up time', () => {
    const s = new SessionScript({ greet: false, record: { acceptedAt: T0 - 56 * 60_000 } });
    s.open();
    expect(s.timerDueIn('wrap-up')).toBe(0);
  });

  it('counts the wrap-up from the attach when the record has no accept time', () => {
    const s = new SessionScript({ record: { acceptedAt: undefined } });
    const commands = s.open();
    expect(metricPoints(commands)).toEqual([]);
    expect(s.timerDueIn('wrap-up')).toBe(WRAP_UP_AFTER);
  });

  it('logs a failed move to active and goes on', () => {
    const s = new SessionScript({ autoAnswer: false });
    s.open();
    const commands = s.input({
      type: 'call-updated',
      op: s.pending('update-call').op,
      error: 'table unavailable',
    });
    expect(logMessages(commands)).toEqual(['error: could not mark call active']);
    expect(s.machine.ended).toBeUndefined();
  });
});

describe('server events', () => {
  it('records an answer the caller barged into as cut off, once, by its response', () => {
    const s = attachedCall();
    s.responseCreated('resp_1');
    s.audioStarted('resp_1');
    const line = s.server({
      type: 'response.output_audio_transcript.done',
      response_id: 'resp_1',
      item_id: 'item_1',
      transcript: 'Our opening hours are nine to five on weekdays.',
    });
    expect(parts(line)).toEqual([
      expect.objectContaining({ kind: 'transcript', itemId: 'item_1', responseId: 'resp_1' }),
    ]);
    // The caller speaks: the server clears the audio ([SDK] OutputAudioBufferCleared), then ends
    // the response cancelled (turn_detected). One mark, from the first.
    s.server({ type: 'input_audio_buffer.speech_started', item_id: 'item_2' });
    const cleared = s.server({ type: 'output_audio_buffer.cleared', response_id: 'resp_1' });
    expect(parts(cleared)).toEqual([
      {
        kind: 'event',
        name: 'assistant_cut_off',
        detail: { responseId: 'resp_1', reason: 'interrupted' },
      },
    ]);
    expect(metricPoints(cleared)).toEqual([{ name: 'CallerBargeIns', value: 1 }]);
    const done = s.responseDone('resp_1', 'cancelled', [
      { type: 'message', id: 'item_1', role: 'assistant', status: 'incomplete' },
    ]);
    expect(parts(done).filter((p) => p.kind === 'event')).toEqual([]);
    // A response cancelled before any audio played (nothing to clear) is marked by its done.
    s.responseCreated('resp_2');
    const cancelled = s.responseDone('resp_2', 'cancelled', [
      { type: 'message', id: 'item_3', role: 'assistant', status: 'incomplete' },
    ]);
    expect(metricPoints(cancelled)).toEqual([{ name: 'CallerBargeIns', value: 1 }]);
    expect(parts(cancelled)).toEqual([
      {
        kind: 'event',
        name: 'assistant_cut_off',
        detail: { responseId: 'resp_2', reason: 'turn_detected' },
      },
    ]);
    // An answer heard to its end is not.
    s.responseCreated('resp_3');
    s.audioStarted('resp_3');
    expect(
      parts(s.responseDone('resp_3', 'completed', [{ type: 'message', id: 'item_4' }])),
    ).toEqual([]);
    expect(parts(s.audioStopped('resp_3'))).toEqual([]);
  });

  it('records transcripts of both sides, usage, and error events', () => {
    const s = attachedCall();
    const commands = [
      ...s.server({
        type: 'conversation.item.input_audio_transcription.completed',
        item_id: 'item_1',
        transcript: 'Where is my order?',
      }),
      ...s.server({
        type: 'response.output_audio_transcript.done',
        item_id: 'item_2',
        transcript: 'Let me look.',
      }),
      ...s.server({
        type: 'response.done',
        response: { id: 'resp_1', usage: { total_tokens: 30, input_tokens: 10 } },
      }),
      ...s.server({ type: 'error', error: { code: 'rate_limited', message: 'Slow down.' } }),
      ...s.server({ type: 'session.updated' }),
    ];
    expect(parts(commands)).toEqual([
      {
        kind: 'transcript',
        role: 'caller',
        text: 'Where is my order?',
        itemId: 'item_1',
        order: expect.any(Number),
      },
      {
        kind: 'transcript',
        role: 'assistant',
        text: 'Let me look.',
        itemId: 'item_2',
        order: expect.any(Number),
      },
      { kind: 'usage', responseId: 'resp_1', usage: { total_tokens: 30, input_tokens: 10 } },
      { kind: 'error', code: 'rate_limited', message: 'Slow down.' },
    ]);
    expect(ofType(commands, 'add-usage')).toEqual([
      { type: 'add-usage', usage: { total_tokens: 30, input_tokens: 10 } },
    ]);
    expect(logMessages(commands)).toEqual(['warn: sideband error event']);
  });

  it('sends a response.create refused as conflicting again once the active response is done', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'lookup_order', { order_number: '1' });
    s.claimed();
    // Sent at once: no response is known to be active.
    expect(framesSent(s.toolFinished('{"ok":1}'), 'response.create')).toHaveLength(1);
    const conflict = s.server({
      type: 'error',
      error: { code: 'conversation_already_has_active_response', message: 'busy' },
    });
    expect(parts(conflict)).toEqual([]);
    expect(framesSent(s.server({ type: 'response.created' }))).toEqual([]);
    expect(framesSent(s.server({ type: 'response.done', response: {} }))).toEqual([
      { type: 'response.create' },
    ]);
  });
});

describe('user tools', () => {
  it('claims, runs once per function call id, answers the model and asks for a response', () => {
    const s = attachedCall();
    const claim = s.toolCall('call_1', 'lookup_order', { order_number: '1234' });
    expect(ofType(claim, 'claim-tool-call')).toEqual([
      expect.objectContaining({ fnCallId: 'call_1', name: 'lookup_order' }),
    ]);
    // OpenAI repeats the event (before or after the claim came back): no second claim.
    expect(s.toolCall('call_1', 'lookup_order', { order_number: '1234' })).toEqual([]);
    const run = s.claimed();
    expect(ofType(run, 'run-tool')).toEqual([
      expect.objectContaining({
        name: 'lookup_order',
        arguments: '{"order_number":"1234"}',
        context: {
          callId: 'rtc_test',
          fnCallId: 'call_1',
          from: '+14155550123',
          callerVerified: false,
          to: '+18005550100',
          sessionKey: 'default',
        },
      }),
    ]);
    expect(s.toolCall('call_1', 'lookup_order', { order_number: '1234' })).toEqual([]);
    s.now += 120;
    const done = s.toolFinished('{"status":"shipped"}');
    expect(parts(done)).toEqual([
      {
        kind: 'tool',
        fnCallId: 'call_1',
        name: 'lookup_order',
        arguments: '{"order_number":"1234"}',
        output: '{"status":"shipped"}',
        latencyMs: 120,
        status: 'done',
      },
    ]);
    const tool = { name: 'Tool', value: 'lookup_order' };
    expect(metricPoints(done)).toEqual([
      { name: 'ToolCalls', value: 1, dimension: tool },
      { name: 'ToolLatency', value: 120, dimension: tool },
    ]);
    expect(framesSent(done)).toEqual([
      {
        type: 'conversation.item.create',
        item: { type: 'function_call_output', call_id: 'call_1', output: '{"status":"shipped"}' },
      },
      { type: 'response.create' },
    ]);
    expect(logMessages(done)).toEqual(['info: tool call']);
    expect(ofType(s.commands, 'claim-tool-call')).toHaveLength(1);
    expect(ofType(s.commands, 'run-tool')).toHaveLength(1);
  });

  it('returns a tool error or timeout to the model as its output, and counts it', () => {
    const s = attachedCall();
    s.toolCall('call_2', 'lookup_order', {});
    s.claimed();
    const output = JSON.stringify({ error: { code: 'timeout', message: 'too slow' } });
    const done = s.toolFinished(output, 'timeout');
    expect(parts(done)[0]).toMatchObject({ status: 'failed', error: 'timeout', output });
    expect(metricPoints(done).map((p) => p.name)).toEqual([
      'ToolCalls',
      'ToolLatency',
      'ToolErrors',
    ]);
    expect(framesSent(done, 'conversation.item.create')[0]?.item.output).toBe(output);
    expect(s.machine.ended).toBeUndefined();
  });

  it('does not run a tool call another session already claimed (a reattach)', () => {
    const s = attachedCall();
    s.toolCall('call_3', 'lookup_order', {});
    const commands = s.claimed(false);
    expect(logMessages(commands)).toEqual(['info: tool call already handled']);
    expect(ofType(commands, 'run-tool')).toEqual([]);
    expect(framesSent(commands)).toEqual([]);
  });

  it('runs two different function calls side by side', () => {
    const s = attachedCall();
    s.toolCall('call_a', 'lookup_order', { order_number: 'a' });
    s.toolCall('call_b', 'lookup_order', { order_number: 'b' });
    s.claimed();
    s.claimed();
    s.toolFinished('"a"');
    const second = s.toolFinished('"b"');
    expect(framesSent(second, 'conversation.item.create')[0]?.item.call_id).toBe('call_b');
  });
});

describe('end_call', () => {
  it('hangs up through /hangup, answers the model without a new response, and ends as hung_up_by_agent', () => {
    const s = attachedCall();
    s.toolCall('call_end', 'end_call', { reason: 'done' });
    const claimed = s.claimed();
    expect(parts(claimed)).toEqual([
      { kind: 'event', name: 'hangup', detail: { why: 'agent_end_call' } },
    ]);
    expect(ofType(claimed, 'hangup')).toHaveLength(1);
    const answered = s.hungUp();
    expect(framesSent(answered)).toEqual([
      {
        type: 'conversation.item.create',
        item: { type: 'function_call_output', call_id: 'call_end', output: '{"ok":true}' },
      },
    ]);
    expect(metricPoints(answered)[0]).toEqual({
      name: 'ToolCalls',
      value: 1,
      dimension: { name: 'Tool', value: 'end_call' },
    });
    // OpenAI closes the socket as the call ends.
    s.now += 1000;
    const closed = s.close(1000);
    expect(sessionEnd(closed)).toEqual({
      reason: 'hung_up_by_agent',
      code: 1000,
      handedOff: false,
    });
    expect(callUpdates(closed)[0]?.fields).toMatchObject({ endReason: 'hung_up_by_agent' });
  });

  it('closes the socket itself when /hangup fails, and still answers the tool call', () => {
    const s = attachedCall();
    s.toolCall('call_end', 'end_call', {});
    s.claimed();
    const failed = s.hungUp(new Error('502'));
    expect(logMessages(failed)).toContain('error: hangup failed; closing the sideband');
    expect(ofType(failed, 'close-socket')).toEqual([{ type: 'close-socket', code: 1000 }]);
    expect(framesSent(failed, 'conversation.item.create')).toHaveLength(1);
    expect(sessionEnd(s.close(1000))?.reason).toBe('hung_up_by_agent');
  });
});

describe('transfers', () => {
  it('confirms a transfer when the socket closes while it is pending', () => {
    const s = attachedCall();
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    const claimed = s.claimed();
    expect(ofType(claimed, 'refer')).toEqual([
      expect.objectContaining({ uri: 'sip:support@example.com' }),
    ]);
    s.now += 40;
    const referred = s.referred('referred');
    expect(timeline(referred)).toEqual(['transfer_started']);
    expect(parts(referred)[0]).toMatchObject({ detail: { target: 'support', why: 'tool' } });
    expect(callUpdates(referred)[0]).toMatchObject({
      from: ['active'],
      to: 'active',
      fields: { transferTarget: 'support', transferStatus: 'pending' },
    });
    expect(s.timerDueIn('transfer-confirm-1')).toBe(15_000);
    // The caller is leaving: the output, and no new response.
    expect(framesSent(referred)).toEqual([
      {
        type: 'conversation.item.create',
        item: {
          type: 'function_call_output',
          call_id: 'call_t',
          output: JSON.stringify({ ok: true, message: 'Transferring to support.' }),
        },
      },
    ]);
    expect(parts(referred)[1]).toMatchObject({ kind: 'tool', latencyMs: 40 });
    s.now += 500;
    const closed = s.close(1000);
    expect(ofType(closed, 'cancel-timer').map((c) => c.timer)).toContain('transfer-confirm-1');
    expect(metricPoints(closed).map((p) => p.name)).toContain('TransfersConfirmed');
    expect(sessionEnd(closed)).toEqual({ reason: 'transferred', code: 1000, handedOff: false });
    expect(callUpdates(closed).at(-1)?.fields).toMatchObject({
      endReason: 'transferred',
      transferStatus: 'confirmed',
    });
  });

  it('counts any close within the deadline as the confirmation, 1006 included', () => {
    const s = attachedCall();
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    s.claimed();
    s.referred('referred');
    expect(sessionEnd(s.close(1006))?.reason).toBe('transferred');
  });

  it('fails a transfer whose /refer throws: recorded first, then the model is told and asked to speak', () => {
    const s = attachedCall({ autoAnswer: false });
    s.input({ type: 'call-updated', op: s.pending('update-call').op });
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    s.claimed();
    const failed = s.referred(new Error('REFER 500'));
    expect(logMessages(failed)).toEqual(['error: refer failed', 'warn: transfer failed']);
    expect(metricPoints(failed)).toEqual([{ name: 'TransfersFailed', value: 1 }]);
    expect(parts(failed)).toEqual([
      {
        kind: 'event',
        name: 'transfer_failed',
        detail: { target: 'support', reason: 'refer_error' },
      },
    ]);
    expect(callUpdates(failed)[0]?.fields).toEqual({
      transferTarget: 'support',
      transferStatus: 'failed',
    });
    // The tool output waits for the record to show the failure.
    expect(framesSent(failed)).toEqual([]);
    const told = s.input({ type: 'call-updated', op: s.pending('update-call').op });
    expect(framesSent(told)).toEqual([
      {
        type: 'conversation.item.create',
        item: {
          type: 'function_call_output',
          call_id: 'call_t',
          output: JSON.stringify({ ok: false, message: 'The transfer to support failed.' }),
        },
      },
      { type: 'response.create' },
    ]);
    expect(s.timerRunning('transfer-confirm-1')).toBe(false);
  });

  it('tells the model when /refer finds the call gone, with no failure counted', () => {
    const s = attachedCall();
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    s.claimed();
    const gone = s.referred('gone');
    expect(metricPoints(gone).map((p) => p.name)).not.toContain('TransfersFailed');
    expect(JSON.parse(framesSent(gone, 'conversation.item.create')[0]?.item.output)).toEqual({
      ok: false,
      message: 'The call has already ended.',
    });
    expect(framesSent(gone, 'response.create')).toHaveLength(1);
  });

  it('refuses a target outside the allowlist without calling /refer', () => {
    const s = attachedCall();
    s.toolCall('call_t', 'transfer_call', { target: 'sip:attacker@evil.example' });
    const refused = s.claimed();
    expect(ofType(refused, 'refer')).toEqual([]);
    expect(JSON.parse(framesSent(refused, 'conversation.item.create')[0]?.item.output)).toEqual({
      ok: false,
      message: 'Transfers are allowed only to: support, broken.',
    });
    expect(framesSent(refused, 'response.create')).toHaveLength(1);
    // Unreadable arguments name no target at all.
    s.toolCall('call_u', 'transfer_call', 'not json');
    expect(ofType(s.claimed(), 'refer')).toEqual([]);
  });

  it('fails a transfer the socket never confirms: the deadline passes, the model is told, the call goes on', () => {
    const s = attachedCall();
    s.toolCall('call_t', 'transfer_call', { target: 'broken' });
    s.claimed();
    s.referred('referred');
    expect(s.advance(14_999)).toEqual([]);
    const missed = s.advance(1);
    expect(logMessages(missed)).toEqual(['warn: transfer failed']);
    expect(metricPoints(missed)).toEqual([{ name: 'TransfersFailed', value: 1 }]);
    expect(parts(missed)[0]).toMatchObject({
      name: 'transfer_failed',
      detail: { target: 'broken', reason: 'not_confirmed' },
    });
    expect(framesSent(missed)).toEqual([
      {
        type: 'conversation.item.create',
        item: {
          type: 'message',
          role: 'system',
          content: [
            {
              type: 'input_text',
              text: 'The transfer to broken did not go through. Tell the caller and offer to help or try again.',
            },
          ],
        },
      },
      { type: 'response.create' },
    ]);
    expect(s.machine.ended).toBeUndefined();
    // A later close is the caller's, not a transfer.
    const closed = s.close(1006);
    expect(metricPoints(closed).map((p) => p.name)).not.toContain('TransfersConfirmed');
    expect(sessionEnd(closed)?.reason).toBe('caller_hung_up');
    expect(callUpdates(closed).at(-1)?.fields).not.toHaveProperty('transferStatus');
  });
});

describe('wrap-up before the session cap', () => {
  it('asks the model to wrap up, then hangs up after the grace period', () => {
    const s = attachedCall({ record: { acceptedAt: T0 } });
    const wrapUp = s.advance(WRAP_UP_AFTER);
    expect(logMessages(wrapUp)).toContain('info: session cap approaching: wrapping up');
    expect(metricPoints(wrapUp)).toEqual([{ name: 'SessionCapHits', value: 1 }]);
    expect(timeline(wrapUp)).toEqual(['wrap_up']);
    expect(framesSent(wrapUp, 'response.create')).toEqual([
      {
        type: 'response.create',
        response: {
          instructions: `${PERSONA}\n\nThe call must end in a minute. Briefly wrap up and say goodbye now.`,
        },
      },
    ]);
    expect(s.timerDueIn('wrap-up-grace')).toBe(60_000);
    const graceOver = s.advance(60_000);
    expect(parts(graceOver)).toContainEqual({
      kind: 'event',
      name: 'hangup',
      detail: { why: 'session_cap' },
    });
    expect(ofType(graceOver, 'hangup')).toHaveLength(1);
    expect(s.hungUp()).toEqual([]);
    const closed = s.close(1000);
    expect(sessionEnd(closed)?.reason).toBe('hung_up_by_agent');
    expect(callUpdates(closed).at(-1)?.fields).toMatchObject({
      durationMs: WRAP_UP_AFTER + 60_000,
    });
  });

  it('transfers to the wrap-up target instead, when one is set', () => {
    const s = attachedCall({
      record: { acceptedAt: T0 },
      config: { wrapUpTransferTarget: 'support' },
    });
    s.advance(WRAP_UP_AFTER);
    const graceOver = s.advance(60_000);
    expect(ofType(graceOver, 'hangup')).toEqual([]);
    expect(ofType(graceOver, 'refer')).toEqual([
      expect.objectContaining({ uri: 'sip:support@example.com' }),
    ]);
    const referred = s.referred('referred');
    expect(parts(referred)[0]).toMatchObject({
      name: 'transfer_started',
      detail: { target: 'support', why: 'wrap_up' },
    });
    // No tool call to answer.
    expect(framesSent(referred)).toEqual([]);
    expect(sessionEnd(s.close(1000))?.reason).toBe('transferred');
  });
});

describe('keep-alive', () => {
  it('pings every interval and terminates a peer that missed a pong', () => {
    const s = attachedCall({ pingIntervalMs: 1000, answerPings: false });
    expect(ofType(s.advance(1000), 'send-ping')).toHaveLength(1);
    s.input({ type: 'pong' });
    expect(ofType(s.advance(1000), 'send-ping')).toHaveLength(1);
    // No pong this time.
    const missed = s.advance(1000);
    expect(ofType(missed, 'send-ping')).toEqual([]);
    expect(ofType(missed, 'terminate-socket')).toHaveLength(1);
    expect(logMessages(missed)).toEqual(['warn: sideband peer missed a pong; terminating']);
    // A terminated socket reports 1006, which would otherwise read as the caller hanging up.
    const closed = s.close(1006);
    expect(sessionEnd(closed)?.reason).toBe('keepalive_timeout');
    expect(ofType(closed, 'cancel-timer').map((c) => c.timer)).toEqual(['ping', 'wrap-up']);
  });
});

describe('hand-off', () => {
  it('closes with 1000 and lets go without ending the call', () => {
    const s = attachedCall();
    const handOff = s.input({ type: 'hand-off' });
    expect(handOff).toEqual([{ type: 'close-socket', code: 1000, reason: 'handing off' }]);
    const closed = s.close(1000);
    expect(timeline(closed)).toEqual(['handed_off']);
    expect(parts(closed)[0]).toMatchObject({ detail: { reason: 'handed_off', code: 1000 } });
    expect(callUpdates(closed)).toEqual([]);
    expect(metricPoints(closed)).toEqual([]);
    expect(sessionEnd(closed)).toEqual({ reason: 'handed_off', code: 1000, handedOff: true });
  });

  it('wins over a pending transfer, which is still counted as confirmed', () => {
    const s = attachedCall();
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    s.claimed();
    s.referred('referred');
    s.input({ type: 'hand-off' });
    const closed = s.close(1000);
    expect(metricPoints(closed)).toEqual([{ name: 'TransfersConfirmed', value: 1 }]);
    expect(sessionEnd(closed)?.handedOff).toBe(true);
  });

  it('ends as handed off when the hand-off comes while the recorder is closing', () => {
    const s = attachedCall({ autoAnswer: false });
    s.close(1006);
    s.input({ type: 'hand-off' });
    const flushed = s.input({ type: 'recorder-closed', op: s.pending('close-recorder').op });
    expect(callUpdates(flushed).filter((u) => u.to === 'ended')).toEqual([]);
    expect(sessionEnd(flushed)).toEqual({
      reason: 'caller_hung_up',
      code: 1006,
      handedOff: true,
    });
  });
});

describe('a lost lease (the worker was fenced)', () => {
  it('drops the socket at once, without a hang-up, and lets go without recording an end', () => {
    const s = attachedCall();
    const lost = s.input({ type: 'lease-lost' });
    expect(ofType(lost, 'terminate-socket')).toHaveLength(1);
    expect(ofType(lost, 'close-socket')).toEqual([]);
    expect(ofType(lost, 'hangup')).toEqual([]);
    expect(timeline(lost)).toEqual(['lease_lost']);
    expect(logMessages(lost)).toEqual([
      'warn: lease lost: dropping the sideband without hanging up',
    ]);
    // The terminated socket reports 1006, which is not the caller hanging up here.
    const closed = s.close(1006);
    expect(timeline(closed)).toEqual(['handed_off']);
    expect(callUpdates(s.commands).filter((u) => u.to === 'ended')).toEqual([]);
    expect(ofType(closed, 'reattach')).toEqual([]);
    expect(sessionEnd(closed)).toEqual({ reason: 'handed_off', code: 1006, handedOff: true });
  });

  it('stores the output of a tool still running for the worker that takes the call over', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'lookup_order', { order_number: '1' });
    s.claimed();
    s.input({ type: 'lease-lost' });
    s.close(1006);
    expect(s.machine.ended).toBeUndefined();
    const finished = s.toolFinished('{"ok":true}');
    expect(framesSent(finished)).toEqual([]);
    expect(ofType(finished, 'store-tool-output')).toEqual([
      expect.objectContaining({ output: expect.objectContaining({ fnCallId: 'call_1' }) }),
    ]);
    expect(sessionEnd(finished)?.handedOff).toBe(true);
  });

  it('never hangs up for the next owner: a no-speech deadline or a goodbye falling due meanwhile is left alone', () => {
    const s = attachedCall({ config: { noSpeechTimeoutMs: 5000 } });
    s.input({ type: 'lease-lost' });
    s.advance(10_000);
    expect(ofType(s.commands, 'hangup')).toEqual([]);
    expect(sessionEnd(s.close(1006))?.handedOff).toBe(true);
  });

  it('drops a reattach under way', () => {
    const s = attachedCall();
    s.close(1001);
    expect(ofType(s.input({ type: 'lease-lost' }), 'terminate-socket')).toHaveLength(1);
    const failed = s.input({ type: 'socket-error', error: 'closed before established' });
    expect(sessionEnd(failed)).toEqual({ reason: 'handed_off', code: 1001, handedOff: true });
    expect(callUpdates(s.commands).filter((u) => u.to === 'ended')).toEqual([]);
  });
});

describe('metrics of what the worker does under faults', () => {
  it('counts reattaches, idle timeouts and skipped tool calls', () => {
    const s = attachedCall();
    s.close(1000);
    expect(metricPoints(s.open())).toEqual([{ name: 'Reattaches', value: 1 }]);
    expect(
      metricPoints(s.server({ type: 'input_audio_buffer.timeout_triggered', item_id: 'item_1' })),
    ).toEqual([{ name: 'IdleTimeouts', value: 1 }]);
    expect(
      metricPoints(s.toolCall('call_x', 'lookup_order', {}, { status: 'incomplete' })),
    ).toEqual([{ name: 'ToolCallsSkipped', value: 1 }]);
  });

  it('counts truncated tool outputs, and outputs handed over by a previous worker', () => {
    const s = attachedCall({ config: { maxToolOutputBytes: 1024 } });
    s.toolCall('call_1', 'lookup_order', {});
    s.claimed();
    const done = s.toolFinished(JSON.stringify({ text: 'x'.repeat(2000) }));
    expect(metricPoints(done).filter((m) => m.name === 'ToolOutputsTruncated')).toEqual([
      { name: 'ToolOutputsTruncated', value: 1 },
    ]);

    const next = new SessionScript({ greet: false });
    next.open();
    next.input({
      type: 'tool-outputs-loaded',
      op: next.pending('load-tool-outputs').op,
      undelivered: [{ fnCallId: 'call_9', name: 'lookup_order', output: '{}' }],
      running: [],
    });
    const delivered = next.input({
      type: 'tool-output-marked',
      op: next.pending('mark-tool-output-delivered').op,
      delivered: true,
    });
    expect(metricPoints(delivered)).toEqual([{ name: 'ToolOutputsHandedOver', value: 1 }]);
    // Marked by another worker first: not ours to count.
    const other = new SessionScript({ greet: false });
    other.open();
    other.input({
      type: 'tool-outputs-loaded',
      op: other.pending('load-tool-outputs').op,
      undelivered: [{ fnCallId: 'call_9', name: 'lookup_order', output: '{}' }],
      running: [],
    });
    expect(
      metricPoints(
        other.input({
          type: 'tool-output-marked',
          op: other.pending('mark-tool-output-delivered').op,
          delivered: false,
        }),
      ),
    ).toEqual([]);
  });
});

describe('how the call ends', () => {
  it.each([
    [1000, 'normal_closure'],
    [1001, 'going_away'],
    [1006, 'caller_hung_up'],
    [4000, 'server_rejected_session'],
    [4321, 'closed_4321'],
    [1011, 'closed_1011'],
  ])('close %i → %s', (code, reason) => {
    const s = attachedCall();
    s.now += 90_000;
    let closed = s.close(code);
    // A clean close is tried once more: the reattach finds the call gone.
    if (code === 1000 || code === 1001) {
      expect(ofType(closed, 'reattach')).toHaveLength(1);
      closed = s.input({ type: 'attach-refused', status: 404 });
    }
    expect(callUpdates(closed)).toEqual([
      expect.objectContaining({
        from: ['accepting', 'accepted', 'active'],
        to: 'ended',
        // From accept (200 ms before the attach) to the close.
        fields: { endReason: reason, endedAt: T0 + 90_000, durationMs: 90_200 },
        release: true,
      }),
    ]);
    expect(metricPoints(closed)).toEqual([
      { name: 'CallsEnded', value: 1, dimension: { name: 'EndReason', value: reason } },
      { name: 'CallsEndedByChannel', value: 1, dimension: { name: 'Channel', value: 'sip' } },
      { name: 'CallDuration', value: 90.2 },
    ]);
    expect(sessionEnd(closed)).toEqual({ reason, code, handedOff: false });
  });

  it('reads session_expired from the error event before the 1001', () => {
    const s = attachedCall();
    s.server({ type: 'error', error: { code: 'session_expired', message: '60 minutes' } });
    expect(sessionEnd(s.close(1001))?.reason).toBe('session_expired');
  });

  it('reads a hang-up the agent asked for over the close code', () => {
    const s = attachedCall();
    s.toolCall('call_end', 'end_call', {});
    s.claimed();
    // Even before /hangup answered.
    expect(sessionEnd(s.close(1006))?.reason).toBe('hung_up_by_agent');
  });

  it('ranks the causes: hand-off, keep-alive, transfer, session expiry, hang-up', () => {
    const s = attachedCall({ pingIntervalMs: 1000 });
    s.server({ type: 'error', error: { code: 'session_expired' } });
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    s.claimed();
    s.referred('referred');
    expect(sessionEnd(s.close(1001))?.reason).toBe('transferred');

    const k = attachedCall({ pingIntervalMs: 1000, answerPings: false });
    k.toolCall('call_t', 'transfer_call', { target: 'support' });
    k.claimed();
    k.referred('referred');
    k.advance(2000);
    expect(sessionEnd(k.close(1006))?.reason).toBe('keepalive_timeout');

    const e = attachedCall();
    e.server({ type: 'error', error: { code: 'session_expired' } });
    e.toolCall('call_end', 'end_call', {});
    e.claimed();
    expect(sessionEnd(e.close(1001))?.reason).toBe('session_expired');
  });

  it('flushes the recorder, then records the end, then reports it, in that order', () => {
    const s = attachedCall({ autoAnswer: false });
    s.input({ type: 'call-updated', op: s.pending('update-call').op });
    s.now += 1000;
    const closed = s.close(1006);
    expect(closed.map((c) => c.type)).toEqual([
      'cancel-timer',
      'cancel-timer',
      'record',
      'close-recorder',
    ]);
    expect(timeline(closed)).toEqual(['ended']);
    s.now += 50;
    const flushed = s.input({ type: 'recorder-closed', op: s.pending('close-recorder').op });
    expect(flushed.map((c) => c.type)).toEqual(['update-call']);
    // The end time is when the socket closed, not when the write went out.
    expect(callUpdates(flushed)[0]?.fields).toMatchObject({ endedAt: T0 + 1000 });
    const done = s.input({
      type: 'call-updated',
      op: s.pending('update-call').op,
      error: 'throttled',
    });
    expect(logMessages(done)).toEqual(['error: could not record call end', 'info: call ended']);
    expect(done.map((c) => c.type)).toEqual(['log', 'log', 'metrics', 'session-ended']);
    expect(s.machine.ended?.reason).toBe('caller_hung_up');
  });

  it('cancels the wrap-up grace timer too when the call ends during it', () => {
    const s = attachedCall({ record: { acceptedAt: T0 } });
    s.advance(WRAP_UP_AFTER);
    const closed = s.close(1006);
    // The wrap-up timer has fired already: only what still runs is cancelled.
    expect(ofType(closed, 'cancel-timer').map((c) => c.timer)).toEqual(['ping', 'wrap-up-grace']);
    expect(s.timerRunning('wrap-up-grace')).toBe(false);
  });
});

describe('a failed attach', () => {
  it('counts a browser (WebRTC) call that ends under its own channel', () => {
    const s = new SessionScript({ record: { channel: 'webrtc' } });
    const refused = s.input({ type: 'attach-refused', status: 404 });
    expect(metricPoints(refused)).toContainEqual({
      name: 'CallsEndedByChannel',
      value: 1,
      dimension: { name: 'Channel', value: 'webrtc' },
    });
  });

  it('records a 404 as gone, with no duration', () => {
    const s = new SessionScript();
    const refused = s.input({ type: 'attach-refused', status: 404 });
    expect(refused[0]).toEqual({ type: 'terminate-socket' });
    expect(logMessages(refused)).toEqual(['info: call ended']);
    expect(callUpdates(refused)[0]?.fields).toEqual({
      endReason: 'gone',
      endedAt: T0,
      durationMs: 0,
    });
    expect(metricPoints(refused)).toEqual([
      { name: 'CallsEnded', value: 1, dimension: { name: 'EndReason', value: 'gone' } },
      { name: 'CallsEndedByChannel', value: 1, dimension: { name: 'Channel', value: 'sip' } },
    ]);
    expect(sessionEnd(refused)).toEqual({ reason: 'gone', code: 0, handedOff: false });
  });

  it('retries a refused attach (a 5xx) and a network error with backoff, and goes on once one gets through', () => {
    const s = new SessionScript();
    s.input({ type: 'attach' });
    const refused = s.input({ type: 'attach-refused', status: 503 });
    expect(refused[0]).toEqual({ type: 'terminate-socket' });
    expect(logMessages(refused)).toEqual([
      'error: sideband refused',
      'warn: sideband attach failed; retrying',
    ]);
    expect(metricPoints(refused)).toEqual([{ name: 'AttachRetries', value: 1 }]);
    expect(ofType(refused, 'start-timer')).toEqual([
      { type: 'start-timer', timer: 'attach-retry', ms: 250, repeat: false },
    ]);
    expect(callUpdates(refused)).toEqual([]);
    expect(sessionEnd(refused)).toBeUndefined();
    expect(ofType(s.advance(250), 'connect')).toHaveLength(1);
    // A network error, then the close that follows it: one failure.
    s.input({ type: 'socket-error', error: 'connect ECONNREFUSED' });
    expect(s.close(1006)).toEqual([]);
    expect(s.timerDueIn('attach-retry')).toBe(500);
    expect(ofType(s.advance(500), 'connect')).toHaveLength(1);
    // The API key could not be read (the shell reports it as an error): retried the same way.
    s.input({ type: 'socket-error', error: 'secret unavailable' });
    expect(s.timerDueIn('attach-retry')).toBe(1000);
    s.advance(1000);
    const opened = s.open();
    expect(framesSent(opened, 'response.create')).toHaveLength(1);
    expect(callUpdates(opened)[0]).toMatchObject({ to: 'active' });
    expect(ofType(s.commands, 'hangup')).toEqual([]);
    expect(metricPoints(s.commands).filter((m) => m.name === 'AttachRetries')).toHaveLength(3);
  });

  it('gives up once the attach window has passed: hangs up, then records why and gives the slot back', () => {
    const s = new SessionScript();
    s.input({ type: 'attach' });
    // Slow 5xx answers (a second each), for 20 s.
    let failures = 0;
    while (!s.isPending('hangup') && failures < 100) {
      s.now += 1000;
      s.input({ type: 'attach-refused', status: 502 });
      failures++;
      if (!s.isPending('hangup')) s.advance(s.timerDueIn('attach-retry') ?? 0);
    }
    expect(s.now - T0).toBeGreaterThanOrEqual(20_000);
    expect(s.now - T0).toBeLessThan(26_000);
    expect(failures).toBeGreaterThan(3);
    expect(logMessages(s.commands)).toContain('error: sideband attach failed for good; hanging up');
    expect(timeline(s.commands)).toContain('attach_failed');
    const ended = s.hungUp();
    expect(callUpdates(ended)).toEqual([
      expect.objectContaining({
        to: 'ended',
        release: true,
        fields: expect.objectContaining({ endReason: 'attach_failed_502', durationMs: 0 }),
      }),
    ]);
    expect(sessionEnd(ended)).toEqual({ reason: 'attach_failed_502', code: 0, handedOff: false });
    expect(metricPoints(ended)).toEqual([
      {
        name: 'CallsEnded',
        value: 1,
        dimension: { name: 'EndReason', value: 'attach_failed_502' },
      },
      { name: 'CallsEndedByChannel', value: 1, dimension: { name: 'Channel', value: 'sip' } },
    ]);
  });

  it('records attach_failed for errors, and gone when the hang-up finds the call gone', () => {
    const s = new SessionScript({ attachWindowMs: 1000 });
    s.input({ type: 'attach' });
    s.input({ type: 'socket-error', error: 'Opening handshake has timed out' });
    s.advance(1000);
    s.input({ type: 'socket-error', error: 'Opening handshake has timed out' });
    expect(s.isPending('hangup')).toBe(true);
    expect(parts(s.commands).find((p) => p.kind === 'event' && p.name === 'attach_failed')).toEqual(
      {
        kind: 'event',
        name: 'attach_failed',
        detail: { reason: 'attach_failed', detail: 'Opening handshake has timed out', attempts: 2 },
      },
    );
    expect(sessionEnd(s.hungUp('gone'))?.reason).toBe('gone');
  });

  it('treats a 404 during the retries as final: the call is gone, with no hang-up', () => {
    const s = new SessionScript();
    s.input({ type: 'attach' });
    s.input({ type: 'attach-refused', status: 500 });
    s.advance(250);
    const gone = s.input({ type: 'attach-refused', status: 404 });
    expect(sessionEnd(gone)?.reason).toBe('gone');
    expect(ofType(s.commands, 'hangup')).toEqual([]);
  });

  it('lets go at once, without a hang-up or an end, when handed off or fenced between attempts', () => {
    for (const type of ['hand-off', 'lease-lost'] as const) {
      const s = new SessionScript();
      s.input({ type: 'attach' });
      s.input({ type: 'attach-refused', status: 503 });
      const gone = s.input({ type });
      expect(sessionEnd(gone)).toEqual({ reason: 'handed_off', code: 0, handedOff: true });
      expect(callUpdates(s.commands)).toEqual([]);
      expect(ofType(s.commands, 'hangup')).toEqual([]);
      expect(ofType(s.advance(5000), 'connect')).toEqual([]);
    }
  });

  it('a hand-off while an attempt is connecting closes it and ends handed off, not failed', () => {
    const s = new SessionScript();
    s.input({ type: 'attach' });
    expect(s.input({ type: 'hand-off' })).toEqual([
      { type: 'close-socket', code: 1000, reason: 'handing off' },
    ]);
    const failed = s.input({ type: 'socket-error', error: 'closed before established' });
    expect(sessionEnd(failed)).toEqual({ reason: 'handed_off', code: 0, handedOff: true });
    expect(callUpdates(s.commands)).toEqual([]);
  });

  it('takes the first cause: a socket error after a 404 changes nothing', () => {
    const s = new SessionScript({ autoAnswer: false });
    s.input({ type: 'attach-refused', status: 404 });
    const error = s.input({ type: 'socket-error', error: 'closed before established' });
    expect(logMessages(error)).toEqual(['warn: sideband error']);
    expect(ofType(error, 'close-recorder')).toEqual([]);
    // A close before the open is ignored.
    expect(s.close(1006)).toEqual([]);
    s.input({ type: 'recorder-closed', op: s.pending('close-recorder').op });
    const done = s.input({ type: 'call-updated', op: s.pending('update-call').op });
    expect(sessionEnd(done)?.reason).toBe('gone');
    expect(ofType(s.commands, 'session-ended')).toHaveLength(1);
  });

  it('only logs a socket error once the socket is open', () => {
    const s = attachedCall();
    const error = s.input({ type: 'socket-error', error: 'ECONNRESET' });
    expect(error).toEqual([
      { type: 'log', level: 'warn', message: 'sideband error', fields: { error: 'ECONNRESET' } },
    ]);
  });
});

describe('a whole call', () => {
  it('greets, runs a tool, and ends when the caller hangs up', () => {
    const s = new SessionScript();
    s.open();
    s.server({ type: 'response.created', response: { id: 'resp_1' } });
    s.server({
      type: 'response.output_audio_transcript.done',
      item_id: 'i1',
      transcript: 'Thanks for calling.',
    });
    s.server({ type: 'response.done', response: { id: 'resp_1', usage: { total_tokens: 9 } } });
    s.advance(2000);
    s.server({
      type: 'conversation.item.input_audio_transcription.completed',
      item_id: 'i2',
      transcript: 'Order 1234?',
    });
    s.server({ type: 'response.created', response: { id: 'resp_2' } });
    s.toolCall('call_1', 'lookup_order', { order_number: '1234' });
    s.claimed();
    s.now += 80;
    s.toolFinished('{"status":"shipped"}');
    // The tool's response waits for the one in progress.
    expect(framesSent(s.commands, 'response.create')).toHaveLength(1);
    s.server({ type: 'response.done', response: { id: 'resp_2' } });
    expect(framesSent(s.commands, 'response.create')).toHaveLength(2);
    s.advance(30_000);
    s.close(1006);
    expect(timeline(s.commands)).toEqual(['attached', 'ended']);
    expect(parts(s.commands).map((p) => p.kind)).toEqual([
      'event',
      'transcript',
      'usage',
      'transcript',
      'tool',
      'event',
    ]);
    expect(s.machine.ended).toEqual({ reason: 'caller_hung_up', code: 1006, handedOff: false });
  });
});

// ── Issue 10 §2: calls that behave right on the real Realtime API ─────────────────────────────

/** The barge-in order of realtime.d.ts and openai-protocol.md §4.5, for a call in `responseId`. */
function interruptedCall(s: SessionScript, fnCallId: string, name: string, args: unknown) {
  const responseId = `resp_${fnCallId}`;
  return [
    ...s.responseCreated(responseId),
    ...s.server({
      type: 'input_audio_buffer.speech_started',
      item_id: 'item_barge',
      audio_start_ms: 900,
    }),
    ...s.toolCall(fnCallId, name, args, { status: 'incomplete' }),
    ...s.responseDone(responseId, 'cancelled', [
      { type: 'function_call', call_id: fnCallId, name, status: 'incomplete' },
    ]),
  ];
}

describe('tools run only for completed function calls (§4.3, §4.5)', () => {
  it('does nothing on response.function_call_arguments.done alone', () => {
    const s = attachedCall();
    const commands = s.server({
      type: 'response.function_call_arguments.done',
      response_id: 'resp_1',
      item_id: 'item_1',
      call_id: 'call_1',
      name: 'lookup_order',
      arguments: '{"order_number":"1"}',
    });
    expect(ofType(commands, 'claim-tool-call')).toEqual([]);
  });

  it.each([
    ['end_call', { reason: 'bye' }, 'hangup'],
    ['transfer_call', { target: 'support' }, 'refer'],
    ['lookup_order', { order_number: '1' }, 'run-tool'],
  ] as const)('never acts on an interrupted %s, and records it skipped', (name, args, action) => {
    const s = attachedCall();
    const commands = interruptedCall(s, 'call_x', name, args);
    expect(ofType(commands, 'claim-tool-call')).toEqual([]);
    expect(ofType(s.commands, action)).toEqual([]);
    expect(framesSent(commands)).toEqual([]);
    expect(parts(commands).filter((p) => p.kind === 'event')).toEqual([
      {
        kind: 'event',
        name: 'tool_call_skipped',
        detail: { fnCallId: 'call_x', name, status: 'incomplete' },
      },
    ]);
    // The call goes on; a later close is the caller's.
    expect(sessionEnd(s.close(1006))?.reason).toBe('caller_hung_up');
  });

  it('acts on response.done completed when the item came without a status, and skips a cancelled one', () => {
    const s = attachedCall();
    s.responseCreated('resp_a');
    const item = {
      type: 'function_call',
      call_id: 'call_a',
      name: 'lookup_order',
      arguments: '{}',
    };
    s.server({ type: 'response.output_item.done', response_id: 'resp_a', item });
    expect(ofType(s.commands, 'claim-tool-call')).toEqual([]);
    const done = s.responseDone('resp_a', 'completed', [item]);
    expect(ofType(done, 'claim-tool-call')).toEqual([
      expect.objectContaining({ fnCallId: 'call_a', name: 'lookup_order' }),
    ]);
    s.responseCreated('resp_b');
    const cancelled = s.responseDone('resp_b', 'cancelled', [
      { type: 'function_call', call_id: 'call_b', name: 'end_call', arguments: '{}' },
    ]);
    expect(ofType(cancelled, 'claim-tool-call')).toEqual([]);
    expect(timeline(cancelled)).toEqual(['tool_call_skipped']);
    expect(parts(cancelled)[0]).toMatchObject({
      detail: { fnCallId: 'call_b', name: 'end_call', reason: 'turn_detected' },
    });
  });
});

describe('the last words play before /hangup or /refer', () => {
  /** A goodbye: the model speaks (audio starts) and calls `name` in the same response. */
  function goodbye(s: SessionScript, name: string, args: unknown) {
    s.responseCreated('resp_bye');
    s.audioStarted('resp_bye');
    s.toolCall('call_bye', name, args, { responseId: 'resp_bye' });
    return s.claimed();
  }

  it('hangs up only once the response is done and the audio has drained', () => {
    const s = attachedCall();
    const claimed = goodbye(s, 'end_call', { reason: 'done' });
    expect(ofType(claimed, 'hangup')).toEqual([]);
    expect(ofType(s.responseDone('resp_bye'), 'hangup')).toEqual([]);
    s.now += 1200;
    const drained = s.audioStopped('resp_bye');
    expect(ofType(drained, 'hangup')).toHaveLength(1);
    expect(timeline(drained)).toEqual(['hangup']);
    s.hungUp();
    expect(sessionEnd(s.close(1000))?.reason).toBe('hung_up_by_agent');
  });

  it('hangs up at once on response.done when no audio is playing', () => {
    const s = attachedCall();
    s.responseCreated('resp_bye');
    s.toolCall('call_bye', 'end_call', {}, { responseId: 'resp_bye' });
    expect(ofType(s.claimed(), 'hangup')).toEqual([]);
    expect(ofType(s.responseDone('resp_bye'), 'hangup')).toHaveLength(1);
  });

  it('gives up waiting after goodbyeDrainCapMs', () => {
    const s = attachedCall({ config: { goodbyeDrainCapMs: 3000 } });
    goodbye(s, 'end_call', {});
    s.responseDone('resp_bye');
    expect(s.advance(2999)).toEqual([]);
    const capped = s.advance(1);
    expect(ofType(capped, 'hangup')).toHaveLength(1);
    expect(logMessages(capped)).toContain('warn: the goodbye did not finish playing in time');
  });

  it('waits the same way before /refer', () => {
    const s = attachedCall();
    const claimed = goodbye(s, 'transfer_call', { target: 'support' });
    expect(ofType(claimed, 'refer')).toEqual([]);
    s.responseDone('resp_bye');
    expect(ofType(s.audioStopped('resp_bye'), 'refer')).toEqual([
      expect.objectContaining({ uri: 'sip:support@example.com' }),
    ]);
  });

  it('lets the wrap-up goodbye play before the session-cap hang-up', () => {
    const s = attachedCall({ record: { acceptedAt: T0 } });
    s.advance(WRAP_UP_AFTER);
    s.responseCreated('resp_wrap');
    s.audioStarted('resp_wrap');
    expect(ofType(s.advance(60_000), 'hangup')).toEqual([]);
    s.responseDone('resp_wrap');
    expect(ofType(s.audioStopped('resp_wrap'), 'hangup')).toHaveLength(1);
  });
});

describe('ghost and silent calls', () => {
  it('hangs up a call in which nobody spoke within noSpeechTimeoutMs, and ends it as no_caller_speech', () => {
    const s = attachedCall({ config: { noSpeechTimeoutMs: 30_000 } });
    expect(s.timerDueIn('no-speech')).toBe(30_000);
    const silent = s.advance(30_000);
    expect(timeline(silent)).toEqual(['no_caller_speech', 'hangup']);
    expect(ofType(silent, 'hangup')).toHaveLength(1);
    s.hungUp();
    const closed = s.close(1000);
    expect(sessionEnd(closed)?.reason).toBe('no_caller_speech');
    expect(callUpdates(closed).at(-1)?.fields).toMatchObject({ endReason: 'no_caller_speech' });
  });

  it.each([
    ['speech_started', { type: 'input_audio_buffer.speech_started', item_id: 'i1' }],
    [
      'a caller transcript',
      {
        type: 'conversation.item.input_audio_transcription.completed',
        item_id: 'i1',
        transcript: 'Hello?',
      },
    ],
  ])('counts %s as speech', (_what, event) => {
    const s = attachedCall({ config: { noSpeechTimeoutMs: 30_000 } });
    s.advance(10_000);
    const spoke = s.server(event);
    expect(ofType(spoke, 'cancel-timer').map((c) => c.timer)).toContain('no-speech');
    expect(callUpdates(spoke)).toEqual([
      expect.objectContaining({ to: 'active', fields: { callerSpokeAt: T0 + 10_000 } }),
    ]);
    expect(ofType(s.advance(60_000), 'hangup')).toEqual([]);
  });

  it('starts no no-speech timer on a reattach once the caller has spoken', () => {
    const spoke = new SessionScript({
      greet: false,
      record: { callerSpokeAt: T0 - 5000 },
      config: { noSpeechTimeoutMs: 30_000 },
    });
    spoke.open();
    expect(spoke.timerRunning('no-speech')).toBe(false);
    // Not yet: the deadline counts from the previous attach.
    const silent = new SessionScript({
      greet: false,
      record: { attachedAt: T0 - 20_000 },
      config: { noSpeechTimeoutMs: 30_000 },
    });
    silent.open();
    expect(silent.timerDueIn('no-speech')).toBe(10_000);
  });

  it('records each idle timeout and hangs up after idleTimeoutsBeforeHangup in a row without speech', () => {
    const s = attachedCall({ config: { idleTimeoutsBeforeHangup: 2, noSpeechTimeoutMs: 0 } });
    const timeout = {
      type: 'input_audio_buffer.timeout_triggered',
      item_id: 'i',
      audio_start_ms: 0,
      audio_end_ms: 5000,
    };
    const first = s.server(timeout);
    expect(parts(first)).toEqual([
      { kind: 'event', name: 'idle_timeout', detail: { inARow: 1, total: 1 } },
    ]);
    expect(ofType(first, 'hangup')).toEqual([]);
    // Speech in between starts the count again.
    s.server({ type: 'input_audio_buffer.speech_started', item_id: 'i2' });
    expect(ofType(s.server(timeout), 'hangup')).toEqual([]);
    const last = s.server(timeout);
    expect(parts(last)[0]).toMatchObject({ detail: { inARow: 2, total: 3 } });
    expect(ofType(last, 'hangup')).toHaveLength(1);
    s.hungUp();
    const closed = s.close(1000);
    expect(sessionEnd(closed)?.reason).toBe('no_caller_speech');
    expect(callUpdates(closed).at(-1)?.fields).toMatchObject({ idleTimeouts: 3 });
  });
});

describe('a clean close the worker did not cause', () => {
  it.each([1000, 1001, 1009])(
    'reattaches once after %i, and the call goes on under the same record',
    (code) => {
      const s = attachedCall({ record: { acceptedAt: T0 } });
      s.toolCall('call_1', 'lookup_order', { order_number: '1' });
      s.claimed();
      s.toolFinished('{"ok":1}');
      s.now += 1000;
      const closed = s.close(code);
      expect(closed).toEqual([
        expect.objectContaining({
          type: 'log',
          message: 'sideband closed while the call may live: reattaching once',
        }),
        { type: 'reattach' },
      ]);
      expect(s.machine.ended).toBeUndefined();
      s.now += 100;
      const reopened = s.open();
      expect(framesSent(reopened)).toEqual([]);
      expect(ofType(reopened, 'start-timer')).toEqual([]);
      expect(parts(reopened)).toEqual([
        { kind: 'event', name: 'reattached', detail: { code, reattaches: 1 } },
      ]);
      expect(callUpdates(reopened)).toEqual([
        expect.objectContaining({ from: ['active'], to: 'active', fields: { reattaches: 1 } }),
      ]);
      // The wrap-up keeps its deadline; the tool stays done once.
      expect(s.timerDueIn('wrap-up')).toBe(WRAP_UP_AFTER - 1100);
      expect(
        ofType(s.toolCall('call_1', 'lookup_order', { order_number: '1' }), 'claim-tool-call'),
      ).toEqual([]);
      expect(sessionEnd(s.close(1006))?.reason).toBe('caller_hung_up');
    },
  );

  it('ends the call as before when the reattach finds it gone (404)', () => {
    const s = attachedCall();
    s.close(1001);
    const refused = s.input({ type: 'attach-refused', status: 404 });
    expect(sessionEnd(refused)).toEqual({ reason: 'going_away', code: 1001, handedOff: false });
    expect(callUpdates(refused).at(-1)?.fields).toMatchObject({ endReason: 'going_away' });
  });

  it('does not reattach after its own hang-up or hand-off, after session_expired, or twice in a row', () => {
    const expired = attachedCall();
    expired.server({ type: 'error', error: { code: 'session_expired' } });
    expect(ofType(expired.close(1001), 'reattach')).toEqual([]);
    const handed = attachedCall();
    handed.input({ type: 'hand-off' });
    expect(ofType(handed.close(1000), 'reattach')).toEqual([]);
    const s = attachedCall();
    s.close(1000);
    s.open();
    s.close(1000);
    s.open();
    s.close(1000);
    s.open();
    expect(ofType(s.commands, 'reattach')).toHaveLength(3);
    expect(sessionEnd(s.close(1000))?.reason).toBe('normal_closure');
  });

  it('holds back what it sends while reattaching, and sends it once reattached', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'lookup_order', {});
    s.claimed();
    s.close(1000);
    expect(framesSent(s.toolFinished('{"late":1}'))).toEqual([]);
    expect(framesSent(s.open()).map((f) => f.type)).toEqual([
      'conversation.item.create',
      'response.create',
    ]);
  });
});

describe('the greeting and the wrap-up keep the persona', () => {
  it('sends the session instructions with the greeting and the wrap-up (response.instructions replaces them)', () => {
    const s = new SessionScript({
      greeting: 'Hi there!',
      session: { instructions: 'You are Ada of Example Co.' },
      record: { acceptedAt: T0 },
    });
    expect(framesSent(s.open())).toEqual([
      {
        type: 'response.create',
        response: { instructions: 'You are Ada of Example Co.\n\nGreet the caller: Hi there!' },
      },
    ]);
    s.responseCreated('resp_greet');
    s.responseDone('resp_greet');
    expect(framesSent(s.advance(WRAP_UP_AFTER))).toEqual([
      {
        type: 'response.create',
        response: {
          instructions:
            'You are Ada of Example Co.\n\nThe call must end in a minute. Briefly wrap up and say goodbye now.',
        },
      },
    ]);
  });
});

describe('tools belong to the session', () => {
  it.each(['delete_everything', 'slow_tool'])(
    'answers a call of %s, which the session does not have, with an error and a response',
    (name) => {
      const s = attachedCall({ session: { tools: ['lookup_order'] } });
      s.toolCall('call_x', name, {});
      const refused = s.claimed();
      expect(ofType(refused, 'run-tool')).toEqual([]);
      const [output, create] = framesSent(refused);
      expect(output?.item).toMatchObject({ type: 'function_call_output', call_id: 'call_x' });
      expect(JSON.parse(output?.item.output).error.code).toBe('unknown_tool');
      expect(create).toEqual({ type: 'response.create' });
      expect(parts(refused)).toEqual([
        expect.objectContaining({ kind: 'tool', name, status: 'failed', error: 'unknown_tool' }),
      ]);
      // No metric dimension from a name the model made up.
      expect(metricPoints(refused)).toEqual([]);
    },
  );

  it('has no transfer_call when the config has no transfer targets', () => {
    const s = attachedCall({ config: { transferTargets: {} } });
    s.toolCall('call_t', 'transfer_call', { target: 'support' });
    const refused = s.claimed();
    expect(ofType(refused, 'refer')).toEqual([]);
    expect(JSON.parse(framesSent(refused)[0]?.item.output).error.code).toBe('unknown_tool');
  });
});

describe('a tool never stalls the conversation', () => {
  it('retries a claim that threw with a short backoff; only a definite "already claimed" means done', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'lookup_order', {});
    const op = s.pending('claim-tool-call').op;
    const failed = s.input({ type: 'tool-call-claimed', op, claimed: false, error: 'throttled' });
    expect(logMessages(failed)).toEqual(['warn: tool call claim failed; retrying']);
    expect(ofType(failed, 'run-tool')).toEqual([]);
    const retried = s.advance(100);
    expect(ofType(retried, 'claim-tool-call')).toEqual([
      expect.objectContaining({ fnCallId: 'call_1', name: 'lookup_order' }),
    ]);
    expect(ofType(s.claimed(), 'run-tool')).toHaveLength(1);
  });

  it('gives up after a few attempts and tells the model, never leaving the call waiting', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'lookup_order', {});
    for (let i = 0; i < 4; i++) {
      s.input({
        type: 'tool-call-claimed',
        op: s.pending('claim-tool-call').op,
        claimed: false,
        error: 'table unavailable',
      });
      s.advance(5000);
    }
    expect(ofType(s.commands, 'claim-tool-call')).toHaveLength(4);
    expect(ofType(s.commands, 'run-tool')).toEqual([]);
    const sent = framesSent(s.commands);
    expect(JSON.parse(sent.at(-2)?.item.output).error.code).toBe('temporarily_unavailable');
    expect(sent.at(-1)).toEqual({ type: 'response.create' });
  });

  it('caps a tool output at maxToolOutputBytes, with a marker, and records that it was cut', () => {
    const s = attachedCall({ config: { maxToolOutputBytes: 1024 } });
    s.toolCall('call_1', 'lookup_order', {});
    s.claimed();
    const big = JSON.stringify({ text: 'é'.repeat(2000) });
    const done = s.toolFinished(big);
    const output = String(framesSent(done)[0]?.item.output);
    expect(new TextEncoder().encode(output).length).toBeLessThanOrEqual(1024);
    expect(output).toMatch(/\[truncated: \d+ of 4011 bytes\]$/);
    expect(output).not.toContain('\uFFFD');
    expect(parts(done)[0]).toMatchObject({ truncated: true, outputBytes: 4011, output });
    expect(logMessages(done)).toContain('warn: tool output truncated');
  });

  it('passes the function call id and the DTMF digits so far to user tools', () => {
    const s = attachedCall();
    for (const key of ['4', '2'])
      s.server({ type: 'input_audio_buffer.dtmf_event_received', event: key, received_at: 1 });
    s.toolCall('call_9', 'lookup_order', {});
    expect(ofType(s.claimed(), 'run-tool')[0]?.context).toEqual({
      callId: 'rtc_test',
      fnCallId: 'call_9',
      from: '+14155550123',
      callerVerified: false,
      to: '+18005550100',
      sessionKey: 'default',
      dtmf: '42',
    });
  });

  it('marks the caller in the tool context as a claim: unverified unless a trusted trunk asserted it', () => {
    const claimed = attachedCall({ record: { callerSource: 'from', callerVerified: false } });
    claimed.toolCall('call_1', 'lookup_order', {});
    expect(ofType(claimed.claimed(), 'run-tool')[0]?.context).toMatchObject({
      from: '+14155550123',
      callerSource: 'from',
      callerVerified: false,
    });
    const asserted = attachedCall({ record: { callerSource: 'asserted', callerVerified: true } });
    asserted.toolCall('call_2', 'lookup_order', {});
    expect(ofType(asserted.claimed(), 'run-tool')[0]?.context).toMatchObject({
      callerSource: 'asserted',
      callerVerified: true,
    });
    // A record from before the fields existed: the number is still only a claim.
    const old = attachedCall();
    old.toolCall('call_3', 'lookup_order', {});
    const context = ofType(old.claimed(), 'run-tool')[0]?.context;
    expect(context?.callerVerified).toBe(false);
    expect(context).not.toHaveProperty('callerSource');
  });

  it('on a hand-off, finishes a running tool and stores its output for the next worker instead of losing it', () => {
    const s = attachedCall();
    s.toolCall('call_slow', 'lookup_order', { order_number: '7' });
    s.claimed();
    s.input({ type: 'hand-off' });
    const closed = s.close(1000);
    // The recorder waits for the tool.
    expect(ofType(closed, 'close-recorder')).toEqual([]);
    expect(sessionEnd(closed)).toBeUndefined();
    s.now += 700;
    const finished = s.toolFinished('{"status":"late"}');
    expect(framesSent(finished)).toEqual([]);
    expect(ofType(finished, 'store-tool-output')).toEqual([
      expect.objectContaining({
        output: expect.objectContaining({
          fnCallId: 'call_slow',
          name: 'lookup_order',
          arguments: '{"order_number":"7"}',
          output: '{"status":"late"}',
          status: 'done',
          latencyMs: 700,
        }),
      }),
    ]);
    // Stored (answered at once by the script), then the recorder closes and the session ends.
    expect(ofType(finished, 'close-recorder')).toHaveLength(1);
    expect(sessionEnd(finished)).toEqual({ reason: 'handed_off', code: 1000, handedOff: true });
  });

  it('the worker that takes a call over delivers stored outputs once, and waits for ones still running', () => {
    const s = new SessionScript({ greet: false });
    const opened = s.open();
    const load = ofType(opened, 'load-tool-outputs');
    expect(load).toHaveLength(1);
    const loaded = s.input({
      type: 'tool-outputs-loaded',
      op: s.pending('load-tool-outputs').op,
      undelivered: [],
      running: [{ fnCallId: 'call_slow', name: 'lookup_order', at: T0 - 500 }],
    });
    expect(s.timerRunning('tool-outputs-poll')).toBe(true);
    expect(ofType(loaded, 'mark-tool-output-delivered')).toEqual([]);
    const again = s.advance(500);
    expect(ofType(again, 'load-tool-outputs')).toHaveLength(1);
    const found = s.input({
      type: 'tool-outputs-loaded',
      op: s.pending('load-tool-outputs').op,
      undelivered: [{ fnCallId: 'call_slow', name: 'lookup_order', output: '{"status":"late"}' }],
      running: [],
    });
    expect(ofType(found, 'mark-tool-output-delivered')).toEqual([
      expect.objectContaining({ fnCallId: 'call_slow' }),
    ]);
    const delivered = s.input({
      type: 'tool-output-marked',
      op: s.pending('mark-tool-output-delivered').op,
      delivered: true,
    });
    expect(framesSent(delivered)).toEqual([
      {
        type: 'conversation.item.create',
        item: { type: 'function_call_output', call_id: 'call_slow', output: '{"status":"late"}' },
      },
      { type: 'response.create' },
    ]);
    expect(timeline(delivered)).toEqual(['tool_output_delivered']);
    expect(s.timerRunning('tool-outputs-poll')).toBe(false);
  });

  it('does not deliver an output another worker marked first', () => {
    const s = new SessionScript({ greet: false });
    s.open();
    s.input({
      type: 'tool-outputs-loaded',
      op: s.pending('load-tool-outputs').op,
      undelivered: [{ fnCallId: 'call_1', name: 'lookup_order', output: '{}' }],
      running: [],
    });
    const lost = s.input({
      type: 'tool-output-marked',
      op: s.pending('mark-tool-output-delivered').op,
      delivered: false,
    });
    expect(framesSent(lost)).toEqual([]);
  });
});

describe('DTMF', () => {
  const dtmf = (key: string) => ({
    type: 'input_audio_buffer.dtmf_event_received',
    event: key,
    received_at: 1_700_000_001,
  });

  it('records each key on the timeline', () => {
    const s = attachedCall();
    const keys = ['1', '2', '#'].flatMap((k) => s.server(dtmf(k)));
    expect(parts(keys)).toEqual([
      { kind: 'event', name: 'dtmf', detail: { key: '1', receivedAt: 1_700_000_001 } },
      { kind: 'event', name: 'dtmf', detail: { key: '2', receivedAt: 1_700_000_001 } },
      { kind: 'event', name: 'dtmf', detail: { key: '#', receivedAt: 1_700_000_001 } },
    ]);
  });

  it('acts on the session DTMF map: a transfer and a hang-up', () => {
    const map = {
      '0': { action: 'transfer', target: 'support' },
      '#': { action: 'hangup' },
    } as const;
    const t = attachedCall({ session: { dtmf: map } });
    expect(ofType(t.server(dtmf('0')), 'refer')).toEqual([
      expect.objectContaining({ uri: 'sip:support@example.com' }),
    ]);
    t.referred('referred');
    expect(sessionEnd(t.close(1000))?.reason).toBe('transferred');
    const h = attachedCall({ session: { dtmf: map } });
    const hungUp = h.server(dtmf('#'));
    expect(ofType(hungUp, 'hangup')).toHaveLength(1);
    expect(parts(hungUp)).toContainEqual({
      kind: 'event',
      name: 'hangup',
      detail: { why: 'dtmf' },
    });
  });

  it('looks keys up as own properties only, and ignores what is not a keypad key', () => {
    const s = attachedCall({ session: { dtmf: { '#': { action: 'hangup' } } } });
    for (const key of ['toString', '__proto__', 'constructor', 'x', '12']) {
      const commands = s.server(dtmf(key));
      expect(ofType(commands, 'hangup')).toEqual([]);
      expect(ofType(commands, 'refer')).toEqual([]);
      expect(timeline(commands)).toEqual([]);
    }
  });
});

describe('junk from the socket, and known quirks', () => {
  it('logs frames that are not events, a few times, and goes on', () => {
    const s = attachedCall();
    const logged = Array.from({ length: 12 }, () =>
      s.input({ type: 'junk-frame', what: 'not JSON' }),
    ).flat();
    expect(logMessages(logged)).toEqual(
      Array(5).fill('warn: ignored a frame that is not an event'),
    );
    expect(s.machine.ended).toBeUndefined();
  });

  it('logs an unknown event type once at debug, and never throws on odd shapes', () => {
    const s = attachedCall();
    const odd = [
      { type: 'response.future_event.delta' },
      { type: 'response.future_event.delta' },
      { type: 'response.done', response: 'nope' },
      { type: 'response.done', response: { usage: 42, output: 'x' } },
      { type: 'response.output_item.done', item: null },
      { type: 'response.output_item.done', item: { type: 'function_call', call_id: {} } },
      { type: 'conversation.item.added', item: 7, previous_item_id: {} },
      { type: 'input_audio_buffer.dtmf_event_received', event: null },
      { type: 'error', error: 'x' },
      { type: 'error' },
    ];
    const commands = odd.flatMap((e) => s.server(e));
    expect(logMessages(commands)).toEqual([
      'debug: ignored an unknown event type',
      'warn: sideband error event',
      'warn: sideband error event',
    ]);
    expect(ofType(commands, 'claim-tool-call')).toEqual([]);
  });

  it.each(['toString', '__proto__', 'constructor', 'hasOwnProperty'])(
    'refuses transfer target %s as unknown',
    (target) => {
      const s = attachedCall();
      s.toolCall('call_t', 'transfer_call', JSON.stringify({ target }));
      const refused = s.claimed();
      expect(ofType(refused, 'refer')).toEqual([]);
      expect(JSON.parse(framesSent(refused)[0]?.item.output)).toMatchObject({ ok: false });
    },
  );

  it('a second transfer cancels the first one’s confirm deadline', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'transfer_call', { target: 'broken' });
    s.claimed();
    s.referred('referred');
    s.now += 5000;
    s.toolCall('call_2', 'transfer_call', { target: 'support' });
    s.claimed();
    const second = s.referred('referred');
    expect(ofType(second, 'cancel-timer').map((c) => c.timer)).toContain('transfer-confirm-1');
    // The first deadline would have passed here.
    expect(timeline(s.advance(11_000))).toEqual([]);
    expect(sessionEnd(s.close(1000))?.reason).toBe('transferred');
  });

  it('runs nothing, records nothing and counts nothing once the session has ended', () => {
    const s = attachedCall();
    const claimOf = (fnCallId: string) =>
      ofType(s.commands, 'claim-tool-call').find((c) => c.fnCallId === fnCallId)?.op ?? 0;
    s.toolCall('call_1', 'lookup_order', {});
    s.toolCall('call_2', 'lookup_order', {});
    s.input({ type: 'tool-call-claimed', op: claimOf('call_2'), claimed: true });
    s.toolCall('call_3', 'end_call', {});
    s.input({ type: 'tool-call-claimed', op: claimOf('call_3'), claimed: true });
    s.close(1006);
    // The end waits for the running tool and the claim, each bounded: the tool finishes, the claim
    // never answers.
    s.toolFinished('{}');
    expect(s.machine.ended).toBeUndefined();
    s.advance(10_000);
    expect(s.machine.ended?.reason).toBe('hung_up_by_agent');
    const late = [
      ...s.input({ type: 'tool-call-claimed', op: claimOf('call_1'), claimed: true }),
      ...s.input({ type: 'tool-finished', op: 999, output: '{}' }),
      ...s.input({ type: 'hangup-finished', op: s.pending('hangup').op, result: 'hung_up' }),
      ...s.server({ type: 'response.done', response: { id: 'r', usage: { total_tokens: 1 } } }),
      ...s.advance(60_000),
    ];
    expect(late).toEqual([]);
  });

  it('does not run a tool whose claim came back after the call ended, and records it skipped', () => {
    const s = attachedCall();
    s.toolCall('call_1', 'lookup_order', {});
    const closed = s.close(1006);
    expect(ofType(closed, 'close-recorder')).toEqual([]);
    const claimed = s.claimed();
    expect(ofType(claimed, 'run-tool')).toEqual([]);
    expect(parts(claimed)).toEqual([
      expect.objectContaining({
        kind: 'tool',
        fnCallId: 'call_1',
        status: 'skipped',
        error: 'call_ended',
      }),
    ]);
    expect(ofType(claimed, 'close-recorder')).toHaveLength(1);
  });
});

describe('recording what real calls need', () => {
  it('keeps transcripts in conversation order, by item ids and previous_item_id', () => {
    const s = attachedCall();
    s.server({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'greet' } });
    s.now += 10;
    s.server({
      type: 'conversation.item.added',
      previous_item_id: 'greet',
      item: { id: 'user_1' },
    });
    s.now += 10;
    s.server({
      type: 'conversation.item.added',
      previous_item_id: 'user_1',
      item: { id: 'asst_1' },
    });
    s.now += 10;
    // The assistant's words are done before the caller's transcription completes.
    const first = s.server({
      type: 'response.output_audio_transcript.done',
      item_id: 'asst_1',
      transcript: 'We open at nine.',
    });
    s.now += 10;
    const late = s.server({
      type: 'conversation.item.input_audio_transcription.completed',
      item_id: 'user_1',
      transcript: 'When do you open?',
    });
    const [assistant] = parts(first);
    const [caller] = parts(late);
    if (assistant?.kind !== 'transcript' || caller?.kind !== 'transcript')
      throw new Error('no transcripts');
    expect(caller.order).toBeLessThan(assistant.order ?? 0);
    // An item inserted between two others sorts between them.
    s.server({
      type: 'conversation.item.added',
      previous_item_id: 'greet',
      item: { id: 'inserted' },
    });
    const between = parts(
      s.server({
        type: 'response.output_audio_transcript.done',
        item_id: 'inserted',
        transcript: 'x',
      }),
    )[0];
    if (between?.kind !== 'transcript') throw new Error('no transcript');
    expect(between.order).toBeLessThan(caller.order ?? 0);
  });

  it('keeps usage with its token details', () => {
    const s = attachedCall();
    const usage = {
      total_tokens: 300,
      input_tokens: 200,
      output_tokens: 100,
      input_token_details: {
        text_tokens: 120,
        audio_tokens: 80,
        image_tokens: 0,
        cached_tokens: 64,
        cached_tokens_details: { text_tokens: 64, audio_tokens: 0, image_tokens: 0 },
      },
      output_token_details: { text_tokens: 20, audio_tokens: 80 },
    };
    const done = s.server({
      type: 'response.done',
      response: { id: 'resp_u', usage: { ...usage, junk: { deep: 1 } } },
    });
    expect(parts(done)).toEqual([{ kind: 'usage', responseId: 'resp_u', usage }]);
    expect(ofType(done, 'add-usage')).toEqual([{ type: 'add-usage', usage }]);
  });
});
