import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORIES } from '#core/webhooks/categories';
import { parseWebhookSecret, signWebhook } from '#core/webhooks/signature';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { signedDelivery, startPipeline } from '../support/webhooks';

/**
 * Every malformed request gets a clear status and `{error:{code,message}}`, and changes nothing:
 * after all of them, the table and every queue are still empty.
 */
const MAX_BODY = 4096;
let p: LocalPipeline;
beforeAll(async () => {
  p = await startPipeline({ maxBodyBytes: MAX_BODY });
});
afterAll(async () => {
  await p.stop();
});

type Request = { method?: string; headers: Record<string, string>; body?: string | Buffer };
const valid = () => signedDelivery(p.webhookSecret, sampleEvent('batch.completed'));
const signed = (body: string, options: { timestamp?: number } = {}) =>
  signedDelivery(p.webhookSecret, body, options);
const without = (name: string) => () => {
  const d = valid();
  const headers = { ...d.headers };
  delete headers[name];
  return { headers, body: d.body };
};
const withHeader = (name: string, value: string) => () => {
  const d = valid();
  return { headers: { ...d.headers, [name]: value }, body: d.body };
};
const now = () => Math.floor(Date.now() / 1000);
const otherSecret = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;

const CASES: [name: string, build: () => Request, status: number, code: string][] = [
  ['GET', () => ({ ...valid(), method: 'GET', body: undefined }), 405, 'method_not_allowed'],
  ['PUT', () => ({ ...valid(), method: 'PUT' }), 405, 'method_not_allowed'],
  ['DELETE', () => ({ ...valid(), method: 'DELETE', body: undefined }), 405, 'method_not_allowed'],
  ['PATCH', () => ({ ...valid(), method: 'PATCH' }), 405, 'method_not_allowed'],
  [
    'a body over the limit',
    () => signed(JSON.stringify({ ...sampleEvent('batch.completed'), pad: 'x'.repeat(MAX_BODY) })),
    413,
    'body_too_large',
  ],
  ['no webhook-id', without('webhook-id'), 400, 'missing_header'],
  ['no webhook-timestamp', without('webhook-timestamp'), 400, 'missing_header'],
  ['no webhook-signature', without('webhook-signature'), 400, 'missing_header'],
  [
    'no webhook headers at all',
    () => ({ headers: { 'content-type': 'application/json' }, body: valid().body }),
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
    () => {
      const d = valid();
      return { headers: d.headers, body: d.body.replace('batch.completed', 'batch.cancelled') };
    },
    401,
    'invalid_signature',
  ],
  [
    'a signature replayed under another webhook-id',
    () => {
      const d = valid();
      return { headers: { ...d.headers, 'webhook-id': `${d.webhookId}x` }, body: d.body };
    },
    401,
    'invalid_signature',
  ],
  [
    'a timestamp 10 minutes old',
    () => signed(JSON.stringify(sampleEvent('batch.completed')), { timestamp: now() - 600 }),
    401,
    'timestamp_out_of_tolerance',
  ],
  [
    'a timestamp 10 minutes ahead',
    () => signed(JSON.stringify(sampleEvent('batch.completed')), { timestamp: now() + 600 }),
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
  ['a signed body that is not JSON', () => signed('hello'), 400, 'invalid_json'],
  ['a signed empty body', () => signed(''), 400, 'invalid_json'],
  ['a signed JSON array', () => signed('[1,2]'), 400, 'invalid_envelope'],
  [
    'a signed event without id',
    () => signed('{"type":"batch.completed","created_at":1,"data":{"id":"b"}}'),
    400,
    'invalid_envelope',
  ],
  [
    'a signed event without type',
    () => signed('{"id":"evt_1","created_at":1,"data":{"id":"b"}}'),
    400,
    'invalid_envelope',
  ],
  [
    'a signed event with a string created_at',
    () => signed('{"id":"evt_1","type":"batch.completed","created_at":"now","data":{}}'),
    400,
    'invalid_envelope',
  ],
  [
    'a signed event without data',
    () => signed('{"id":"evt_1","type":"batch.completed","created_at":1}'),
    400,
    'invalid_envelope',
  ],
  [
    'a signed event whose data is a string',
    () => signed('{"id":"evt_1","type":"batch.completed","created_at":1,"data":"b"}'),
    400,
    'invalid_envelope',
  ],
  [
    'a signed event whose type has spaces',
    () => signed('{"id":"evt_1","type":"batch completed","created_at":1,"data":{}}'),
    400,
    'invalid_envelope',
  ],
  [
    'a signed body that is not UTF-8',
    () => {
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
    400,
    'invalid_encoding',
  ],
];

describe('bad input', () => {
  it('has at least 30 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES)('%s → %i %s', async (_name, build, status, code) => {
    const request = build();
    const response = await fetch(p.url, {
      method: request.method ?? 'POST',
      headers: request.headers,
      ...(request.body !== undefined ? { body: request.body } : {}),
    });
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/json');
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    expect(body.error?.code).toBe(code);
    expect(body.error?.message).toEqual(expect.any(String));
    expect(JSON.stringify(body)).not.toMatch(/whsec_|at .+\.ts:\d+|Error:/);
    if (status === 405) expect(response.headers.get('allow')).toBe('POST');
  });

  it('stored and queued nothing for any of them', async () => {
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

  it('still accepts a good request afterwards (the pipeline is healthy)', async () => {
    const d = valid();
    const response = await fetch(p.url, { method: 'POST', headers: d.headers, body: d.body });
    expect(response.status).toBe(200);
  });
});
