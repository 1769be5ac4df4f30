import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INGRESS_REJECTION_REASONS } from '#core/reasons';
import { CATEGORIES } from '#core/webhooks/categories';
import { parseWebhookSecret, signWebhook } from '#core/webhooks/signature';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { eventually, signedDelivery, startPipeline } from '../support/webhooks';

/**
 * Every malformed request gets a clear status and `{error:{code,message}}`, and changes nothing:
 * after all of them, the table and every queue are still empty.
 *
 * Each case builds its request for the pipeline it is sent to. The shared pipeline only ever gets
 * the cases, which leave nothing behind; the tests that look at what is left afterwards start a
 * pipeline of their own and send every case to it first, so no test depends on another.
 */
const MAX_BODY = 4096;
const pipelines: LocalPipeline[] = [];
async function pipeline(): Promise<LocalPipeline> {
  const started = await startPipeline({ maxBodyBytes: MAX_BODY });
  pipelines.push(started);
  return started;
}
let shared: LocalPipeline;
beforeAll(async () => {
  shared = await pipeline();
});
afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.stop()));
});

type Request = {
  method?: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** Undoes what the case set up, once its response is in. */
  after?: () => Promise<void>;
};
type Build = (p: LocalPipeline) => Request | Promise<Request>;
const valid = (p: LocalPipeline) => signedDelivery(p.webhookSecret, sampleEvent('batch.completed'));
const signed = (p: LocalPipeline, body: string, options: { timestamp?: number } = {}) =>
  signedDelivery(p.webhookSecret, body, options);
const without =
  (name: string): Build =>
  (p) => {
    const d = valid(p);
    const headers = { ...d.headers };
    delete headers[name];
    return { headers, body: d.body };
  };
const withHeader =
  (name: string, value: string): Build =>
  (p) => {
    const d = valid(p);
    return { headers: { ...d.headers, [name]: value }, body: d.body };
  };
const now = () => Math.floor(Date.now() / 1000);
const otherSecret = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;

const CASES: [name: string, build: Build, status: number, code: string][] = [
  ['GET', (p) => ({ ...valid(p), method: 'GET', body: undefined }), 405, 'method_not_allowed'],
  ['PUT', (p) => ({ ...valid(p), method: 'PUT' }), 405, 'method_not_allowed'],
  [
    'DELETE',
    (p) => ({ ...valid(p), method: 'DELETE', body: undefined }),
    405,
    'method_not_allowed',
  ],
  ['PATCH', (p) => ({ ...valid(p), method: 'PATCH' }), 405, 'method_not_allowed'],
  [
    'a body over the limit',
    (p) =>
      signed(p, JSON.stringify({ ...sampleEvent('batch.completed'), pad: 'x'.repeat(MAX_BODY) })),
    413,
    'body_too_large',
  ],
  ['no webhook-id', without('webhook-id'), 400, 'missing_header'],
  ['no webhook-timestamp', without('webhook-timestamp'), 400, 'missing_header'],
  ['no webhook-signature', without('webhook-signature'), 400, 'missing_header'],
  [
    'no webhook headers at all',
    (p) => ({ headers: { 'content-type': 'application/json' }, body: valid(p).body }),
    400,
    'missing_header',
  ],
  ['an empty webhook-id', withHeader('webhook-id', ''), 400, 'malformed_header'],
  ['a webhook-id with a space', withHeader('webhook-id', 'wh 123'), 400, 'malformed_header'],
  [
    'a 300-character webhook-id',
    withHeader('webhook-id', `wh_${'a'.repeat(297)}`),
    400,
    'malformed_header',
  ],
  ['a word as timestamp', withHeader('webhook-timestamp', 'yesterday'), 400, 'malformed_header'],
  [
    'a fractional timestamp',
    withHeader('webhook-timestamp', `${now()}.5`),
    400,
    'malformed_header',
  ],
  [
    'a timestamp with trailing text',
    withHeader('webhook-timestamp', `${now()}abc`),
    400,
    'malformed_header',
  ],
  [
    'a timestamp in milliseconds',
    withHeader('webhook-timestamp', String(Date.now() * 1000)),
    400,
    'malformed_header',
  ],
  [
    'a signature without a version',
    withHeader('webhook-signature', Buffer.alloc(32).toString('base64')),
    400,
    'malformed_header',
  ],
  [
    '17 signature entries',
    withHeader(
      'webhook-signature',
      Array(17)
        .fill(`v1,${Buffer.alloc(32).toString('base64')}`)
        .join(' '),
    ),
    400,
    'malformed_header',
  ],
  [
    'a wrong signature',
    withHeader('webhook-signature', `v1,${Buffer.alloc(32, 5).toString('base64')}`),
    401,
    'invalid_signature',
  ],
  [
    'a signature by another secret',
    () => signedDelivery(otherSecret, sampleEvent('batch.completed')),
    401,
    'invalid_signature',
  ],
  [
    'a tampered body',
    (p) => {
      const d = valid(p);
      return { headers: d.headers, body: d.body.replace('batch.completed', 'batch.cancelled') };
    },
    401,
    'invalid_signature',
  ],
  [
    'a signature replayed under another webhook-id',
    (p) => {
      const d = valid(p);
      return { headers: { ...d.headers, 'webhook-id': `${d.webhookId}x` }, body: d.body };
    },
    401,
    'invalid_signature',
  ],
  [
    'a timestamp 10 minutes old',
    (p) => signed(p, JSON.stringify(sampleEvent('batch.completed')), { timestamp: now() - 600 }),
    401,
    'timestamp_out_of_tolerance',
  ],
  [
    'a timestamp 10 minutes ahead',
    (p) => signed(p, JSON.stringify(sampleEvent('batch.completed')), { timestamp: now() + 600 }),
    401,
    'timestamp_out_of_tolerance',
  ],
  [
    'only an ed25519 (v1a) signature',
    withHeader('webhook-signature', `v1a,${Buffer.alloc(64).toString('base64')}`),
    401,
    'invalid_signature',
  ],
  ['a truncated signature', withHeader('webhook-signature', 'v1,AAAA'), 401, 'invalid_signature'],
];

