import { randomBytes } from 'node:crypto';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsEventPublisher } from '#adapters/sqs-event-publisher';
import type { StoredEventRecord } from '#core/ports/webhooks';
import { listingShard } from '#core/table-schema';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import type { ConsumedEvent } from '#core/webhooks/process-event';
import { type PayloadRef, wrapBytes } from '#core/webhooks/queue-message';
import { eventPayloadView, listEvents } from '../../cli/queries';
import { redrive } from '../../cli/redrive';
import { payloadView, shownPayload } from '../../cli/views';
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
      // Reading and checking a 700 KB body from S3 can take over a second on a busy machine: a
      // 1 s visibility timeout would hand the message to a second consumer meanwhile.
      visibilityTimeoutSeconds: 5,
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
          recordReceived: async (record, options) => {
            await gate.opened;
            return deps.store.recordReceived(record, options);
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
    // Only the head the ingress wrote: listed as received, the body comes with the outcome.
    expect(await p.store.getEvent(event.id)).toMatchObject({ status: 'received', payload: '' });
    gate.open();
    await stored(p, event.id);
    // Bounded wait: a second queueing would reach the handler within tens of milliseconds.
    await holdsFor(() => seen.length <= 1, 500, 'one handler call');
    expect(seen).toEqual([event.id]);
  });
});

// Issue 12 §2: the event's head is the listing row, sharded; `owh events show` shows the event.
describe('the listing and events show on the head/body layout', () => {
  let p: LocalPipeline;
  let db: DynamoDBDocumentClient;
  beforeAll(async () => {
    p = await pipeline({ visibilityTimeoutSeconds: 5 });
    db = DynamoDBDocumentClient.from(p.dynamo);
  });

  it('lists a category across its shards newest first, and pages through it exactly', async () => {
    // A type of its own, in `other`, so the listing holds only these.
    const type = `shards.${randomBytes(4).toString('hex')}`;
    const now = Math.floor(Date.now() / 1000);
    const events = Array.from({ length: 24 }, (_, i) => ({
      ...sampleEvent(type),
      // Pairs share a second: the event id orders them within it, as the index does.
      created_at: now - 100 + Math.floor(i / 2),
    }));
    for (const event of events)
      expect((await post(p.url, signedDelivery(p.webhookSecret, event))).status).toBe(200);
    await Promise.all(events.map((e) => stored(p, e.id)));
    // They really are spread over several index partitions.
    expect(new Set(events.map((e) => listingShard(e.id))).size).toBeGreaterThan(4);
    const expected = events
      .map((e) => ({ id: e.id, key: `${e.created_at}#${e.id}` }))
      .sort((a, b) => (a.key < b.key ? 1 : -1))
      .map((e) => e.id);

    const seen: string[] = [];
    let before: string | undefined;
    let pages = 0;
    do {
      const page = await listEvents(db, p.tableName, {
        type,
        limit: 5,
        ...(before ? { before } : {}),
      });
      seen.push(...page.events.map((e) => e.eventId));
      expect(page.events.every((e) => e.status === 'processed' && e.attempts === 1)).toBe(true);
      before = page.next;
      pages++;
    } while (before && pages < 10);
    expect(seen).toEqual(expected);
    expect(pages).toBe(5);

    const processedOnes = await listEvents(db, p.tableName, {
      type,
      status: 'processed',
      limit: 30,
    });
    expect(processedOnes.events).toHaveLength(24);
    expect(processedOnes.next).toBeUndefined();
    const failedOnes = await listEvents(db, p.tableName, { type, status: 'failed', limit: 5 });
    expect(failedOnes.events).toEqual([]);
  });

  it('shows the event as sent: a claim-checked body read from S3, bytes that are not text as base64', async () => {
    const large = largeEvent(200 * 1024);
    const largeDelivery = signedDelivery(p.webhookSecret, large);
    expect((await post(p.url, largeDelivery)).status).toBe(200);
    const record = await stored(p, large.id);
    expect(record.payload.startsWith('{"owh_body":')).toBe(true);
    const fromS3 = async (ref: PayloadRef) => {
      const object = p.s3.buckets.get(ref.bucket)?.get(ref.key);
      if (!object) throw new Error('no such object');
      return object;
    };
    const view = await eventPayloadView(record.payload, fromS3);
    expect(view.kind).toBe('event');
    expect(shownPayload(view)).toEqual(large);
    // If the object cannot be read, the view says so and shows the reference.
    const missing = await eventPayloadView(record.payload, async () => {
      throw new Error('AccessDenied');
    });
    expect(shownPayload(missing)).toMatchObject({
      unavailable: expect.stringContaining('AccessDenied'),
      ref: { bucket: p.payloadBucket },
    });

    const plain = signedDelivery(p.webhookSecret, 'not json at all');
    expect((await post(p.url, plain)).status).toBe(200);
    const kept = await stored(p, `malformed_${plain.webhookId}`);
    expect(shownPayload(await eventPayloadView(kept.payload))).toBe('not json at all');
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    expect(shownPayload(payloadView(wrapBytes(bytes)))).toEqual({
      base64: bytes.toString('base64'),
      bytes: 4,
      note: 'the body is not UTF-8 text',
    });
    expect(shownPayload(payloadView(''))).toMatchObject({
      unavailable: expect.stringContaining('not stored yet'),
    });
  });
});

