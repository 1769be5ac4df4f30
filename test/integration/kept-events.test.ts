import { randomBytes } from 'node:crypto';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsEventPublisher } from '#adapters/sqs-event-publisher';
import type { StoredEventRecord } from '#core/ports/webhooks';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import type { ConsumedEvent } from '#core/webhooks/process-event';
import { redrive } from '../../cli/redrive';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { Gate } from '../support/fakes';
import { eventually, holdsFor, post, signedDelivery, startPipeline } from '../support/webhooks';

/**
 * Issue 12 §1: nothing verified is lost. Each case here was acknowledged and then lost, or
 * refused, before: a large body (acknowledged, then failing in every consumer attempt and in
 * `owh redrive`), a verified but odd envelope (400, so OpenAI retried it for 72 h and dropped it),
 * and a redelivery of an acknowledged event while the consumer lagged (409 until it caught up).
 */
const pipelines: LocalPipeline[] = [];
async function pipeline(options: Parameters<typeof startPipeline>[0] = {}) {
  const started = await startPipeline(options);
  pipelines.push(started);
  return started;
}
afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.stop()));
});

const stored = (p: LocalPipeline, eventId: string, status = 'processed') =>
  eventually(
    async () => {
      const event = await p.store.getEvent(eventId);
      return event?.status === status ? event : undefined;
    },
    20_000,
    `event ${eventId} ${status}`,
  );

/** A signed `response.completed` of about `bytes`, incompressible (random base64 in `data`). */
function largeEvent(bytes: number) {
  const event = sampleEvent('response.completed');
  const pad = randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64');
  const data: Record<string, unknown> & { pad: string } = { ...event.data, pad };
  return { ...event, data };
}

const queueUrls = (p: LocalPipeline) =>
  Object.fromEntries(CATEGORIES.map((c) => [c, p.queues[c].queueUrl])) as Record<Category, string>;

describe('large events: claim check through S3', () => {
  let p: LocalPipeline;
  const handled: ConsumedEvent[] = [];
  let failing = false;
  beforeAll(async () => {
    p = await pipeline({
      maxReceiveCount: 2,
      userHandlers: {
        response: async (event) => {
          if (failing) throw new Error('handler down');
          handled.push(event);
        },
      },
    });
  });

  it('stores, processes and replays a verified 700 KB body', async () => {
    const event = largeEvent(700 * 1024);
    const delivery = signedDelivery(p.webhookSecret, event);
    expect(Buffer.byteLength(delivery.body)).toBeGreaterThan(700 * 1024);
    expect(await post(p.url, delivery)).toEqual({ status: 200, body: { received: true } });

    const record = await stored(p, event.id);
    // The item carries the reference, not the body; the body is in the bucket, byte for byte.
    expect(record.payloadRef).toMatchObject({
      bucket: p.payloadBucket,
      bytes: Buffer.byteLength(delivery.body),
    });
    expect(record.payload.length).toBeLessThan(1024);
    const object = p.s3.buckets.get(p.payloadBucket)?.get(record.payloadRef?.key ?? '');
    expect(object?.toString('utf8')).toBe(delivery.body);
    const first = handled.filter((h) => h.eventId === event.id);
    expect(first).toHaveLength(1);
    expect(first[0]?.data.pad).toBe(event.data.pad);
    expect(await p.store.getObject(String(event.data.id))).toMatchObject({ status: 'completed' });

    // `owh events replay --force` sends the stored payload back to the queue as it is.
    await new SqsEventPublisher(p.sqs, queueUrls(p)).publish({
      webhookId: record.webhookId,
      eventId: record.eventId,
      type: record.type,
      category: record.category,
      receivedAt: record.receivedAt,
      secretLabel: record.secretLabel,
      replay: 'force',
      body: record.payload,
    });
    await eventually(
      async () => (handled.filter((h) => h.eventId === event.id).length === 2 ? true : undefined),
      20_000,
      'the replay handled',
    );
    expect(handled.filter((h) => h.eventId === event.id)[1]?.data.pad).toBe(event.data.pad);
  });

  it('lets owh redrive move large events back from the DLQ', async () => {
    failing = true;
    const events = [largeEvent(600 * 1024), largeEvent(900 * 1024)];
    for (const event of events)
      expect((await post(p.url, signedDelivery(p.webhookSecret, event))).status).toBe(200);
    const dlq = p.queues.response.dlqUrl;
    await eventually(
      async () => {
        const { Attributes } = await p.sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: dlq,
            AttributeNames: ['ApproximateNumberOfMessages'],
          }),
        );
        return Number(Attributes?.ApproximateNumberOfMessages) === 2 ? true : undefined;
      },
      30_000,
      'both events in the DLQ',
    );
    for (const event of events)
      expect(await p.store.getEvent(event.id)).toMatchObject({ status: 'failed' });
    failing = false;
    // One SendMessageBatch carries both: at most 1 MiB in all, which two bodies could not be.
    const result = await redrive(p.sqs, dlq, p.queues.response.queueUrl, 2, () => undefined);
    expect(result).toEqual({ moved: 2, failed: 0 });
    for (const event of events) {
      await stored(p, event.id);
      expect(handled.find((h) => h.eventId === event.id)?.data.pad).toBe(event.data.pad);
    }
  });

  it('still answers 413 above maxBodyBytes, before anything is stored', async () => {
    const small = await pipeline({ maxBodyBytes: 200 * 1024 });
    const event = largeEvent(300 * 1024);
    const response = await post(small.url, signedDelivery(small.webhookSecret, event));
    expect(response).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
    expect(await small.store.getEvent(event.id)).toBeUndefined();
    expect(small.s3.buckets.get(small.payloadBucket)?.size).toBe(0);
  });
});