const uid = () => `evt_kept_${Math.random().toString(36).slice(2)}`;

/**
 * Signed bodies that are not well-formed events. They used to get 400 (so OpenAI retried them
 * for 72 hours and dropped them); since issue 12 the signature makes them OpenAI's, so each is
 * stored as a `malformed` event with its reason, routed, and acknowledged with 200.
 */
const KEPT: [name: string, build: Build, reason: string][] = [
  ['a signed body that is not JSON', (p) => signed(p, 'hello'), 'invalid_json'],
  ['a signed empty body', (p) => signed(p, ''), 'invalid_json'],
  ['a signed JSON array', (p) => signed(p, '[1,2]'), 'invalid_envelope'],
  [
    'a signed event without id',
    (p) => signed(p, '{"type":"batch.completed","created_at":1,"data":{"id":"b"}}'),
    'invalid_envelope',
  ],
  [
    'a signed event without type',
    (p) => signed(p, `{"id":"${uid()}","created_at":1,"data":{"id":"b"}}`),
    'invalid_envelope',
  ],
  [
    'a signed event with a string created_at',
    (p) => signed(p, `{"id":"${uid()}","type":"batch.completed","created_at":"now","data":{}}`),
    'invalid_envelope',
  ],
  [
    'a signed event without data',
    (p) => signed(p, `{"id":"${uid()}","type":"batch.completed","created_at":1}`),
    'invalid_envelope',
  ],
  [
    'a signed event whose data is a string',
    (p) => signed(p, `{"id":"${uid()}","type":"batch.completed","created_at":1,"data":"b"}`),
    'invalid_envelope',
  ],
  [
    'a signed event whose type has spaces',
    (p) => signed(p, `{"id":"${uid()}","type":"batch completed","created_at":1,"data":{}}`),
    'invalid_envelope',
  ],
  [
    'a signed body that is not UTF-8',
    (p) => {
      const bytes = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
      const d = signedDelivery(p.webhookSecret, bytes.toString('latin1'));
      // Sign the raw bytes, and send them as binary so the URL base64-encodes them.
      const signature = signWebhook(
        parseWebhookSecret(p.webhookSecret, 't'),
        d.webhookId,
        d.timestamp,
        bytes,
      );
      return {
        headers: {
          ...d.headers,
          'content-type': 'application/octet-stream',
          'webhook-signature': signature,
        },
        body: bytes,
      };
    },
    'invalid_encoding',
  ],
];