// Issue 12 §2: events stored before the head/body split stay readable, listable and deduped;
// a message whose head the ingress never wrote gets one from the consumer.
describe('events of the layout before the split, and messages without a head', () => {
  let p: LocalPipeline;
  let db: DynamoDBDocumentClient;
  const handled: ConsumedEvent[] = [];
  beforeAll(async () => {
    p = await pipeline({
      visibilityTimeoutSeconds: 5,
      userHandlers: {
        batch: async (event) => {
          handled.push(event);
        },
      },
    });
    db = DynamoDBDocumentClient.from(p.dynamo);
  });

  it('reads, lists and dedupes an event stored whole on one item, unsharded', async () => {
    const event = sampleEvent('batch.completed');
    const delivery = signedDelivery(p.webhookSecret, event);
    // What the consumer wrote before: the whole record on `EVENT#<id>`, listed in `EVENTS#batch`.
    await db.send(
      new PutCommand({
        TableName: p.tableName,
        Item: {
          pk: `EVENT#${event.id}`,
          sk: 'EVENT',
          gsi1pk: 'EVENTS#batch',
          gsi1sk: `${event.created_at}#${event.id}`,
          eventId: event.id,
          webhookId: delivery.webhookId,
          type: event.type,
          category: 'batch',
          createdAt: event.created_at,
          receivedAt: Date.now(),
          secretLabel: 'current',
          payload: delivery.body,
          status: 'processed',
          attempts: 1,
          expiresAt: Math.floor(Date.now() / 1000) + 3600,
        },
      }),
    );
    expect(await p.store.getEvent(event.id)).toMatchObject({
      status: 'processed',
      payload: delivery.body,
      webhookId: delivery.webhookId,
    });
    const listed = await listEvents(db, p.tableName, { type: 'batch.completed', limit: 50 });
    expect(listed.events.find((e) => e.eventId === event.id)).toMatchObject({
      status: 'processed',
      attempts: 1,
    });
    // OpenAI redelivers it after the upgrade: a duplicate, not a second run.
    expect(await post(p.url, delivery)).toEqual({
      status: 200,
      body: { received: true, duplicate: true },
    });
    await holdsFor(() => !handled.some((h) => h.eventId === event.id), 500, 'no handler call');
  });

  it('writes the head itself for a message queued without one, and lists the event', async () => {
    const event = sampleEvent('batch.failed');
    const body = JSON.stringify(event);
    await new SqsEventPublisher(p.sqs, queueUrls(p)).publish({
      webhookId: `wh_direct_${randomBytes(4).toString('hex')}`,
      eventId: event.id,
      type: event.type,
      category: 'batch',
      receivedAt: Date.now(),
      secretLabel: 'current',
      token: 'token-of-an-attempt-that-could-not-write-the-head',
      body,
    });
    const record = await stored(p, event.id);
    expect(record.payload).toBe(body);
    expect(record.token).toBe('token-of-an-attempt-that-could-not-write-the-head');
    const listed = await listEvents(db, p.tableName, { type: 'batch.failed', limit: 50 });
    expect(listed.events.map((e) => e.eventId)).toContain(event.id);
    expect(handled.filter((h) => h.eventId === event.id)).toHaveLength(1);
  });
});
