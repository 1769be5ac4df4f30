import { describe, expect, it } from 'vitest';
import {
  buildAcceptBody,
  DEFAULT_TRANSCRIPTION_MODEL,
  validateAcceptBody,
} from '#core/calls/accept-body';
import { type CallPolicy, decideCall, matches, validateCallPolicy } from '#core/calls/call-policy';
import {
  CALL_STATUSES,
  canTransition,
  endReasonOf,
  isFinal,
  predecessorsOf,
} from '#core/calls/call-state';
import { redactTranscript, validateCallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import {
  addressOf,
  callPartiesOf,
  normalisedNumber,
  type SipHeader,
  sipHeadersOf,
  sipMediaSecurityOf,
} from '#core/calls/sip';
import { ResponseSequencer, responseCreate } from '#core/sideband/response-sequencer';
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
  callers: { deny: ['+1900*', 'spammer'] },
  dialled: { deny: ['+1900*'] },
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
    ['sip:+14155550123@host;tag=1', '+14155550123'],
    ['<sip:+14155550123:secret@host;user=phone>;tag=9', '+14155550123'],
    ['sip:+14155550123', '+14155550123'],
    ['<sip:Alice@host>', 'alice'],
  ])('%s → %s', (value, expected) => {
    expect(addressOf(value)).toBe(expected);
  });

  // RFC 3261 §20.10 and §25.1: the URI is what is inside <…>; a display name is caller-chosen text.
  it.each([
    [
      'a display name that looks like a number',
      '"sip:+18005550100 x" <sip:+16665550000@evil>',
      '+16665550000',
    ],
    ['a tel: display name', '"tel:+18005550100" <sip:+16665550000@evil>', '+16665550000'],
    [
      'escaped quotes hiding a URI',
      '"a \\"x\\" <sip:+18005550100@ok>" <sip:+16665550000@evil>',
      '+16665550000',
    ],
    [
      'an escaped backslash before the closing quote',
      '"a\\\\" <sip:+16665550000@evil>',
      '+16665550000',
    ],
    [
      'an unquoted display name with a URI in it',
      'sip:+18005550100 <sip:+16665550000@evil>',
      '+16665550000',
    ],
    ['an unterminated quote', '"sip:+18005550100 <sip:+16665550000@evil>', undefined],
    ['a quote in an unquoted display name', 'a"b <sip:+16665550000@evil>', undefined],
    ['a quoted name without <URI>', '"Ann" sip:+16665550000@evil', undefined],
    ['two addresses', '<sip:+18005550100@ok> <sip:+16665550000@evil>', undefined],
    ['a comma list', '<sip:+18005550100@ok>, <sip:+16665550000@evil>', undefined],
    ['a bare URI with a comma', 'sip:+18005550100@ok,sip:+16665550000@evil', undefined],
    ['an unclosed <', '"Ann" <sip:+16665550000@evil', undefined],
    ['a second @', '<sip:+18005550100@ok@evil>', undefined],
    ['another scheme', '<https://evil.example/+18005550100>', undefined],
    ['a control character', '<sip:+1415555\u00000123@host>', undefined],
    ['a newline', '"x\n" <sip:+16665550000@evil>', undefined],
    ['too many digits for E.164', '<sip:+1234567890123456@host>', undefined],
    ['a number that is not one', '<sip:+1-800-FLOWERS@host>', undefined],
    ['a user name that is not one', '<sip:_x@host>', undefined],
  ])('reads the URI, not %s', (_name, value, expected) => {
    expect(addressOf(value)).toBe(expected);
  });

  it.each([
    ['sip:14155550123@host', '1', '+14155550123'],
    ['sip:0014155550123@host', '1', '+14155550123'],
    ['sip:0014155550123@host', undefined, '+14155550123'],
    ['sip:01114155550123@host', '1', '+14155550123'],
    ['tel:+1-415-555-0123', undefined, '+14155550123'],
    ['tel:+1.415.555.0123;ext=12', undefined, '+14155550123'],
    ['<sip:4155550123@host>', '1', '+14155550123'],
    ['<sip:(415)%20555-0123@host>', '1', '+14155550123'],
    ['<sip:02079460958@host>', '44', '+442079460958'],
    ['<sip:2079460958@host>', '44', '+442079460958'],
    ['<tel:555-0123;phone-context=+1-415>', undefined, '+14155550123'],
    ['<sip:14155550123@host>', undefined, '14155550123'],
    ['<sip:alice@host>', '1', 'alice'],
  ])('normalises %s (default country %s) to %s', (value, country, expected) => {
    expect(addressOf(value, country)).toBe(expected);
  });

  it('reads the same number written every way as one E.164 number', () => {
    const forms = [
      'sip:14155550123@a',
      'sip:0014155550123@b',
      'tel:+1-415-555-0123',
      '<sip:+1%20(415)%20555-0123@c>',
    ];
    expect(new Set(forms.map((f) => addressOf(f, '1')))).toEqual(new Set(['+14155550123']));
    expect(normalisedNumber('+1 415 555 0123')).toBe('+14155550123');
    expect(normalisedNumber('alice')).toBeUndefined();
  });

  it('takes From and To case-insensitively, including compact forms, and ignores junk entries', () => {
    const headers = sipHeadersOf({
      sip_headers: [
        { name: 'f', value: '<sip:+111@x>' },
        42,
        { name: 'TO', value: '<sip:+222@x>' },
        { name: 7, value: 'x' },
      ],
    });
    expect(callPartiesOf(headers)).toEqual({ from: '+111', to: '+222', callerSource: 'from' });
    expect(sipHeadersOf({ sip_headers: 'nope' })).toEqual([]);
    expect(callPartiesOf([])).toEqual({ from: undefined, to: undefined, callerSource: 'from' });
  });

  it('reads two From (or To) headers as no caller rather than picking one', () => {
    const headers: SipHeader[] = [
      { name: 'f', value: '<sip:+18005550100@x>' },
      { name: 'From', value: '<sip:+16665550000@x>' },
      { name: 'To', value: '<sip:+18005550199@x>' },
      { name: 't', value: '<sip:+18005550100@x>' },
    ];
    expect(callPartiesOf(headers)).toEqual({
      from: undefined,
      to: undefined,
      callerSource: 'from',
    });
  });

  describe('P-Asserted-Identity', () => {
    const from: SipHeader = { name: 'From', value: '"Bank" <sip:+18005550100@caller.example>' };
    const pai: SipHeader = {
      name: 'P-Asserted-Identity',
      value: '"Real Caller" <sip:bob@carrier.example>, <tel:+1-666-555-0000>',
    };

    it('is ignored unless the trunk is trusted: anyone can send it', () => {
      expect(callPartiesOf([from, pai])).toMatchObject({
        from: '+18005550100',
        callerSource: 'from',
      });
    });

    it('from a trusted trunk, is the caller (its number, of its one or two values)', () => {
      expect(callPartiesOf([from, pai], { trustAssertedIdentity: true })).toMatchObject({
        from: '+16665550000',
        callerSource: 'asserted',
      });
      const one = { name: 'p-asserted-identity', value: '<sip:16665550000@carrier>' };
      expect(
        callPartiesOf([from, one], { trustAssertedIdentity: true, defaultCountry: '1' }),
      ).toMatchObject({ from: '+16665550000', callerSource: 'asserted' });
    });

    it('from a trusted trunk but absent or unreadable, leaves the caller to From, unverified', () => {
      const junk = { name: 'P-Asserted-Identity', value: '"x" <sip:a@b' };
      for (const headers of [[from], [from, junk]]) {
        expect(callPartiesOf(headers, { trustAssertedIdentity: true })).toEqual({
          from: '+18005550100',
          to: undefined,
          callerSource: 'from',
        });
      }
    });
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
    expect(decideCall(call('spammer'), POLICY, now, 0)).toMatchObject({ reason: 'denied' });
    expect(decideCall(call('+14155550123', '+19001112222'), POLICY, now, 0)).toMatchObject({
      reason: 'denied',
    });
  });

  it('keeps callers and dialled numbers apart: a caller list never matches the dialled number', () => {
    const policy: CallPolicy = {
      ...POLICY,
      callers: { allow: ['+1415*'], deny: ['+1415666*'] },
      dialled: { allow: ['+1800*'], deny: ['+18005550666'] },
    };
    const decide = (from: string, to: string) => decideCall(call(from, to), policy, now, 0);
    expect(decide('+14155550123', '+18005550100').kind).toBe('accept');
    // The dialled number is on the callers' allow list, the caller is not: refused.
    expect(decide('+12125550123', '+14155550123')).toMatchObject({ reason: 'not_allowed' });
    // A denied caller dialling an allowed number, and the other way round.
    expect(decide('+14156660000', '+18005550100')).toMatchObject({ reason: 'denied' });
    expect(decide('+14155550123', '+18005550666')).toMatchObject({ reason: 'denied' });
    // A caller denied by number is not denied for being dialled.
    expect(decide('+14155550123', '+1415666000')).toMatchObject({ reason: 'not_allowed' });
    const dialledOnly: CallPolicy = { ...POLICY, callers: {}, dialled: { deny: ['+1415*'] } };
    expect(decideCall(call('+14155550123'), dialledOnly, now, 0).kind).toBe('accept');
  });

  it('with an allow list, rejects everyone else with the configured status', () => {
    const policy = { ...POLICY, callers: { allow: ['+1415*'] }, rejectStatus: 403 };
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

  it('denies the URI, not the display name, and a display name cannot switch denial off', () => {
    const policy: CallPolicy = { ...POLICY, callers: { deny: ['+1666*'] } };
    const decideFrom = (value: string) => {
      const parties = callPartiesOf([
        { name: 'From', value },
        { name: 'To', value: '<sip:+18005550100@sip.api.openai.com>' },
      ]);
      return decideCall({ ...parties, createdAt: now }, policy, now, 0);
    };
    expect(decideFrom('"sip:+18005550100 x" <sip:+16665550000@evil>')).toMatchObject({
      reason: 'denied',
    });
    expect(decideFrom('"tel:+18005550100" <sip:+16665550000@evil>')).toMatchObject({
      reason: 'denied',
    });
    expect(decideFrom('<sip:16665550000@evil>').kind).toBe('accept');
    const withCountry = { ...policy, defaultCountry: '1' };
    const parties = callPartiesOf([{ name: 'From', value: '<sip:0016665550000@evil>' }], {
      defaultCountry: '1',
    });
    expect(decideCall({ ...parties, createdAt: now }, withCountry, now, 0)).toMatchObject({
      reason: 'denied',
    });
  });

  it.each(['constructor', '__proto__', 'tostring', 'hasownproperty', 'valueof'])(
    'selects nothing for %s: sessions and lists are looked up by own keys only',
    (name) => {
      const withList: CallPolicy = { ...POLICY, callers: { allow: ['+1415*'] } };
      expect(decideCall(call('+14155550123', name), POLICY, now, 0)).toMatchObject({
        kind: 'accept',
        sessionKey: 'default',
        session: SESSION,
      });
      expect(decideCall(call(name), withList, now, 0)).toMatchObject({ reason: 'not_allowed' });
      expect(decideCall(call(name), POLICY, now, 0).kind).toBe('accept');
      const parties = callPartiesOf([
        { name: 'From', value: `<sip:${name}@evil>` },
        { name: 'To', value: `<sip:${name}@evil>` },
      ]);
      expect(decideCall({ ...parties, createdAt: now }, withList, now, 0)).toMatchObject({
        reason: 'not_allowed',
      });
      expect(decideCall({ ...parties, createdAt: now }, POLICY, now, 0)).toMatchObject({
        sessionKey: 'default',
      });
    },
  );

  it('rejects with 486 when full, and deny wins over busy', () => {
    expect(decideCall(call('+14155550123'), POLICY, now, 10)).toEqual({
      kind: 'reject',
      status: 486,
      reason: 'busy',
    });
    expect(decideCall(call('+19005550000'), POLICY, now, 10)).toMatchObject({ reason: 'denied' });
  });

  it('validates the lists, the default country and the session keys', () => {
    expect(validateCallPolicy(POLICY)).toEqual([]);
    const problems = validateCallPolicy({
      ...POLICY,
      callers: {
        allow: ['+14155550123', '+1415*', 'alice', 'sales-*', '+*'],
        deny: ['spam@evil.example', '+1 415 555', 'sip:+1415*', '1415*', 42 as never],
      },
      dialled: { deny: ['+1'], block: [] } as never,
      defaultCountry: '01',
      sessions: { ...POLICY.sessions, '18005550100': SESSION, Sales: SESSION, sales: SESSION },
    });
    expect(problems).toEqual([
      expect.stringMatching(
        /^calls.callers.deny\[0\] "spam@evil.example" must be an E.164 number .* not a URI\.$/,
      ),
      expect.stringMatching(/^calls.callers.deny\[1\] "\+1 415 555" is not E.164/),
      expect.stringMatching(/^calls.callers.deny\[2\] "sip:\+1415\*" must be/),
      expect.stringMatching(/^calls.callers.deny\[3\] "1415\*" is not E.164/),
      expect.stringMatching(/^calls.callers.deny\[4\] 42 is not a string/),
      'calls.dialled.block is not a list; use allow or deny.',
      expect.stringMatching(/^calls.dialled.deny\[0\] "\+1" is too short/),
      expect.stringMatching(/^calls.defaultCountry must be a country calling code/),
      expect.stringMatching(
        /^calls.sessions\["18005550100"\]: a session key is "default", an E.164/,
      ),
      expect.stringMatching(/^calls.sessions\["Sales"\]/),
    ]);
  });

  it('refuses the old allow/deny lists that matched either party, pointing at the new ones', () => {
    const legacy = { ...POLICY, allow: ['+1415*'], deny: [] } as CallPolicy;
    expect(validateCallPolicy(legacy)).toEqual([
      expect.stringMatching(
        /calls.allow is no longer supported.*calls.callers.allow.*calls.dialled.allow/,
      ),
      expect.stringMatching(
        /calls.deny is no longer supported.*calls.callers.deny.*calls.dialled.deny/,
      ),
    ]);
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
    expect(predecessorsOf('rejected')).toEqual(['ringing', 'rejecting']);
    expect(predecessorsOf('rejecting')).toEqual(['ringing']);
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
    expect(s.request()).toEqual({});
    expect(s.request()).toBeUndefined();
    expect(s.onResponseDone()).toEqual({});
    expect(s.onResponseDone()).toBeUndefined();
  });

  it('after a conflict, asks again on response.done for what the refused create asked', () => {
    const s = new ResponseSequencer();
    expect(s.request({ instructions: 'Say goodbye.' })).toEqual({ instructions: 'Say goodbye.' });
    s.onConflict();
    expect(s.isWaiting).toBe(true);
    expect(s.onResponseDone()).toEqual({ instructions: 'Say goodbye.' });
    expect(s.isWaiting).toBe(false);
  });

  it('treats a server-started response as active', () => {
    const s = new ResponseSequencer();
    s.onResponseCreated();
    expect(s.request()).toBeUndefined();
    expect(s.onResponseDone()).toEqual({});
  });

  it('keeps a deferred goodbye’s instructions: requests that wait together become one response', () => {
    const s = new ResponseSequencer();
    s.onResponseCreated();
    const goodbye = { instructions: 'Say exactly this: "Transferring you now."' };
    expect(s.request(goodbye, { sticky: true })).toBeUndefined();
    // A tool output's plain request after it does not wipe the announcement out.
    expect(s.request()).toBeUndefined();
    expect(s.waiting).toEqual({ params: goodbye, sticky: true });
    expect(s.onResponseDone()).toEqual(goodbye);
  });

  it('lets a later request replace an ordinary one that waited (a greeting the caller beat)', () => {
    const s = new ResponseSequencer();
    s.onResponseCreated();
    s.request({ instructions: 'Greet the caller.' });
    s.request();
    expect(s.onResponseDone()).toEqual({});
  });

  it('after a conflict, a waiting ordinary request gives way to a refused goodbye, not the reverse', () => {
    const s = new ResponseSequencer();
    const goodbye = { instructions: 'Say goodbye.' };
    expect(s.request(goodbye, { sticky: true })).toEqual(goodbye);
    s.onResponseCreated();
    s.request();
    s.onConflict();
    expect(s.onResponseDone()).toEqual(goodbye);
    // A refused greeting gives way to the answer asked for after it.
    const t = new ResponseSequencer();
    t.request({ instructions: 'Greet the caller.' });
    t.onResponseCreated();
    t.request({ instructions: 'Answer the say.' });
    t.onConflict();
    expect(t.onResponseDone()).toEqual({ instructions: 'Answer the say.' });
  });

  it('frames the params as response.create, with no response key when there are none', () => {
    expect(responseCreate({})).toEqual({ type: 'response.create' });
    expect(responseCreate({ instructions: 'x' })).toEqual({
      type: 'response.create',
      response: { instructions: 'x' },
    });
  });
});
