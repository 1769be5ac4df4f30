import { randomBytes } from 'node:crypto';
import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsumedEvent } from '#core/webhooks/process-event';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { eventually, holdsFor, post, signedDelivery, startPipeline } from '../support/webhooks';

const pipelines: LocalPipeline[] = [];
async function pipeline(options: Parameters<typeof startPipeline>[0] = {}) {
  const started = await startPipeline(options);
  pipelines.push(started);
  return started;
}
afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.stop()));
});

const processed = (p: LocalPipeline, eventId: string) =>
  eventually(
    async () => {
      const event = await p.store.getEvent(eventId);
      return event?.status === 'processed' ? event : undefined;
    },
    15_000,
    `event ${eventId} processed`,
  );

/**
 * How long a test watches for a second handler call that must never come. A message queued by
 * mistake is picked up at once by the consumer's long poll and handled within tens of
 * milliseconds on the local stand-ins, so a second call would show well within this window.
 */
const NO_SECOND_CALL_MS = 500;

describe('the webhook pipeline, end to end on the local stand-ins', () => {
  // One pipeline for these tests; each works on events and objects of its own, and reads only
  // what its own events caused (the handler calls and publishes are kept per event id).
  let p: LocalPipeline;
  const calls: ConsumedEvent[] = [];
  const published: string[] = [];
  const callsFor = (eventId: string) => calls.filter((c) => c.eventId === eventId);
  const publishesOf = (eventId: string) => published.filter((id) => id === eventId);
  beforeAll(async () => {
    p = await pipeline({
      userHandlers: {
        batch: async (event) => {
          calls.push(event);
        },
      },
      decorateIngress: (deps) => ({
        ...deps,
        publisher: {
          publish: async (message) => {
            await deps.publisher.publish(message);
            published.push(message.eventId);
          },
        },
      }),
    });
  });

  it('stores, queues, consumes, projects and hydrates a signed event', async () => {
    const event = sampleEvent('batch.completed');
    const objectId = String(event.data.id);
    const delivery = signedDelivery(p.webhookSecret, event);
    const response = await post(p.url, delivery);
    expect(response).toEqual({ status: 200, body: { received: true } });

    const stored = await processed(p, event.id);
    expect(stored).toMatchObject({
      type: 'batch.completed',
      category: 'batch',
      webhookId: delivery.webhookId,
      createdAt: event.created_at,
      secretLabel: 'current',
      objectId,
      payload: delivery.body,
    });
    const object = await p.store.getObject(objectId);
    expect(object).toMatchObject({
      objectType: 'batch',
      status: 'completed',
      details: {
        status: 'completed',
        output_file_id: expect.any(String),
        request_counts: expect.any(Object),
      },
    });
    const fetches = p.simulator?.requestsTo(`/v1/batches/${objectId}`) ?? [];
    expect(fetches).toHaveLength(1);
    expect(fetches[0]?.authorization).toBe(`Bearer ${p.simulator?.apiKey}`);
    expect(callsFor(event.id)).toHaveLength(1);
    expect(callsFor(event.id)[0]).toMatchObject({
      eventId: event.id,
      type: 'batch.completed',
      attempt: 1,
      object: { status: 'completed' },
    });

    // A later delivery of the same webhook-id is a duplicate with no second effect.
    expect(
      await post(p.url, signedDelivery(p.webhookSecret, event, { webhookId: delivery.webhookId })),
    ).toEqual({ status: 200, body: { received: true, duplicate: true } });
    // The duplicate was answered without queueing it, so no consumer can ever see it again.
    expect(publishesOf(event.id)).toHaveLength(1);
    // Bounded wait (see NO_SECOND_CALL_MS): the handler is not called a second time.
    await holdsFor(
      () => callsFor(event.id).length === 1,
      NO_SECOND_CALL_MS,
      'one handler call for the event',
    );
    expect(callsFor(event.id)).toHaveLength(1);
  });

  it('processes the same webhook-id delivered three times concurrently once', async () => {
    const event = sampleEvent('batch.completed');
    const webhookId = `wh_concurrent_${randomBytes(6).toString('hex')}`;
    const responses = await Promise.all(
      [1, 2, 3].map(() => post(p.url, signedDelivery(p.webhookSecret, event, { webhookId }))),
    );
    // Issue 12: every delivery is acknowledged once queued (no 409): the event's head keeps one
    // attempt's token, and the others are told they were duplicates.
    for (const r of responses) expect(r.status).toBe(200);
    expect(responses.filter((r) => !r.body?.duplicate)).toHaveLength(1);
    await processed(p, event.id);
    // Racing attempts may each have queued it; the consumer drops the messages the head does not
    // name, so the handler still runs once.
    expect(publishesOf(event.id).length).toBeGreaterThanOrEqual(1);
    // Bounded wait (see NO_SECOND_CALL_MS): no second handler call, whichever delivery won.
    await holdsFor(
      () => callsFor(event.id).length === 1,
      NO_SECOND_CALL_MS,
      'one handler call for the event',
    );
    expect(calls.filter((c) => c.eventId === event.id)).toHaveLength(1);
    expect(p.simulator?.requestsTo(`/v1/batches/${String(event.data.id)}`)).toHaveLength(1);
  });

  it('keeps the newest state when events arrive out of order', async () => {
    const objectId = `batch_ooo_${randomBytes(6).toString('hex')}`;
    const newer = sampleEvent('batch.completed', { objectId, createdAt: 2_000_000_000 });
    const older = sampleEvent('batch.failed', { objectId, createdAt: 1_900_000_000 });
    expect((await post(p.url, signedDelivery(p.webhookSecret, newer))).status).toBe(200);
    await processed(p, newer.id);
    expect((await post(p.url, signedDelivery(p.webhookSecret, older))).status).toBe(200);
    await processed(p, older.id);
    const object = await p.store.getObject(objectId);
    expect(object?.status).toBe('completed');
    expect(object?.history.map((h) => h.status)).toEqual(['failed', 'completed']);
  });

  it('routes unknown and newer types to "other" and stores them', async () => {
    const objectId = `qt_${randomBytes(6).toString('hex')}`;
    const event = {
      object: 'event',
      id: `evt_new_${randomBytes(8).toString('hex')}`,
      type: 'quantum.thing.happened',
      created_at: 1,
      data: { id: objectId, extra: [1, 2] },
    };
    expect((await post(p.url, signedDelivery(p.webhookSecret, event))).status).toBe(200);
    const stored = await processed(p, event.id);
    expect(stored.category).toBe('other');
    expect(await p.store.getObject(objectId)).toMatchObject({
      objectType: 'quantum.thing',
      status: 'happened',
    });
  });

  it('runs the real Lambda entry module against the stand-ins', async () => {
    Object.assign(process.env, p.env);
    const { handler } = await import('../../lambdas/ingress/handler');
    const event = sampleEvent('response.completed');
    const delivery = signedDelivery(p.webhookSecret, event);
    const result = await handler({
      version: '2.0',
      rawPath: '/',
      rawQueryString: '',
      headers: delivery.headers,
      body: delivery.body,
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST' } },
    } as never);
    expect(result).toMatchObject({ statusCode: 200 });
    expect(await processed(p, event.id)).toMatchObject({ category: 'response' });
  });
});

