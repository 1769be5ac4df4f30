import { describe, expect, it } from 'vitest';
import { requestOf } from '#adapters/runtime/webrtc-session-from-env';
import type { SessionConfig } from '#core/calls/session-config';
import type { CallRecord } from '#core/ports/calls';
import {
  CALL_ID,
  callIdFromLocation,
  checkOffer,
  createCallRequest,
  multipartBody,
  openAiFailureResponse,
  parseAttachBody,
  scrubSecrets,
  sdpProblem,
  selectProfile,
  webRtcSessionBody,
} from '#core/webrtc/session-request';
import {
  callsConfigForChannel,
  validateWebRtcConfig,
  webRtcProfiles,
} from '#core/webrtc/webrtc-config';
import { CALL_LIST_HEADERS, callChannelOption, callListRow } from '../../cli/views';
import { SAMPLE_OFFER } from '../../local/send-webrtc';
import { answerFor, parseCreateCall } from '../../local/stand-ins/realtime-calls-route';

const SDP = { 'content-type': 'application/sdp' };
const SESSION: SessionConfig = {
  model: 'gpt-realtime-2.1',
  instructions: 'Be brief.',
  voice: 'marin',
  tools: ['lookup_order'],
};
const LOOKUP = {
  name: 'lookup_order',
  description: 'Find an order.',
  parameters: { type: 'object', properties: { id: { type: 'string' } } },
};

describe('checkOffer', () => {
  it('takes an application/sdp offer, with parameters, as sent', () => {
    expect(checkOffer(SDP, SAMPLE_OFFER)).toEqual({ ok: true, sdp: SAMPLE_OFFER });
    expect(checkOffer({ 'content-type': 'Application/SDP; charset=utf-8' }, SAMPLE_OFFER).ok).toBe(
      true,
    );
  });

  it('refuses a wrong or missing content type (415), an empty body, junk and an oversized offer', () => {
    expect(checkOffer({ 'content-type': 'text/plain' }, SAMPLE_OFFER)).toMatchObject({
      status: 415,
      code: 'unsupported_media_type',
    });
    expect(checkOffer({}, SAMPLE_OFFER)).toMatchObject({ status: 415 });
    expect(checkOffer(SDP, '')).toMatchObject({ status: 400, code: 'invalid_sdp' });
    expect(checkOffer(SDP, undefined)).toMatchObject({ status: 400 });
    expect(checkOffer(SDP, SAMPLE_OFFER, 100)).toMatchObject({
      status: 413,
      code: 'sdp_too_large',
    });
  });

  it('sdpProblem: v=0 first, an o= line, an m= line, and only <letter>= lines', () => {
    expect(sdpProblem(SAMPLE_OFFER)).toBeUndefined();
    expect(sdpProblem('v=1\r\no=-\r\nm=audio 9 x 0')).toMatch(/v=0/);
    expect(sdpProblem('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n')).toMatch(/m=/);
    expect(sdpProblem('v=0\r\nm=audio 9 x 0\r\n')).toMatch(/o=/);
    expect(sdpProblem('v=0\r\no=-\r\n<script>\r\nm=audio 9 x 0')).toMatch(/<letter>=/);
  });
});

describe('selectProfile', () => {
  const allowed = { default: 1, support: 2 };
  it('takes the query first, then the header, then the fallback', () => {
    expect(
      selectProfile({ profile: 'support' }, { 'x-session-profile': 'default' }, allowed, undefined),
    ).toMatchObject({ name: 'support', profile: 2 });
    expect(selectProfile({}, { 'x-session-profile': 'support' }, allowed, undefined)).toMatchObject(
      { name: 'support' },
    );
    expect(selectProfile({}, {}, allowed, 'default')).toMatchObject({
      name: 'default',
      profile: 1,
    });
  });

  it('own properties only; no name and no fallback is a 400', () => {
    for (const name of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'nope'])
      expect(selectProfile({ profile: name }, {}, allowed, 'default'), name).toMatchObject({
        status: 400,
        code: 'unknown_profile',
      });
    expect(selectProfile({}, {}, allowed, undefined)).toMatchObject({ status: 400 });
  });
});

