import { describe, expect, it } from 'vitest';
import type { CallRecord } from '#core/ports/calls';
import { callView } from '../../cli/views';

/** `owh calls show`: what it makes of a call's stored parts. */

const RECORD: CallRecord = {
  callId: 'rtc_view',
  status: 'ended',
  eventId: 'evt_1',
  webhookId: 'wh_1',
  createdAt: 1_700_000_000,
  receivedAt: 1_700_000_000_000,
  expiresAt: 1_800_000_000,
};

describe('calls show', () => {
  it('orders the transcript by conversation order, not by when each line arrived', () => {
    // The caller's transcription completed after the assistant had answered (a later `at`), but
    // the caller's item comes first in the conversation (a lower `order`).
    const parts = [
      { kind: 'transcript', role: 'assistant', text: 'We open at nine.', at: 5000, order: 3000.5 },
      { kind: 'transcript', role: 'caller', text: 'When do you open?', at: 6000, order: 3000 },
      // Recorded before order keys existed: sorted by `at`.
      { kind: 'transcript', role: 'assistant', text: 'Hello!', at: 1000 },
    ];
    const view = callView(RECORD, parts, { showNumbers: false });
    expect(view.transcript.map((t) => t.text)).toEqual([
      'Hello!',
      'When do you open?',
      'We open at nine.',
    ]);
  });

  it('marks the lines the caller did not hear to the end, by their response', () => {
    const parts = [
      {
        kind: 'transcript',
        role: 'assistant',
        text: 'Hello and welcome to',
        at: 1000,
        responseId: 'resp_1',
      },
      {
        kind: 'event',
        name: 'assistant_cut_off',
        at: 1200,
        detail: { responseId: 'resp_1', reason: 'turn_detected' },
      },
      { kind: 'transcript', role: 'caller', text: 'Hi, my order?', at: 1500 },
      { kind: 'transcript', role: 'assistant', text: 'Sure.', at: 2000, responseId: 'resp_2' },
    ];
    const view = callView(RECORD, parts, { showNumbers: false });
    expect(view.transcript.map((t) => [t.text, t.cutOff])).toEqual([
      ['Hello and welcome to', 'turn_detected'],
      ['Hi, my order?', undefined],
      ['Sure.', undefined],
    ]);
  });

  it('shows the usage totals by kind', () => {
    const record: CallRecord = {
      ...RECORD,
      responses: 2,
      totalTokens: 600,
      inputTokens: 400,
      outputTokens: 200,
      inputTextTokens: 240,
      inputAudioTokens: 160,
      cachedTokens: 128,
      cachedTextTokens: 128,
      cachedAudioTokens: 0,
      outputTextTokens: 40,
      outputAudioTokens: 160,
    };
    expect(callView(record, [], { showNumbers: false }).usage).toEqual({
      responses: 2,
      totalTokens: 600,
      inputTokens: 400,
      outputTokens: 200,
      inputTextTokens: 240,
      inputAudioTokens: 160,
      cachedTokens: 128,
      cachedTextTokens: 128,
      cachedAudioTokens: 0,
      outputTextTokens: 40,
      outputAudioTokens: 160,
    });
  });
});