describe('never losing an event', () => {
  it('processes exactly once when queueing fails after the dedupe write and OpenAI retries', async () => {
    let failures = 1;
    const seen: string[] = [];
    let queued = 0;
    const p = await pipeline({
      decorateIngress: (deps) => ({
        ...deps,
        publisher: {
          publish: async (message) => {
            if (failures-- > 0) throw new Error('SQS is down');
            await deps.publisher.publish(message);
            queued++;
          },
        },
      }),
      userHandlers: {
        fine_tuning: async (event) => {
          seen.push(event.eventId);
        },
      },
    });
    const event = sampleEvent('fine_tuning.job.succeeded');
    const webhookId = `wh_retry_${randomBytes(6).toString('hex')}`;
    const first = await post(p.url, signedDelivery(p.webhookSecret, event, { webhookId }));
    expect(first).toMatchObject({ status: 503, body: { error: { code: 'queue_unavailable' } } });
    expect(await p.store.getEvent(event.id)).toBeUndefined();

    // OpenAI's retry: a new timestamp and signature, the same webhook-id.
    const retry = await post(p.url, signedDelivery(p.webhookSecret, event, { webhookId }));
    expect(retry).toEqual({ status: 200, body: { received: true } });
    await processed(p, event.id);
    // Queued once (the failed attempt queued nothing), so it can reach the handler only once.
    expect(queued).toBe(1);
    // Bounded wait (see NO_SECOND_CALL_MS): no second handler call shows up.
    await holdsFor(() => seen.length === 1, NO_SECOND_CALL_MS, 'one handler call');
    expect(seen).toEqual([event.id]);
  });

  it('processes the retry of an attempt that died before queueing at once (nothing was claimed)', async () => {
    let crash = true;
    const p = await pipeline({
      decorateIngress: (deps) => ({
        ...deps,
        // The first attempt "dies" while queueing: it wrote nothing before, so it leaves nothing.
        publisher: {
          publish: async (message) => {
            if (crash) throw new Error('timeout');
            await deps.publisher.publish(message);
          },
        },
      }),
    });
    const event = sampleEvent('eval.run.succeeded');
    const webhookId = `wh_dead_${randomBytes(6).toString('hex')}`;
    expect((await post(p.url, signedDelivery(p.webhookSecret, event, { webhookId }))).status).toBe(
      503,
    );
    expect(await p.store.getEvent(event.id)).toBeUndefined();
    crash = false;
    // OpenAI's retry is queued and acknowledged at once: no 409, no claim to wait out.
    expect(await post(p.url, signedDelivery(p.webhookSecret, event, { webhookId }))).toEqual({
      status: 200,
      body: { received: true },
    });
    await processed(p, event.id);
  });

  it('retries a failing user handler, then dead-letters it with the failure recorded', async () => {
    const attempts: number[] = [];
    const p = await pipeline({
      maxReceiveCount: 3,
      userHandlers: {
        response: async (event) => {
          attempts.push(event.attempt);
          throw new Error('downstream system refused it');
        },
      },
    });
    const event = sampleEvent('response.failed');
    expect((await post(p.url, signedDelivery(p.webhookSecret, event))).status).toBe(200);
    const dlq = p.queues.response.dlqUrl;
    const messages = await eventually(
      async () => {
        const received = await p.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: dlq,
            WaitTimeSeconds: 1,
            MessageAttributeNames: ['All'],
            VisibilityTimeout: 60,
          }),
        );
        return received.Messages?.length ? received.Messages : undefined;
      },
      30_000,
      'the DLQ message',
    );
    expect(messages[0]?.Body).toBe(JSON.stringify(event));
    expect(messages[0]?.MessageAttributes?.['event-id']?.StringValue).toBe(event.id);
    expect(attempts).toEqual([1, 2, 3]);
    const stored = await p.store.getEvent(event.id);
    expect(stored).toMatchObject({
      status: 'failed',
      attempts: 3,
      lastError: expect.stringContaining('downstream system refused it'),
    });
    const main = await p.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: p.queues.response.queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    expect(main.Attributes).toMatchObject({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
  });
});

