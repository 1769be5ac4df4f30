import { describe, expect, it } from 'vitest';
import {
  buildAcceptBody,
  DEFAULT_TRANSCRIPTION_MODEL,
  validateAcceptBody,
} from '#core/calls/accept-body';
import { type CallPolicy, decideCall, matches } from '#core/calls/call-policy';
import {
  CALL_STATUSES,
  canTransition,
  endReasonOf,
  isFinal,
  predecessorsOf,
} from '#core/calls/call-state';
import { redactTranscript, validateCallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import { addressOf, callPartiesOf, sipHeadersOf, sipMediaSecurityOf } from '#core/calls/sip';
import { ResponseSequencer } from '#core/sideband/response-sequencer';
import type { WireEvent } from '#core/wire';
import { localCallsConfig } from '../../local/calls';

const SESSION: SessionConfig = {
  model: 'gpt-realtime-2.1',
  instructions: 'Be brief.',
  voice: 'marin',
  tools: ['lookup_order'],
};
const TOOL = {
  name: 'lookup_order',
  description: 'Find an order.',
  parameters: { type: 'object', properties: { id: { type: 'string' } } },
};
const POLICY: CallPolicy = {
  allow: [],
  deny: ['+1900*', 'spam@evil.example'],
  maxConcurrentCalls: 10,
  maxRingAgeSeconds: 30,
  rejectStatus: 603,
  sessions: { default: SESSION, '+18005550199': { ...SESSION, voice: 'cedar' } },
};

describe('SIP headers (untrusted input)', () => {
  it.each([
    ['"Ann" <sip:+14155550123@sip.example.com>;tag=abc', '+14155550123'],
    ['<sip:+1-415-555.0123@host>', '+14155550123'],
    ['<tel:+1(415)5550123>', '+14155550123'],
    ['sips:alice@example.com', 'alice'],
    ['tel:+4420794609580', '+4420794609580'],
    ['<sip:%2B14155550123@host>', '+14155550123'],
    ['<sip:%ZZ@host>', undefined],
    ['Anonymous <sip:anonymous@anonymous.invalid>', 'anonymous'],
    ['no uri here', undefined],
    ['<sip:a"b@host>', undefined],
  ])('%s → %s', (value, expected) => {
    expect(addressOf(value)).toBe(expected);
  });

  it('takes From and To case-insensitively, including compact forms, and ignores junk entries', () => {
    const headers = sipHeadersOf({
      sip_headers: [
        { name: 'f', value: '<sip:+111@x>' },
        42,
        { name: 'TO', value: '<sip:+222@x>' },
        { name: 'From', value: '<sip:+333@x>' },
        { name: 7, value: 'x' },
      ],
    });
    expect(callPartiesOf(headers)).toEqual({ from: '+111', to: '+222' });
    expect(sipHeadersOf({ sip_headers: 'nope' })).toEqual([]);
    expect(callPartiesOf([])).toEqual({ from: undefined, to: undefined });
  });

  it('bounds header values', () => {
    const [header] = sipHeadersOf({ sip_headers: [{ name: 'From', value: 'x'.repeat(5000) }] });
    expect(header?.value).toHaveLength(1024);
  });

  it('keeps sip_media_security as srtp or rtp, anything else as unknown, and absent as absent', () => {
    expect(sipMediaSecurityOf({ sip_media_security: 'srtp' })).toBe('srtp');
    expect(sipMediaSecurityOf({ sip_media_security: 'rtp' })).toBe('rtp');
    expect(sipMediaSecurityOf({ sip_media_security: 'zrtp-2030' })).toBe('unknown');
    expect(sipMediaSecurityOf({ sip_media_security: 42 })).toBe('unknown');
    expect(sipMediaSecurityOf({})).toBeUndefined();
    expect(sipMediaSecurityOf({ sip_media_security: null })).toBeUndefined();
  });
});

describe('call policy', () => {
  const now = 1_800_000_000;
  const call = (from: string, to = '+18005550100', age = 1) => ({ from, to, createdAt: now - age });

  it('accepts with the session of the dialled number, or the default', () => {
    expect(decideCall(call('+14155550123'), POLICY, now, 0)).toMatchObject({
      kind: 'accept',
      sessionKey: 'default',
    });
    expect(decideCall(call('+14155550123', '+18005550199'), POLICY, now, 0)).toMatchObject({
      kind: 'accept',
      sessionKey: '+18005550199',
      session: { voice: 'cedar' },
    });
  });

  it('misses a call older than the ring age', () => {
    expect(decideCall(call('+14155550123', undefined, 31), POLICY, now, 0)).toEqual({
      kind: 'missed',
      reason: 'stale',
    });
    expect(decideCall(call('+14155550123', undefined, 30), POLICY, now, 0).kind).toBe('accept');
  });

  it('denies by caller or dialled number, prefix patterns included', () => {
    expect(decideCall(call('+19005550000'), POLICY, now, 0)).toEqual({
      kind: 'reject',
      status: 603,
      reason: 'denied',
    });
    expect(decideCall(call('spam@evil.example'), POLICY, now, 0)).toMatchObject({
      reason: 'denied',
    });
    expect(decideCall(call('+14155550123', '+19001112222'), POLICY, now, 0)).toMatchObject({
      reason: 'denied',
    });
  });

  it('with an allow list, rejects everyone else with the configured status', () => {
    const policy = { ...POLICY, allow: ['+1415*'], rejectStatus: 403 };
    expect(decideCall(call('+14155550123'), policy, now, 0).kind).toBe('accept');
    expect(decideCall(call('+12125550123'), policy, now, 0)).toEqual({
      kind: 'reject',
      status: 403,
      reason: 'not_allowed',
    });
    expect(
      decideCall({ from: undefined, to: undefined, createdAt: now }, policy, now, 0),
    ).toMatchObject({ reason: 'not_allowed' });
  });

  it('rejects with 486 when full, and deny wins over busy', () => {
    expect(decideCall(call('+14155550123'), POLICY, now, 10)).toEqual({
      kind: 'reject',
      status: 486,
      reason: 'busy',
    });
    expect(decideCall(call('+19005550000'), POLICY, now, 10)).toMatchObject({ reason: 'denied' });
  });

  it('matches exactly or by prefix, case-insensitively', () => {
    expect(matches('+1800*', '+18005550100')).toBe(true);
    expect(matches('+1800', '+18005550100')).toBe(false);
    expect(matches('Alice', 'alice')).toBe(true);
    expect(matches('+1800*', undefined)).toBe(false);
  });
});

describe('accept body', () => {
  it('builds a valid SIP session with transcription, voice, user and built-in tools', () => {
    const body = buildAcceptBody(SESSION, [TOOL], ['support']);
    expect(validateAcceptBody(body)).toEqual([]);
    expect(body).toMatchObject({
      type: 'realtime',
      model: 'gpt-realtime-2.1',
      audio: {
        input: { transcription: { model: 'gpt-live-transcribe' } },
        output: { voice: 'marin' },
      },
    });
    expect(body.tools.map((t) => t.name)).toEqual(['lookup_order', 'end_call', 'transfer_call']);
    expect(JSON.stringify(body)).not.toMatch(
      /"format"|threshold|prefix_padding_ms|silence_duration_ms/,
    );
  });

  it("transcribes with a current model by default, and with the session's own when it names one", () => {
    // The default must not be one the SDK marks deprecated (realtime.d.ts AudioTranscription).
    expect(DEFAULT_TRANSCRIPTION_MODEL).not.toMatch(/^(whisper-1|gpt-4o(-mini)?-transcribe)/);
    const own = buildAcceptBody(
      { ...SESSION, transcriptionModel: 'gpt-realtime-whisper' },
      [TOOL],
      [],
    );
    expect(own.audio.input.transcription.model).toBe('gpt-realtime-whisper');
  });

  it.each([
    ['server_vad with idle_timeout_ms 5000', { type: 'server_vad', idle_timeout_ms: 5000 }],
    ['server_vad with idle_timeout_ms 30000', { type: 'server_vad', idle_timeout_ms: 30_000 }],
    ['semantic_vad with eagerness', { type: 'semantic_vad', eagerness: 'high' }],
  ])('accepts turn detection: %s', (_name, turnDetection) => {
    const body = JSON.parse(JSON.stringify(buildAcceptBody(SESSION, [TOOL], []))) as WireEvent;
    body.audio.input.turn_detection = turnDetection;
    expect(validateAcceptBody(body)).toEqual([]);
  });

  it('accepts a custom voice given as { id }', () => {
    const body = JSON.parse(JSON.stringify(buildAcceptBody(SESSION, [TOOL], []))) as WireEvent;
    body.audio.output.voice = { id: 'voice_1234' };
    expect(validateAcceptBody(body)).toEqual([]);
  });

  it('offers transfer_call only when there are targets', () => {
    expect(buildAcceptBody(SESSION, [TOOL], []).tools.map((t) => t.name)).toEqual([
      'lookup_order',
      'end_call',
    ]);
  });

  it('refuses a session that names an undeclared tool', () => {
    expect(() => buildAcceptBody(SESSION, [], [])).toThrow(/unknown tool "lookup_order"/);
  });

  it.each([
    ['no type', (b: WireEvent) => delete b.type, /type must be "realtime"/],
    ['no model', (b: WireEvent) => delete b.model, /model/],
    [
      'an audio format',
      (b: WireEvent) => (b.audio.input.format = { type: 'audio/pcmu' }),
      /audio.input.format/,
    ],
    [
      'a VAD threshold',
      (b: WireEvent) => (b.audio.input.turn_detection = { type: 'server_vad', threshold: 0.5 }),
      /threshold/,
    ],
    [
      'silence_duration_ms',
      (b: WireEvent) =>
        (b.audio.input.turn_detection = { type: 'server_vad', silence_duration_ms: 500 }),
      /silence_duration_ms/,
    ],
    ['no transcription', (b: WireEvent) => delete b.audio.input.transcription, /transcription/],
    ['an unknown voice', (b: WireEvent) => (b.audio.output.voice = 'robot'), /voice/],
    ['a duplicate tool', (b: WireEvent) => b.tools.push(b.tools[0]), /declared twice/],
    [
      'idle_timeout_ms below 5000',
      (b: WireEvent) =>
        (b.audio.input.turn_detection = { type: 'server_vad', idle_timeout_ms: 1000 }),
      /idle_timeout_ms must be an integer from 5000 to 30000/,
    ],
    [
      'idle_timeout_ms above 30000',
      (b: WireEvent) =>
        (b.audio.input.turn_detection = { type: 'server_vad', idle_timeout_ms: 60_000 }),
      /idle_timeout_ms must be an integer from 5000 to 30000/,
    ],
    [
      'idle_timeout_ms with semantic_vad',
      (b: WireEvent) =>
        (b.audio.input.turn_detection = { type: 'semantic_vad', idle_timeout_ms: 10_000 }),
      /only supported with server_vad/,
    ],
    [
      'an eagerness outside the enum',
      (b: WireEvent) =>
        (b.audio.input.turn_detection = { type: 'semantic_vad', eagerness: 'eager' }),
      /eagerness must be one of low, medium, high, auto/,
    ],
    [
      'a turn detection type "none"',
      (b: WireEvent) => (b.audio.input.turn_detection = { type: 'none' }),
      /type must be "server_vad" or "semantic_vad"/,
    ],
    [
      'a non-string language',
      (b: WireEvent) => (b.audio.input.transcription.language = 42),
      /language must be an ISO-639-1 string/,
    ],
    [
      'a custom voice with extra fields',
      (b: WireEvent) => (b.audio.output.voice = { id: 'voice_1', name: 'x' }),
      /custom voice/,
    ],
  ])('rejects a body with %s', (_name, mutate, message) => {
    const body = JSON.parse(JSON.stringify(buildAcceptBody(SESSION, [TOOL], []))) as Record<
      string,
      unknown
    >;
    mutate(body);
    expect(validateAcceptBody(body).join('\n')).toMatch(message);
  });
});

describe('calls config', () => {
  it('accepts the local default', () => {
    expect(validateCallsConfig(localCallsConfig())).toEqual([]);
  });

  it.each([
    [{ transferTargets: { x: 'http://not-sip' } }, /sip: or tel:/],
    [{ wrapUpAfterMs: 59 * 60_000, wrapUpGraceMs: 2 * 60_000 }, /60-minute/],
    [{ wrapUpTransferTarget: 'nowhere' }, /wrapUpTransferTarget/],
    [{ maxCallsPerTask: 0 }, /maxCallsPerTask/],
    [{ tools: [{ ...TOOL, name: 'end_call', functionName: 'f', timeoutMs: 100 }] }, /built in/],
  ])('reports %#', (override, message) => {
    expect(validateCallsConfig(localCallsConfig(override as never)).join('\n')).toMatch(message);
  });

  it('reports a session using an undeclared tool', () => {
    const config = localCallsConfig({ tools: [] });
    expect(validateCallsConfig(config).join('\n')).toMatch(/uses tool "lookup_order"/);
  });

  it('redacts numbers and e-mails from transcripts', () => {
    expect(redactTranscript('Call +44 20 7946 0958 or mail me@x.com about order 12')).toBe(
      'Call [number] or mail [email] about order 12',
    );
  });
});

describe('call state machine', () => {
  it('moves ringing → accepting → accepted → active → ended', () => {
    expect(canTransition('ringing', 'accepting')).toBe(true);
    expect(canTransition('accepting', 'accepted')).toBe(true);
    expect(canTransition('accepted', 'active')).toBe(true);
    expect(canTransition('active', 'active')).toBe(true);
    expect(canTransition('active', 'ended')).toBe(true);
  });

  it('never leaves a final state, and never goes back to ringing', () => {
    for (const final of ['ended', 'rejected', 'missed'] as const) {
      expect(isFinal(final)).toBe(true);
      for (const to of CALL_STATUSES) expect(canTransition(final, to)).toBe(false);
    }
    for (const from of CALL_STATUSES) expect(canTransition(from, 'ringing')).toBe(false);
  });

  it('derives the guard of each move', () => {
    expect(predecessorsOf('active').sort()).toEqual(['accepted', 'accepting', 'active']);
    expect(predecessorsOf('rejected')).toEqual(['ringing']);
  });

  it.each([
    [1006, {}, 'caller_hung_up'],
    [1000, {}, 'normal_closure'],
    [1001, { sessionExpired: true }, 'session_expired'],
    [1001, {}, 'going_away'],
    [4000, {}, 'server_rejected_session'],
    [1000, { hangupRequested: true }, 'hung_up_by_agent'],
    [1000, { transferPending: true }, 'transferred'],
    [1000, { handingOff: true }, 'handed_off'],
    [4999, {}, 'closed_4999'],
    [1006, { keepaliveFailed: true }, 'keepalive_timeout'],
  ])('close %i %j → %s', (code, context, reason) => {
    expect(
      endReasonOf(code, {
        sessionExpired: false,
        hangupRequested: false,
        transferPending: false,
        handingOff: false,
        ...context,
      }),
    ).toBe(reason);
  });
});

describe('ResponseSequencer', () => {
  it('sends at once when idle, and defers while a response is active', () => {
    const s = new ResponseSequencer();
    expect(s.request()).toBe(true);
    expect(s.request()).toBe(false);
    expect(s.onResponseDone()).toBe(true);
    expect(s.onResponseDone()).toBe(false);
  });

  it('after a conflict, sends again on response.done', () => {
    const s = new ResponseSequencer();
    expect(s.request()).toBe(true);
    s.onConflict();
    expect(s.isWaiting).toBe(true);
    expect(s.onResponseDone()).toBe(true);
    expect(s.isWaiting).toBe(false);
  });

  it('treats a server-started response as active', () => {
    const s = new ResponseSequencer();
    s.onResponseCreated();
    expect(s.request()).toBe(false);
    expect(s.onResponseDone()).toBe(true);
  });
});