/** Sends one case to the pipeline and reads its answer, then undoes what the case set up. */
async function send(p: LocalPipeline, build: Build) {
  const request = await build(p);
  try {
    const response = await fetch(p.url, {
      method: request.method ?? 'POST',
      headers: request.headers,
      ...(request.body !== undefined ? { body: request.body } : {}),
    });
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    return { response, body };
  } finally {
    await request.after?.();
  }
}

/** Sends every case, one after the other; returns the error codes the answers carried. */
async function sendAll(p: LocalPipeline): Promise<Set<string | undefined>> {
  const codes = new Set<string | undefined>();
  for (const [, build] of CASES) codes.add((await send(p, build)).body.error?.code);
  return codes;
}

describe('bad input', () => {
  it('produces every ingress rejection reason from at least one case', async () => {
    expect(CASES.length + KEPT.length).toBeGreaterThanOrEqual(30);
    // Run against the ingress, so a reason no case really produces fails here.
    const produced = await sendAll(shared);
    const untested = INGRESS_REJECTION_REASONS.filter((reason) => !produced.has(reason));
    expect(untested).toEqual([]);
    const unexpected = [...produced].filter(
      (code) => !(INGRESS_REJECTION_REASONS as readonly (string | undefined)[]).includes(code),
    );
    expect(unexpected).toEqual([]);
  });

  it.each(CASES)('%s → %i %s', async (_name, build, status, code) => {
    const { response, body } = await send(shared, build);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(body.error?.code).toBe(code);
    expect(body.error?.message).toEqual(expect.any(String));
    expect(JSON.stringify(body)).not.toMatch(/whsec_|at .+\.ts:\d+|Error:/);
    if (status === 405) expect(response.headers.get('allow')).toBe('POST');
    if (status === 409) expect(response.headers.get('retry-after')).toBe('30');
  });

  it('stored and queued nothing for any of them', async () => {
    const p = await pipeline();
    await sendAll(p);
    const scan = await p.dynamo.send(new ScanCommand({ TableName: p.tableName, Select: 'COUNT' }));
    expect(scan.Count).toBe(0);
    for (const category of CATEGORIES) {
      for (const url of [p.queues[category].queueUrl, p.queues[category].dlqUrl]) {
        const attributes = await p.sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: [
              'ApproximateNumberOfMessages',
              'ApproximateNumberOfMessagesNotVisible',
            ],
          }),
        );
        expect(attributes.Attributes).toMatchObject({
          ApproximateNumberOfMessages: '0',
          ApproximateNumberOfMessagesNotVisible: '0',
        });
      }
    }
  });

  it.each(KEPT)('%s → 200, kept as malformed (%s)', async (_name, build, reason) => {
    const p = shared;
    const request = await build(p);
    const { body } = await send(p, () => request);
    expect(body).toEqual({ received: true });
    const webhookId = request.headers['webhook-id'] ?? '';
    const text = Buffer.isBuffer(request.body) ? undefined : request.body;
    const parsedId = (() => {
      try {
        const id = (JSON.parse(text ?? '') as { id?: unknown }).id;
        return typeof id === 'string' ? id : undefined;
      } catch {
        return undefined;
      }
    })();
    const eventId = parsedId ?? `malformed_${webhookId}`;
    const stored = await eventually(
      async () => {
        const event = await p.store.getEvent(eventId);
        return event?.status === 'processed' ? event : undefined;
      },
      15_000,
      `${eventId} stored`,
    );
    expect(stored).toMatchObject({ malformed: reason, webhookId });
  });

  it('still accepts a good request afterwards (the pipeline is healthy)', async () => {
    const p = await pipeline();
    await sendAll(p);
    const d = valid(p);
    const response = await fetch(p.url, { method: 'POST', headers: d.headers, body: d.body });
    expect(response.status).toBe(200);
  });
});