describe('hydration against the OpenAI simulator', () => {
  it('rides out a 429 with backoff inside one attempt', async () => {
    const p = await pipeline();
    p.simulator?.failNext('/v1/fine_tuning/jobs/', 429, 1, {
      error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' },
    });
    const event = sampleEvent('fine_tuning.job.succeeded');
    await post(p.url, signedDelivery(p.webhookSecret, event));
    const stored = await processed(p, event.id);
    expect(stored.attempts).toBe(1);
    expect(await p.store.getObject(String(event.data.id))).toMatchObject({
      details: { fine_tuned_model: expect.stringMatching(/^ft:/), trained_tokens: 123456 },
    });
  });

  it('retries through the queue when OpenAI keeps failing, and loses nothing', async () => {
    const p = await pipeline();
    // Three in-process attempts per delivery: the first delivery fails, the second succeeds.
    p.simulator?.failNext('/v1/responses/', 503, 4);
    const event = sampleEvent('response.completed');
    await post(p.url, signedDelivery(p.webhookSecret, event));
    const stored = await processed(p, event.id);
    expect(stored.attempts).toBe(2);
    expect(await p.store.getObject(String(event.data.id))).toMatchObject({
      details: { usage: { total_tokens: 600 } },
    });
  });

  it('records a 404 as a hydration error and still processes the event', async () => {
    const p = await pipeline();
    p.simulator?.failNext('/v1/batches/', 404, 1, {
      error: { message: 'No batch found', type: 'invalid_request_error', code: null },
    });
    const event = sampleEvent('batch.expired');
    await post(p.url, signedDelivery(p.webhookSecret, event));
    await processed(p, event.id);
    expect(await p.store.getObject(String(event.data.id))).toMatchObject({
      status: 'expired',
      hydrationError: expect.stringContaining('404'),
    });
  });
});

describe('secret rotation', () => {
  it('accepts the previous secret during a rotation and records which one matched', async () => {
    const oldSecret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
    const p = await pipeline({ previousWebhookSecret: oldSecret });
    const viaOld = sampleEvent('batch.cancelled');
    const viaNew = sampleEvent('batch.cancelled');
    expect((await post(p.url, signedDelivery(oldSecret, viaOld))).status).toBe(200);
    expect((await post(p.url, signedDelivery(p.webhookSecret, viaNew))).status).toBe(200);
    expect((await processed(p, viaOld.id)).secretLabel).toBe('previous');
    expect((await processed(p, viaNew.id)).secretLabel).toBe('current');
  });

  it('picks up a rotated secret at once after the first mismatch', async () => {
    const p = await pipeline();
    const event = sampleEvent('batch.completed');
    // Warm the cache, then rotate in Secrets Manager.
    expect(
      (await post(p.url, signedDelivery(p.webhookSecret, sampleEvent('batch.completed')))).status,
    ).toBe(200);
    const rotated = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    p.aws.secrets.set(
      String(p.env.WEBHOOK_SECRET_ID),
      JSON.stringify({ current: rotated, previous: p.webhookSecret }),
    );
    expect((await post(p.url, signedDelivery(rotated, event))).status).toBe(200);
    expect((await processed(p, event.id)).secretLabel).toBe('current');
  });
});
