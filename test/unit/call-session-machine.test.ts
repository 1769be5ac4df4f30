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
    expect(framesSent(commands)).toEqual([
      { type: 'response.create', response: { instructions: 'Greet the caller: Hi there!' } },
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
      { kind: 'transcript', role: 'caller', text: 'Where is my order?', itemId: 'item_1' },
      { kind: 'transcript', role: 'assistant', text: 'Let me look.', itemId: 'item_2' },
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
          from: '+14155550123',
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
    s.server({
      type: 'response.function_call_arguments.done',
      call_id: 'call_u',
      name: 'transfer_call',
      arguments: 'not json',
    });
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
          instructions: 'The call must end in a minute. Briefly wrap up and say goodbye now.',
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
    const closed = s.close(code);
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
    expect(ofType(closed, 'cancel-timer').map((c) => c.timer)).toEqual([
      'ping',
      'wrap-up',
      'wrap-up-grace',
    ]);
    expect(s.timerRunning('wrap-up-grace')).toBe(false);
  });
});

describe('a failed attach', () => {
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
    ]);
    expect(sessionEnd(refused)).toEqual({ reason: 'gone', code: 0, handedOff: false });
  });

  it('records another status as attach_failed_<status>', () => {
    const s = new SessionScript();
    const refused = s.input({ type: 'attach-refused', status: 500 });
    expect(logMessages(refused)[0]).toBe('error: sideband refused');
    expect(sessionEnd(refused)?.reason).toBe('attach_failed_500');
  });

  it('records a socket error before the open as attach_failed; the first cause wins', () => {
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

    const e = new SessionScript();
    expect(sessionEnd(e.input({ type: 'socket-error', error: 'ECONNREFUSED' }))?.reason).toBe(
      'attach_failed',
    );
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