describe('the upstream request', () => {
  it('the session is the SIP accept body of the profile, without transfer_call', () => {
    const built = webRtcSessionBody(SESSION, [LOOKUP]);
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.body).toMatchObject({
      type: 'realtime',
      model: 'gpt-realtime-2.1',
      instructions: 'Be brief.',
    });
    expect(built.body.tools.map((t) => t.name)).toEqual(['lookup_order', 'end_call']);
    expect(webRtcSessionBody({ ...SESSION, tools: ['missing'] }, [LOOKUP]).ok).toBe(false);
  });

  it('multipart/form-data with an application/sdp and an application/json part, parsed back by the simulator', () => {
    const request = createCallRequest(SAMPLE_OFFER, { type: 'realtime' }, 'b0undary');
    expect(request.contentType).toBe('multipart/form-data; boundary=b0undary');
    expect(request.body).toContain(
      'Content-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp',
    );
    expect(request.body).toContain(
      'name="session"\r\nContent-Type: application/json\r\n\r\n{"type":"realtime"}',
    );
    expect(request.body.endsWith('--b0undary--\r\n')).toBe(true);
    const parsed = parseCreateCall({
      method: 'POST',
      path: '/v1/realtime/calls',
      authorization: undefined,
      body: undefined,
      at: 0,
      contentType: request.contentType,
      rawBody: request.body,
    });
    expect(parsed).toEqual({ sdp: SAMPLE_OFFER, session: { type: 'realtime' } });
    expect(() =>
      multipartBody('b', [{ name: 'x', contentType: 'text/plain', value: '--b' }]),
    ).toThrow();
  });

  it('the call id is the last segment of Location, and only if it is one', () => {
    expect(callIdFromLocation('/v1/realtime/calls/rtc_u1_9c6574da8b8a41a18da9308f4ad974ce')).toBe(
      'rtc_u1_9c6574da8b8a41a18da9308f4ad974ce',
    );
    expect(callIdFromLocation('https://api.openai.com/v1/realtime/calls/rtc_abc123?x=1')).toBe(
      'rtc_abc123',
    );
    expect(callIdFromLocation('/v1/realtime/calls/')).toBeUndefined();
    expect(callIdFromLocation(undefined)).toBeUndefined();
    expect(callIdFromLocation('/v1/realtime/calls/../../etc')).toBeUndefined();
    expect(CALL_ID.test('rtc_a;b')).toBe(false);
  });
});

describe('OpenAI failures', () => {
  it('502 with OpenAI status and code, secrets scrubbed', () => {
    const mapped = openAiFailureResponse({
      status: 401,
      body: JSON.stringify({
        error: {
          code: 'invalid_api_key',
          message: 'Incorrect API key provided: sk-proj-abcdef1234. Bearer sk-xyz',
        },
      }),
    });
    expect(mapped.status).toBe(502);
    expect(mapped.body.error).toMatchObject({ code: 'invalid_api_key', openai_status: 401 });
    expect(JSON.stringify(mapped)).not.toMatch(/abcdef1234|sk-xyz/);
    expect(
      openAiFailureResponse({ status: 503, body: '<html>bad gateway</html>' }).body.error,
    ).toMatchObject({ code: 'openai_error', openai_status: 503 });
    expect(scrubSecrets('key ek_123 sk-abc_DEF-123 rk-xyz1')).toBe('key ek_123 sk-*** rk-***');
  });
});

describe('parseAttachBody', () => {
  it('takes { profile?, metadata? } and nothing else', () => {
    expect(parseAttachBody(undefined)).toEqual({
      ok: true,
      profile: undefined,
      metadata: undefined,
    });
    expect(parseAttachBody('{"profile":"support","metadata":{"user":"u-1"}}')).toEqual({
      ok: true,
      profile: 'support',
      metadata: { user: 'u-1' },
    });
    for (const bad of [
      '{',
      '[]',
      '{"x":1}',
      '{"profile":3}',
      '{"metadata":{"a":1}}',
      '{"metadata":[]}',
      `{"metadata":{"a":"${'x'.repeat(600)}"}}`,
    ])
      expect(parseAttachBody(bad).ok, bad).toBe(false);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    expect(parseAttachBody(JSON.stringify({ metadata: many })).ok).toBe(false);
  });
});

describe('WEBRTC_CONFIG', () => {
  const sessions = { default: SESSION, support: SESSION };
  it('names keys of calls.sessions (own properties), a default among them, sane limits', () => {
    expect(
      validateWebRtcConfig(
        { profiles: ['default'], maxConcurrentSessions: 5, maxSdpBytes: 65536 },
        sessions,
      ),
    ).toEqual([]);
    const problems = validateWebRtcConfig(
      {
        profiles: ['toString', 'x y'],
        defaultProfile: 'support',
        maxConcurrentSessions: 0,
        maxSdpBytes: 10,
        perIp: { limit: 0, windowSeconds: 0 },
      },
      sessions,
    );
    expect(problems.join('\n')).toMatch(
      /toString[\s\S]*x y[\s\S]*defaultProfile[\s\S]*maxConcurrentSessions[\s\S]*maxSdpBytes[\s\S]*perIpLimit[\s\S]*perIpWindow/,
    );
    const profiles = webRtcProfiles({ profiles: ['support', 'toString'] }, sessions);
    expect(Object.keys(profiles)).toEqual(['support']);
  });

  it('a WebRTC call gets no transfer targets and, with a session cap, an earlier wrap-up', () => {
    const config = {
      transferTargets: { support: 'sip:a@b' },
      wrapUpTransferTarget: 'support',
      wrapUpAfterMs: 3_300_000,
      wrapUpGraceMs: 60_000,
    };
    expect(callsConfigForChannel(config, 'sip')).toBe(config);
    expect(callsConfigForChannel(config, undefined)).toBe(config);
    const webrtc = callsConfigForChannel(config, 'webrtc');
    expect(webrtc.transferTargets).toEqual({});
    expect(webrtc.wrapUpTransferTarget).toBeUndefined();
    expect(webrtc.wrapUpAfterMs).toBe(3_300_000);
    // The grace (60 s) and the goodbye's longest drain (5 s by default) end by the limit.
    expect(callsConfigForChannel(config, 'webrtc', 600_000).wrapUpAfterMs).toBe(535_000);
    expect(
      callsConfigForChannel({ ...config, goodbyeDrainCapMs: 2_000 }, 'webrtc', 600_000)
        .wrapUpAfterMs,
    ).toBe(538_000);
  });
});

