import { describe, expect, it } from 'vitest';
import {
  parseWebhookSecret,
  parseWebhookSecrets,
  signWebhook,
  verifyWebhook,
} from '#core/webhooks/signature';

// openai-protocol.md §1.5, from openai-node's own tests.
const VECTOR = {
  secret: 'whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c=',
  webhookId: 'wh_685c059ae39c8190af8c71ed1022a24d',
  timestamp: '1750861210',
  now: 1750861210,
  body: '{"id": "evt_685c059ae3a481909bdc86819b066fb6", "object": "event", "created_at": 1750861210, "type": "response.completed", "data": {"id": "resp_123"}}',
  signature: 'v1,gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY=',
};
const current = parseWebhookSecret(VECTOR.secret, 'current');
const previous = parseWebhookSecret(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, 'previous');
const request = (overrides: Partial<Parameters<typeof verifyWebhook>[0]> = {}) => ({
  webhookId: VECTOR.webhookId,
  timestamp: VECTOR.timestamp,
  signature: VECTOR.signature,
  body: VECTOR.body,
  ...overrides,
});

describe('verifyWebhook', () => {
  it('accepts the official test vector', () => {
    expect(verifyWebhook(request(), [current], VECTOR.now)).toEqual({
      ok: true,
      secretLabel: 'current',
      timestamp: VECTOR.now,
    });
  });

  it('signs the vector to the same signature', () => {
    expect(signWebhook(current, VECTOR.webhookId, VECTOR.timestamp, VECTOR.body)).toBe(
      VECTOR.signature,
    );
  });

  it('verifies raw bytes the same as the decoded string', () => {
    expect(
      verifyWebhook(request({ body: Buffer.from(VECTOR.body) }), [current], VECTOR.now).ok,
    ).toBe(true);
  });

  it('accepts a valid signature at any position of the list', () => {
    const signature = `v1,invalid_signature ${VECTOR.signature}`;
    expect(verifyWebhook(request({ signature }), [current], VECTOR.now).ok).toBe(true);
  });

  it('rejects a list of two invalid signatures with 401', () => {
    const signature = 'v1,aW52YWxpZA== v1,YWxzbyBpbnZhbGlk';
    expect(verifyWebhook(request({ signature }), [current], VECTOR.now)).toMatchObject({
      ok: false,
      status: 401,
      code: 'invalid_signature',
    });
  });

  it('rejects a body changed by even one space', () => {
    const body = VECTOR.body.replace('"data": {', '"data":{');
    expect(verifyWebhook(request({ body }), [current], VECTOR.now)).toMatchObject({ status: 401 });
  });

  it.each([
    ['too old', VECTOR.now + 301, 401],
    ['too new', VECTOR.now - 301, 401],
    ['at the old edge', VECTOR.now + 300, 200],
    ['at the new edge', VECTOR.now - 300, 200],
  ])('applies the 300 s tolerance in both directions (%s)', (_name, now, status) => {
    const result = verifyWebhook(request(), [current], now);
    expect(result.ok ? 200 : result.status).toBe(status);
  });

  it('uses a configurable tolerance', () => {
    expect(verifyWebhook(request(), [current], VECTOR.now + 60, 30)).toMatchObject({
      code: 'timestamp_out_of_tolerance',
    });
    expect(verifyWebhook(request(), [current], VECTOR.now + 60, 90).ok).toBe(true);
  });

  describe('secret rotation', () => {
    it('accepts the previous secret during a rotation and says which matched', () => {
      const signature = signWebhook(previous, VECTOR.webhookId, VECTOR.timestamp, VECTOR.body);
      expect(verifyWebhook(request({ signature }), [current, previous], VECTOR.now)).toMatchObject({
        ok: true,
        secretLabel: 'previous',
      });
    });

    it('rejects a secret that is no longer configured', () => {
      const signature = signWebhook(previous, VECTOR.webhookId, VECTOR.timestamp, VECTOR.body);
      expect(verifyWebhook(request({ signature }), [current], VECTOR.now)).toMatchObject({
        status: 401,
      });
    });

    it('reads a bare secret or the {current, previous} JSON', () => {
      expect(parseWebhookSecrets(VECTOR.secret).map((s) => s.label)).toEqual(['current']);
      const both = JSON.stringify({
        current: VECTOR.secret,
        previous: `whsec_${previous.key.toString('base64')}`,
      });
      expect(parseWebhookSecrets(both).map((s) => s.label)).toEqual(['current', 'previous']);
      expect(
        parseWebhookSecrets(JSON.stringify({ current: VECTOR.secret, previous: '' })),
      ).toHaveLength(1);
    });

    it.each([
      ['no prefix', 'RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c='],
      ['too short', `whsec_${Buffer.alloc(8).toString('base64')}`],
      ['not base64', 'whsec_!!!not-base64!!!'],
      ['JSON without current', '{"previous":"whsec_x"}'],
      ['a JSON array', '["whsec_x"]'],
      ['garbage', 'hello'],
    ])('refuses a bad stored secret (%s)', (_name, stored) => {
      expect(() => parseWebhookSecrets(stored)).toThrow(/webhook secret|previous|current/);
    });
  });

  describe('malformed headers get 400', () => {
    it.each([
      ['no webhook-id', { webhookId: undefined }, 'missing_header'],
      ['no webhook-timestamp', { timestamp: undefined }, 'missing_header'],
      ['no webhook-signature', { signature: undefined }, 'missing_header'],
      ['a space in webhook-id', { webhookId: 'wh 1' }, 'malformed_header'],
      ['an over-long webhook-id', { webhookId: 'w'.repeat(257) }, 'malformed_header'],
      ['a fractional timestamp', { timestamp: '1750861210.5' }, 'malformed_header'],
      ['a negative timestamp', { timestamp: '-1750861210' }, 'malformed_header'],
      ['an empty signature', { signature: '' }, 'malformed_header'],
      [
        'a signature with no version',
        { signature: 'gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY=' },
        'malformed_header',
      ],
      [
        '17 signature entries',
        { signature: Array(17).fill(VECTOR.signature).join(' ') },
        'malformed_header',
      ],
    ])('%s', (_name, overrides, code) => {
      expect(verifyWebhook(request(overrides), [current], VECTOR.now)).toMatchObject({
        ok: false,
        status: 400,
        code,
      });
    });
  });

  describe('where we deliberately differ from the openai SDK', () => {
    it('refuses a timestamp with trailing text (the SDK parseInt()s it)', () => {
      expect(
        verifyWebhook(request({ timestamp: `${VECTOR.timestamp}abc` }), [current], VECTOR.now),
      ).toMatchObject({ status: 400 });
    });

    it('requires the v1, prefix on the matching entry (the SDK also tries bare base64)', () => {
      const bare = `junk ${VECTOR.signature.slice(3)}`;
      expect(verifyWebhook(request({ signature: bare }), [current], VECTOR.now)).toMatchObject({
        ok: false,
      });
    });

    it('ignores non-v1 entries such as v1a (ed25519) instead of failing the header', () => {
      expect(
        verifyWebhook(request({ signature: `v1a,abc ${VECTOR.signature}` }), [current], VECTOR.now)
          .ok,
      ).toBe(true);
    });

    it('compares decoded bytes, so unpadded base64 still matches (standardwebhooks compares text)', () => {
      const unpadded = VECTOR.signature.replace(/=+$/, '');
      expect(verifyWebhook(request({ signature: unpadded }), [current], VECTOR.now).ok).toBe(true);
    });
  });
});
