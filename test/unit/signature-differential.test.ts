import { createHmac } from 'node:crypto';
import OpenAI from 'openai';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseWebhookSecret, verifyWebhook } from '#core/webhooks/signature';

/**
 * Differential test: over generated cases, our verdict equals the official `openai` package's
 * and the `standardwebhooks` package's, wherever their rules coincide: `whsec_` secrets, one
 * secret, digit-only timestamps, `v1,`-prefixed canonical base64 entries. Where we differ on
 * purpose is covered in signature.test.ts.
 */
const CASES = 1200;
const NOW = 1_760_000_000;

// Deterministic, so a failure reproduces.
function prng(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  readonly name: string;
  readonly secret: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

function sign(secret: string, id: string, ts: string, body: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
}

function generate(random: () => number): Case[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const bytes = (n: number) =>
    Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const cases: Case[] = [];
  const mutations = [
    'none',
    'tamper_body',
    'tamper_id',
    'tamper_ts',
    'wrong_secret',
    'skew',
    'multi_valid',
    'multi_invalid',
    'missing_header',
    'garbage_entry',
    'short_sig',
    'v1a_only',
  ] as const;
  for (let i = 0; i < CASES; i++) {
    const secret = `whsec_${bytes(pick([16, 24, 32])).toString('base64')}`;
    const id = `wh_${bytes(8 + Math.floor(random() * 12)).toString('hex')}`;
    const skew = Math.floor((random() - 0.5) * 500);
    const ts = String(NOW + skew);
    const body = pick([
      () =>
        JSON.stringify({
          id: `evt_${i}`,
          type: 'batch.completed',
          created_at: NOW,
          data: { id: `batch_${i}` },
        }),
      () => JSON.stringify({ note: bytes(Math.floor(random() * 1500)).toString('base64') }),
      () => `{"text":"${'é✓🙂'.repeat(Math.floor(random() * 20))}"}`,
      () => ' {"spaced" : true} ',
      () => '',
    ])();
    const mutation = pick(mutations);
    let signature = `v1,${sign(secret, id, ts, body)}`;
    let sentBody = body;
    let sentId = id;
    let sentTs = ts;
    let verifyWith = secret;
    const headers: Record<string, string> = {};
    switch (mutation) {
      case 'tamper_body':
        sentBody = `${body} `;
        break;
      case 'tamper_id':
        sentId = `${id}x`;
        break;
      case 'tamper_ts':
        sentTs = String(Number(ts) + 1);
        break;
      case 'wrong_secret':
        verifyWith = `whsec_${bytes(32).toString('base64')}`;
        break;
      case 'skew':
        sentTs = String(NOW + pick([-301, -300, 299, 300, 301, 900, -900]));
        signature = `v1,${sign(secret, id, sentTs, body)}`;
        break;
      case 'multi_valid':
        signature = `v1,${bytes(32).toString('base64')} ${signature} v1,${bytes(32).toString('base64')}`;
        break;
      case 'multi_invalid':
        signature = `v1,${bytes(32).toString('base64')} v1,${bytes(32).toString('base64')}`;
        break;
      case 'garbage_entry':
        signature = `nonsense ${signature}`;
        break;
      case 'short_sig':
        signature = `v1,${bytes(16).toString('base64')}`;
        break;
      case 'v1a_only':
        signature = `v1a,${bytes(64).toString('base64')}`;
        break;
      default:
        break;
    }
    headers['webhook-id'] = sentId;
    headers['webhook-timestamp'] = sentTs;
    headers['webhook-signature'] = signature;
    if (mutation === 'missing_header')
      delete headers[pick(['webhook-id', 'webhook-timestamp', 'webhook-signature'])];
    cases.push({ name: `${i}:${mutation}`, secret: verifyWith, headers, body: sentBody });
  }
  return cases;
}

/** A verifier under test: its verdict on one case, for the secret the case names. */
type Verifier = (c: Case) => boolean;

const requestOf = (c: Case) => ({
  webhookId: c.headers['webhook-id'],
  timestamp: c.headers['webhook-timestamp'],
  signature: c.headers['webhook-signature'],
  body: c.body,
});

const ours: Verifier = (c) =>
  verifyWebhook(requestOf(c), [parseWebhookSecret(c.secret, 'current')], NOW).ok;

interface Disagreement {
  readonly name: string;
  readonly verdict: boolean;
  readonly openai: boolean;
  readonly standard: boolean;
}

/**
 * The comparison harness: runs `verifier`, the `openai` package and the `standardwebhooks`
 * package on every case and reports each case where the verifier's verdict differs from either.
 */
async function compare(verifier: Verifier, cases: readonly Case[]) {
  const client = new OpenAI({ apiKey: 'unused', baseURL: 'http://127.0.0.1:9/v1' });
  const disagreements: Disagreement[] = [];
  let accepted = 0;
  for (const c of cases) {
    const verdict = verifier(c);
    const openai = await client.webhooks.verifySignature(c.body, c.headers, c.secret).then(
      () => true,
      () => false,
    );
    let standard: boolean;
    try {
      new Webhook(c.secret).verify(c.body, c.headers, { jsonParse: false } as never);
      standard = true;
    } catch {
      standard = false;
    }
    if (verdict !== openai || verdict !== standard)
      disagreements.push({ name: c.name, verdict, openai, standard });
    if (verdict) accepted++;
  }
  return { disagreements, accepted };
}

const describeDisagreement = (d: Disagreement) =>
  `${d.name}: ours=${d.verdict} openai=${d.openai} standardwebhooks=${d.standard}`;

// Deliberately broken verifiers: each has a bug a real verifier could have.

/** Ignores the replay window: accepts any timestamp. */
const ignoresTolerance: Verifier = (c) =>
  verifyWebhook(
    requestOf(c),
    [parseWebhookSecret(c.secret, 'current')],
    NOW,
    Number.POSITIVE_INFINITY,
  ).ok;

/** Signs the wrong bytes: `<id>.<body>`, leaving the timestamp out of the MAC. */
const macWithoutTimestamp: Verifier = (c) => {
  const id = c.headers['webhook-id'];
  const signature = c.headers['webhook-signature'];
  if (id === undefined || signature === undefined || c.headers['webhook-timestamp'] === undefined)
    return false;
  const key = Buffer.from(c.secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${c.body}`).digest('base64');
  return signature.split(' ').some((entry) => entry === `v1,${expected}`);
};

describe('verifier differential (ours vs openai vs standardwebhooks)', () => {
  beforeAll(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW * 1000);
  });
  afterAll(() => {
    vi.useRealTimers();
  });

  it(`agrees on ${CASES} generated cases`, async () => {
    const cases = generate(prng(20261122));
    const { disagreements, accepted } = await compare(ours, cases);
    expect(disagreements.map(describeDisagreement)).toEqual([]);
    // The generator must exercise both verdicts substantially, or the test proves little.
    expect(accepted).toBeGreaterThan(CASES * 0.2);
    expect(CASES - accepted).toBeGreaterThan(CASES * 0.4);
  });

  it('detects a deliberately broken verifier (the comparison can fail)', async () => {
    const cases = generate(prng(20261122));

    // A verifier without the replay window: caught on the timestamps outside it, and only there.
    const lenient = await compare(ignoresTolerance, cases);
    expect(lenient.disagreements.length).toBeGreaterThan(0);
    for (const d of lenient.disagreements) {
      expect(d.name, describeDisagreement(d)).toMatch(/:skew$/);
      expect(d, describeDisagreement(d)).toMatchObject({
        verdict: true,
        openai: false,
        standard: false,
      });
    }

    // A verifier that MACs the wrong bytes: caught on every delivery the references accept.
    const wrongBytes = await compare(macWithoutTimestamp, cases);
    const { accepted } = await compare(ours, cases);
    expect(wrongBytes.disagreements).toHaveLength(accepted);
    for (const d of wrongBytes.disagreements)
      expect(d, describeDisagreement(d)).toMatchObject({
        verdict: false,
        openai: true,
        standard: true,
      });
  });
});