describe('the simulated answer', () => {
  it('answers each offered section in order, with its mid, BUNDLE, ICE, fingerprint, setup:active and Opus', () => {
    const answer = answerFor(SAMPLE_OFFER);
    const lines = answer.split('\r\n');
    expect(lines[0]).toBe('v=0');
    expect(lines).toContain('a=group:BUNDLE 0 1');
    expect(lines.filter((l) => l.startsWith('m='))).toEqual([
      'm=audio 9 UDP/TLS/RTP/SAVPF 111',
      'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    ]);
    expect(lines).toContain('a=rtpmap:111 opus/48000/2');
    expect(lines.filter((l) => l === 'a=setup:active')).toHaveLength(2);
    expect(lines.find((l) => l.startsWith('a=fingerprint:sha-256 '))).toMatch(
      /^a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/,
    );
    expect(sdpProblem(answer)).toBeUndefined();
  });
});

describe('the API Gateway event', () => {
  it('lower-cases headers and decodes a base64 body (API Gateway encodes application/sdp)', () => {
    const request = requestOf({
      version: '2.0',
      routeKey: 'POST /session',
      rawPath: '/session',
      rawQueryString: 'profile=support',
      headers: { 'Content-Type': 'application/sdp' },
      queryStringParameters: { profile: 'support' },
      body: Buffer.from(SAMPLE_OFFER).toString('base64'),
      isBase64Encoded: true,
      requestContext: { http: { method: 'POST', path: '/session', sourceIp: '203.0.113.9' } },
    } as never);
    expect(request).toMatchObject({
      method: 'POST',
      path: '/session',
      headers: { 'content-type': 'application/sdp' },
      query: { profile: 'support' },
      body: SAMPLE_OFFER,
      sourceIp: '203.0.113.9',
    });
    expect(request.authorizer).toBeUndefined();
  });

  it("carries the authorizer's result: a JWT's subject, an IAM caller", () => {
    const event = (authorizer: unknown) =>
      ({
        rawPath: '/session',
        headers: {},
        requestContext: { http: { method: 'POST', sourceIp: '203.0.113.9' }, authorizer },
      }) as never;
    expect(
      requestOf(event({ jwt: { claims: { sub: 'user-1' }, scopes: null } })).authorizer,
    ).toEqual({ kind: 'jwt', subject: 'user-1' });
    expect(
      requestOf(event({ iam: { userArn: 'arn:aws:iam::1:role/app', callerId: 'X' } })).authorizer,
    ).toEqual({ kind: 'iam', caller: 'arn:aws:iam::1:role/app' });
  });
});

describe('owh calls list: channel and profile', () => {
  const base: CallRecord = {
    callId: 'rtc_abc123',
    status: 'active',
    eventId: 'evt_1',
    webhookId: 'wh_1',
    createdAt: 1,
    receivedAt: 1000,
    expiresAt: 2,
  };
  const format = { time: (ms: number) => `t${ms}`, duration: () => '-', showNumbers: false };
  const column = (name: (typeof CALL_LIST_HEADERS)[number], row: string[]) =>
    row[CALL_LIST_HEADERS.indexOf(name)];

  it('shows a WebRTC call with its profile, and a record without a channel as SIP', () => {
    const browser = callListRow(
      { ...base, channel: 'webrtc', profile: 'support', sessionKey: 'support' },
      format,
    );
    expect([column('CHANNEL', browser), column('PROFILE', browser)]).toEqual(['webrtc', 'support']);
    const phone = callListRow({ ...base, sessionKey: 'default' }, format);
    expect([column('CHANNEL', phone), column('PROFILE', phone)]).toEqual(['sip', 'default']);
    expect(column('PROFILE', callListRow(base, format))).toBe('-');
  });

  it('masks a SIP session keyed by a dialled number unless --show-numbers', () => {
    const record = { ...base, channel: 'sip' as const, sessionKey: '+18005550100' };
    expect(column('PROFILE', callListRow(record, format))).not.toContain('8005550100');
    expect(column('PROFILE', callListRow(record, { ...format, showNumbers: true }))).toBe(
      '+18005550100',
    );
  });

  it('--channel takes sip or webrtc only', () => {
    expect(callChannelOption(undefined)).toEqual({ ok: true, channel: undefined });
    expect(callChannelOption('webrtc')).toEqual({ ok: true, channel: 'webrtc' });
    expect(callChannelOption('sip')).toEqual({ ok: true, channel: 'sip' });
    for (const bad of ['fax', 'WEBRTC', '', 'toString'])
      expect(callChannelOption(bad).ok, bad).toBe(false);
  });
});