describe('verified but odd envelopes are kept', () => {
  let p: LocalPipeline;
  const handled: ConsumedEvent[] = [];
  beforeAll(async () => {
    const keep = async (event: ConsumedEvent) => {
      handled.push(event);
    };
    p = await pipeline({ userHandlers: { batch: keep, other: keep } });
  });
  const id = () => `evt_odd_${randomBytes(6).toString('hex')}`;

  it('stores, projects and hydrates an event with a fractional created_at', async () => {
    const event = { ...sampleEvent('batch.completed'), created_at: 1_900_000_000.25 };
    const delivery = signedDelivery(p.webhookSecret, JSON.stringify(event));
    expect(await post(p.url, delivery)).toEqual({ status: 200, body: { received: true } });
    const record = await stored(p, event.id);
    expect(record).toMatchObject({
      category: 'batch',
      type: 'batch.completed',
      createdAt: 1_900_000_000,
      malformed: 'invalid_envelope',
      payload: delivery.body,
    });
    // Its shape allows projection and hydration.
    expect(await p.store.getObject(String(event.data.id))).toMatchObject({
      status: 'completed',
      details: { status: 'completed' },
    });
    expect(handled.find((h) => h.eventId === event.id)?.malformed?.reason).toBe('invalid_envelope');
  });

  it('routes a type outside the pattern by its prefix, without projecting it', async () => {
    const objectId = `batch_odd_${randomBytes(4).toString('hex')}`;
    const event = { id: id(), type: 'batch completed!', created_at: 1, data: { id: objectId } };
    expect((await post(p.url, signedDelivery(p.webhookSecret, JSON.stringify(event)))).status).toBe(
      200,
    );
    const record = await stored(p, event.id);
    expect(record).toMatchObject({
      category: 'other',
      type: 'batch_completed_',
      malformed: 'invalid_envelope',
    });
    expect(await p.store.getObject(objectId)).toBeUndefined();
  });

  it('keeps data that is not an object, and routes it by its type', async () => {
    const event = { id: id(), type: 'batch.completed', created_at: 1, data: 'b' };
    expect((await post(p.url, signedDelivery(p.webhookSecret, JSON.stringify(event)))).status).toBe(
      200,
    );
    const record = await stored(p, event.id);
    expect(record).toMatchObject({ category: 'batch', malformed: 'invalid_envelope' });
    expect(record.objectId).toBeUndefined();
    expect(handled.find((h) => h.eventId === event.id)).toMatchObject({ data: {} });
  });

  it('keeps a body that is not JSON as raw text, once per webhook-id', async () => {
    const delivery = signedDelivery(p.webhookSecret, 'hello, not JSON');
    expect(await post(p.url, delivery)).toEqual({ status: 200, body: { received: true } });
    const eventId = `malformed_${delivery.webhookId}`;
    const record: StoredEventRecord = await stored(p, eventId);
    expect(record).toMatchObject({
      category: 'other',
      type: 'unknown',
      malformed: 'invalid_json',
      payload: 'hello, not JSON',
    });
    // OpenAI's retry of the same delivery is a duplicate, under the same stand-in id.
    const retry = signedDelivery(p.webhookSecret, 'hello, not JSON', {
      webhookId: delivery.webhookId,
    });
    expect(await post(p.url, retry)).toEqual({
      status: 200,
      body: { received: true, duplicate: true },
    });
  });

  it('still refuses a body whose signature does not hold', async () => {
    const other = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const response = await post(p.url, signedDelivery(other, 'hello'));
    expect(response).toMatchObject({ status: 401, body: { error: { code: 'invalid_signature' } } });
  });
});

describe('redeliveries of an acknowledged event', () => {
  it('answer 200 duplicate while the consumer has not caught up', async () => {
    const gate = new Gate();
    const seen: string[] = [];
    const p = await pipeline({
      // The consumer lags: it cannot store anything until the gate opens.
      decorateConsumer: (_category, deps) => ({
        ...deps,
        store: {
          ...deps.store,
          recordReceived: async (record) => {
            await gate.opened;
            return deps.store.recordReceived(record);
          },
          markProcessed: (...args) => deps.store.markProcessed(...args),
          markFailed: (...args) => deps.store.markFailed(...args),
          getEvent: (eventId) => deps.store.getEvent(eventId),
          getObject: (objectId) => deps.store.getObject(objectId),
          putObject: (state, version) => deps.store.putObject(state, version),
        },
      }),
      userHandlers: {
        batch: async (event) => {
          seen.push(event.eventId);
        },
      },
    });
    const event = sampleEvent('batch.completed');
    const first = signedDelivery(p.webhookSecret, event);
    expect(await post(p.url, first)).toEqual({ status: 200, body: { received: true } });
    // OpenAI redelivers (a retry after a lost answer, say) before the consumer has stored it.
    for (let i = 0; i < 3; i++) {
      const again = signedDelivery(p.webhookSecret, event, { webhookId: first.webhookId });
      expect(await post(p.url, again)).toEqual({
        status: 200,
        body: { received: true, duplicate: true },
      });
    }
    expect(await p.store.getEvent(event.id)).toBeUndefined();
    gate.open();
    await stored(p, event.id);
    // Bounded wait: a second queueing would reach the handler within tens of milliseconds.
    await holdsFor(() => seen.length <= 1, 500, 'one handler call');
    expect(seen).toEqual([event.id]);
  });
});
