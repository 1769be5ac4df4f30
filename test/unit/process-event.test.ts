import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { Logger } from '#core/observability/logger';
import type { HydrationResult } from '#core/ports/webhooks';
import { categoryOf } from '#core/webhooks/categories';
import type { WebhookEvent } from '#core/webhooks/envelope';
import {
  type ConsumedEvent,
  type ConsumerDeps,
  createConsumerHandler,
  processMessage,
} from '#core/webhooks/process-event';
import type { ObjectState } from '#core/webhooks/projection';
import { type QueuedWebhook, toMessageAttributes } from '#core/webhooks/queue-message';
import {
  CapturingLogger,
  FakeClock,
  FakeHydrator,
  InMemoryEventStore,
  Journal,
  MetricsRecorder,
  T0,
} from '../support/fakes';

/** The category consumer against in-memory ports: no DynamoDB, no SQS, no network. */

const TTL = 90 * 24 * 3600;

function consumer(options: { hydrator?: boolean; failHandler?: Set<string> } = {}) {
  const journal = new Journal();
  const clock = new FakeClock();
  const store = new InMemoryEventStore(journal);
  const hydrator = new FakeHydrator(journal);
  const log = new CapturingLogger();
  const metrics = new MetricsRecorder();
  const handled: ConsumedEvent[] = [];
  /** What the user handler does: by default it records the event; a test may replace it. */
  let userHandler = async (event: ConsumedEvent) => {
    journal.add('user.handle');
    handled.push(event);
  };
  const deps: ConsumerDeps = {
    store,
    ...(options.hydrator === false ? {} : { hydrator }),
    userHandler: (event) => userHandler(event),
    eventTtlSeconds: TTL,
    clock: clock.read,
    log,
    metrics: metrics.publish,
  };
  return {
    deps,
    handler: createConsumerHandler(deps),
    journal,
    clock,
    store,
    hydrator,
    log,
    metrics,
    handled,
    setUserHandler(handler: (event: ConsumedEvent) => Promise<void>) {
      userHandler = handler;
    },
  };
}
type Consumer = ReturnType<typeof consumer>;

let sequence = 0;
function event(
  type: string,
  options: { objectId?: string; createdAt?: number; data?: Record<string, unknown> } = {},
): WebhookEvent {
  sequence++;
  return {
    object: 'event',
    id: `evt_${String(sequence).padStart(4, '0')}`,
    type,
    created_at: options.createdAt ?? 1_799_999_000,
    data: options.data ?? { id: options.objectId ?? `obj_${sequence}` },
  };
}

/** What the ingress queued for this event, 500 ms before the fake clock's now. */
function queued(
  c: Consumer,
  e: WebhookEvent,
  overrides: Partial<QueuedWebhook> = {},
): QueuedWebhook {
  return {
    webhookId: `wh_${e.id}`,
    eventId: e.id,
    type: e.type,
    category: categoryOf(e.type),
    receivedAt: c.clock.now - 500,
    secretLabel: 'current',
    body: JSON.stringify(e),
    ...overrides,
  };
}

/** What the ingress queued, with the token its attempt put on the event's head. */
async function claimed(c: Consumer, message: QueuedWebhook) {
  c.store.heads.set(message.eventId, 't');
  return { ...message, token: 't' };
}

/** The SQS record Lambda hands the consumer. */
function record(message: QueuedWebhook, messageId: string, receiveCount = 1): SQSRecord {
  const { body, ...meta } = message;
  const attributes = Object.fromEntries(
    Object.entries(toMessageAttributes(meta)).map(([name, value]) => [
      name,
      { stringValue: value.StringValue, dataType: value.DataType },
    ]),
  );
  return {
    messageId,
    body,
    messageAttributes: attributes,
    attributes: { ApproximateReceiveCount: String(receiveCount) },
  } as unknown as SQSRecord;
}

const batch = (...records: SQSRecord[]): SQSEvent => ({ Records: records });

describe('processMessage: a new event', () => {
  it('is checked, hydrated, projected, handled, then stored once, processed', async () => {
    const c = consumer();
    // The user handler takes 40 ms.
    c.setUserHandler(async (e) => {
      c.journal.add('user.handle');
      c.handled.push(e);
      c.clock.advance(40);
    });
    const e = event('batch.completed', { objectId: 'batch_1' });
    const message = await claimed(c, queued(c, e));
    c.journal.entries.length = 0;

    const response = await c.handler(batch(record(message, 'm-1')));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(c.journal.entries).toEqual([
      'store.recordReceived',
      'hydrator.hydrate',
      'store.getObject',
      'store.putObject',
      'user.handle',
      'store.markProcessed',
    ]);
    expect(c.store.events.get(e.id)).toEqual({
      eventId: e.id,
      webhookId: message.webhookId,
      type: 'batch.completed',
      category: 'batch',
      createdAt: e.created_at,
      receivedAt: T0 - 500,
      secretLabel: 'current',
      token: 't',
      payload: message.body,
      objectId: 'batch_1',
      status: 'processed',
      attempts: 1,
      processedAt: T0 + 40,
      expiresAt: Math.floor(T0 / 1000) + TTL,
    });
    expect(c.hydrator.requests).toEqual([{ objectType: 'batch', objectId: 'batch_1' }]);
    const object = c.store.objects.get('batch_1');
    expect(object).toMatchObject({
      objectId: 'batch_1',
      objectType: 'batch',
      status: 'completed',
      statusEventId: e.id,
      statusCreatedAt: e.created_at,
      history: [
        {
          status: 'completed',
          type: 'batch.completed',
          eventId: e.id,
          createdAt: e.created_at,
          receivedAt: T0 - 500,
        },
      ],
      details: { id: 'batch_1', status: 'completed' },
      detailsFetchedAt: T0,
    });
    expect(object?.hydrationError).toBeUndefined();
    expect(c.handled).toEqual([
      {
        eventId: e.id,
        webhookId: message.webhookId,
        type: 'batch.completed',
        category: 'batch',
        createdAt: e.created_at,
        receivedAt: T0 - 500,
        data: e.data,
        object,
        attempt: 1,
      },
    ]);
    expect(c.metrics.names()).toEqual([
      'EventsProcessed{batch}',
      'ProcessingTime{batch}',
      'EventLatency{batch}',
    ]);
    expect(c.metrics.value('ProcessingTime')).toBe(40);
    expect(c.metrics.value('EventLatency')).toBe(540);
    expect(c.log.find('event processed')?.fields).toMatchObject({
      eventId: e.id,
      webhookId: message.webhookId,
      attempt: 1,
      objectId: 'batch_1',
      status: 'completed',
    });
  });

  it('hands an event that names no object to the handler without a projection', async () => {
    const c = consumer();
    const e = event('safety_identifier.blocked', { data: { safety_identifier: 'user_1' } });
    expect(await processMessage(c.deps, queued(c, e), 1)).toBe('processed');
    expect(c.store.objects.size).toBe(0);
    expect(c.hydrator.requests).toEqual([]);
    expect(c.handled).toHaveLength(1);
    expect(c.handled[0]).not.toHaveProperty('object');
    expect(c.handled[0]?.category).toBe('other');
  });

  it('runs the category handler before the user handler, and fails the event if it fails', async () => {
    const c = consumer();
    const order: string[] = [];
    let fail = false;
    const deps: ConsumerDeps = {
      ...c.deps,
      categoryHandler: async (consumed, log: Logger) => {
        order.push(`category:${consumed.eventId}`);
        log.info('category work');
        if (fail) throw new Error('call handling failed');
      },
      userHandler: async (consumed) => {
        order.push(`user:${consumed.eventId}`);
      },
    };
    const first = event('eval.run.succeeded');
    await processMessage(deps, queued(c, first), 1);
    expect(order).toEqual([`category:${first.id}`, `user:${first.id}`]);
    expect(c.log.find('category work')?.fields).toMatchObject({ eventId: first.id });

    fail = true;
    const second = event('eval.run.failed');
    await expect(processMessage(deps, queued(c, second), 1)).rejects.toThrow(
      'call handling failed',
    );
    expect(order).toEqual([`category:${first.id}`, `user:${first.id}`, `category:${second.id}`]);
    expect(c.store.events.get(second.id)?.status).toBe('failed');
  });

  it('takes the attempt number from the receive count', async () => {
    const c = consumer();
    const e = event('response.completed');
    await c.handler(batch(record(queued(c, e), 'm-1', 3)));
    expect(c.handled[0]?.attempt).toBe(3);
    expect(c.store.events.get(e.id)?.attempts).toBe(3);
  });
});

describe('processMessage: redelivery', () => {
  it('skips an event already processed, with no second effect', async () => {
    const c = consumer();
    const e = event('batch.completed', { objectId: 'batch_1' });
    const message = await claimed(c, queued(c, e));
    expect(await processMessage(c.deps, message, 1)).toBe('processed');
    const object = c.store.objects.get('batch_1');
    c.metrics.clear();
    c.journal.entries.length = 0;

    expect(await processMessage(c.deps, message, 2)).toBe('skipped');

    expect(c.handled).toHaveLength(1);
    expect(c.hydrator.requests).toHaveLength(1);
    expect(c.store.objects.get('batch_1')).toBe(object);
    expect(c.store.events.get(e.id)).toMatchObject({ status: 'processed', attempts: 1 });
    expect(c.journal.entries).toEqual(['store.recordReceived']);
    expect(c.metrics.names()).toEqual(['EventsSkipped{batch}']);
    expect(c.log.messages()).toContain('event already processed; skipped');
  });

  it('processes again an event whose earlier attempt did not finish', async () => {
    const c = consumer();
    const e = event('batch.completed', { objectId: 'batch_1' });
    const message = queued(c, e);
    c.setUserHandler(async () => {
      throw new Error('downstream refused it');
    });
    await expect(processMessage(c.deps, message, 1)).rejects.toThrow('downstream refused it');
    expect(c.store.events.get(e.id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastError: 'Error: downstream refused it',
    });
    c.setUserHandler(async (consumed) => {
      c.handled.push(consumed);
    });

    expect(await processMessage(c.deps, message, 2)).toBe('processed');

    expect(c.handled.map((h) => h.attempt)).toEqual([2]);
    const stored = c.store.events.get(e.id);
    expect(stored).toMatchObject({ status: 'processed', attempts: 2 });
    expect(stored?.lastError).toBeUndefined();
    // The transition was projected on the first attempt: not applied twice.
    expect(c.store.objects.get('batch_1')?.history).toHaveLength(1);
  });

  it('runs a forced replay of a processed event again', async () => {
    const c = consumer();
    const e = event('batch.completed', { objectId: 'batch_1' });
    const message = queued(c, e);
    await processMessage(c.deps, message, 1);

    expect(await processMessage(c.deps, { ...message, replay: 'force' }, 1)).toBe('processed');

    expect(c.handled).toHaveLength(2);
    expect(c.log.find('forced replay')).toMatchObject({
      level: 'warn',
      fields: { previously: 'processed' },
    });
    expect(c.store.objects.get('batch_1')?.history).toHaveLength(1);
  });
});

describe('processMessage: failures', () => {
  it('records a user handler failure, reports only that message, and keeps the rest of the batch', async () => {
    const c = consumer();
    const good = event('batch.completed');
    const bad = event('batch.failed');
    c.setUserHandler(async (consumed) => {
      c.clock.advance(5);
      if (consumed.eventId === bad.id) throw new Error('handler down');
      c.handled.push(consumed);
    });

    const response = await c.handler(
      batch(record(queued(c, good), 'm-good'), record(queued(c, bad), 'm-bad', 2)),
    );

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-bad' }] });
    expect(c.handled.map((h) => h.eventId)).toEqual([good.id]);
    expect(c.store.events.get(good.id)?.status).toBe('processed');
    expect(c.store.events.get(bad.id)).toMatchObject({
      status: 'failed',
      attempts: 2,
      lastError: 'Error: handler down',
    });
    expect(c.metrics.names()).toEqual(
      expect.arrayContaining(['ProcessingFailures{batch}', 'EventsProcessed{batch}']),
    );
    expect(c.metrics.names().filter((n) => n === 'ProcessingFailures{batch}')).toHaveLength(1);
    expect(c.log.find('event processing failed')?.fields).toMatchObject({
      eventId: bad.id,
      error: 'Error: handler down',
    });
  });

  it('still throws the original error when the failure cannot be recorded', async () => {
    const c = consumer();
    c.setUserHandler(async () => {
      throw new Error('handler down');
    });
    c.store.faults.fail('markFailed', new Error('DynamoDB unavailable'));
    await expect(processMessage(c.deps, queued(c, event('batch.completed')), 1)).rejects.toThrow(
      'handler down',
    );
    expect(c.log.find('could not record failure')?.fields.error).toContain('DynamoDB unavailable');
  });

  // Issue 12: a queued body is verified, so an odd one is kept (malformed), not failed forever.
  it('keeps a message whose body is not an event envelope, as malformed, unprojected', async () => {
    const c = consumer();
    const base = queued(c, event('batch.completed'));
    const message = { ...base, eventId: `malformed_${base.webhookId}`, body: '{"not":"an event"}' };
    const response = await c.handler(batch(record(message, 'm-1')));
    expect(response).toEqual({ batchItemFailures: [] });
    expect(c.store.events.get(message.eventId)).toMatchObject({
      status: 'processed',
      malformed: 'invalid_envelope',
      payload: '{"not":"an event"}',
    });
    expect(c.store.objects.size).toBe(0);
    expect(c.journal.entries).toEqual([
      'store.recordReceived',
      'user.handle',
      'store.markProcessed',
    ]);
  });

  it('fails a message without its delivery attributes', async () => {
    const c = consumer();
    const bare = { messageId: 'm-1', body: '{}', messageAttributes: {}, attributes: {} };
    expect(await c.handler(batch(bare as unknown as SQSRecord))).toEqual({
      batchItemFailures: [{ itemIdentifier: 'm-1' }],
    });
  });

  it('fails the message when the event cannot be checked, before running anything', async () => {
    const c = consumer();
    const message = await claimed(c, queued(c, event('batch.completed')));
    c.store.faults.fail('recordReceived', new Error('throttled'));
    await expect(processMessage(c.deps, message, 1)).rejects.toThrow('throttled');
    expect(c.store.events.size).toBe(0);
    expect(c.handled).toEqual([]);
  });
});

describe('processMessage: hydration', () => {
  const hydrated = async (result: HydrationResult | Error, type = 'batch.completed') => {
    const c = consumer();
    const e = event(type, { objectId: 'obj_h' });
    c.hydrator.results.set('obj_h', result);
    const outcome = await processMessage(c.deps, queued(c, e), 1).catch((error: Error) => error);
    return { c, e, outcome, object: c.store.objects.get('obj_h') };
  };

  it('records the fetched details on the object', async () => {
    const { c, outcome, object } = await hydrated(
      { kind: 'fetched', details: { status: 'completed', output_file_id: 'file_1' } },
      'fine_tuning.job.succeeded',
    );
    expect(outcome).toBe('processed');
    expect(c.hydrator.requests).toEqual([{ objectType: 'fine_tuning.job', objectId: 'obj_h' }]);
    expect(object).toMatchObject({
      status: 'succeeded',
      details: { status: 'completed', output_file_id: 'file_1' },
      detailsFetchedAt: T0,
    });
    expect(c.handled[0]?.object?.details).toEqual({
      status: 'completed',
      output_file_id: 'file_1',
    });
  });

  it('records a rejected fetch (a 404) as a hydration error and still processes the event', async () => {
    const { c, e, outcome, object } = await hydrated({ kind: 'rejected', error: 'HTTP 404' });
    expect(outcome).toBe('processed');
    expect(object).toMatchObject({ status: 'completed', hydrationError: 'HTTP 404' });
    expect(object?.details).toBeUndefined();
    expect(c.store.events.get(e.id)?.status).toBe('processed');
    expect(c.metrics.names()).toEqual([
      'HydrationErrors{batch}',
      'EventsProcessed{batch}',
      'ProcessingTime{batch}',
      'EventLatency{batch}',
    ]);
    expect(c.log.find('hydration rejected')).toMatchObject({
      level: 'warn',
      fields: { error: 'HTTP 404' },
    });
  });

  it('projects without details when the object cannot be fetched by id', async () => {
    const { c, outcome, object } = await hydrated({ kind: 'unsupported' }, 'response.completed');
    expect(outcome).toBe('processed');
    expect(object?.status).toBe('completed');
    expect(object?.details).toBeUndefined();
    expect(object?.hydrationError).toBeUndefined();
    expect(c.metrics.names()).not.toContain('HydrationErrors{response}');
  });

  it('fails the attempt when the fetch throws (5xx after retries), projecting nothing', async () => {
    const { c, e, outcome, object } = await hydrated(new Error('OpenAI 503'));
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toBe('OpenAI 503');
    expect(object).toBeUndefined();
    expect(c.handled).toEqual([]);
    expect(c.store.events.get(e.id)).toMatchObject({
      status: 'failed',
      lastError: 'Error: OpenAI 503',
    });
    expect(c.metrics.names()).toEqual([
      'HydrationErrors{batch}',
      'ProcessingFailures{batch}',
      'ProcessingTime{batch}',
    ]);
  });

  it('does not fetch objects the API cannot return by id (eval runs), nor without a hydrator', async () => {
    const c = consumer();
    await processMessage(c.deps, queued(c, event('eval.run.succeeded')), 1);
    expect(c.hydrator.requests).toEqual([]);
    const off = consumer({ hydrator: false });
    await processMessage(off.deps, queued(off, event('batch.completed', { objectId: 'b' })), 1);
    expect(off.store.objects.get('b')?.details).toBeUndefined();
  });
});

describe('processMessage: delivery order and concurrent consumers', () => {
  it('keeps the newest status when an older event arrives after a newer one', async () => {
    const c = consumer();
    const newer = event('batch.completed', { objectId: 'batch_o', createdAt: 2_000_000_000 });
    const older = event('batch.failed', { objectId: 'batch_o', createdAt: 1_900_000_000 });
    await processMessage(c.deps, queued(c, newer), 1);
    await processMessage(c.deps, queued(c, older), 1);
    const object = c.store.objects.get('batch_o');
    expect(object?.status).toBe('completed');
    expect(object?.statusEventId).toBe(newer.id);
    expect(object?.history.map((h) => h.status)).toEqual(['failed', 'completed']);
    // The handler of the late event sees the object as it really is.
    expect(c.handled.map((h) => h.object?.status)).toEqual(['completed', 'completed']);
  });

  it('reads again and reapplies when another consumer wrote the object first', async () => {
    const c = consumer();
    const older = event('batch.in_progress', { objectId: 'batch_r', createdAt: 1_900_000_000 });
    const newer = event('batch.completed', { objectId: 'batch_r', createdAt: 2_000_000_000 });
    // While this consumer projects `older`, another one projects `newer` and writes first.
    let raced = false;
    c.store.beforePut = async () => {
      if (raced) return;
      raced = true;
      await processMessage(c.deps, queued(c, newer), 1);
    };

    expect(await processMessage(c.deps, queued(c, older), 1)).toBe('processed');

    expect(c.store.puts.map((p) => p.won)).toEqual([true, false, true]);
    const object = c.store.objects.get('batch_r') as ObjectState;
    expect(object.status).toBe('completed');
    expect(object.history.map((h) => h.eventId)).toEqual([older.id, newer.id]);
    expect(c.store.events.get(older.id)?.status).toBe('processed');
    expect(c.store.events.get(newer.id)?.status).toBe('processed');
  });

  it('gives up after repeated lost races and lets the queue retry', async () => {
    const c = consumer();
    const e = event('batch.completed', { objectId: 'batch_busy' });
    let bumps = 0;
    // Someone else writes the object between every read and write.
    c.store.beforePut = (state) => {
      bumps++;
      c.store.forcePut({ ...state, version: 1000 + bumps });
    };
    const response = await c.handler(batch(record(queued(c, e), 'm-1')));
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-1' }] });
    expect(c.store.puts.every((p) => !p.won)).toBe(true);
    expect(c.store.puts).toHaveLength(8);
    expect(c.store.events.get(e.id)).toMatchObject({
      status: 'failed',
      lastError: expect.stringContaining('kept changing under us'),
    });
    expect(c.handled).toEqual([]);
  });
});

// Issue 12 §2: the event's head names the message that counts; the body is written once.
describe('processMessage: the head and the body (issue 12)', () => {
  it('drops a second message of the event that the head does not name', async () => {
    const c = consumer();
    const e = event('batch.completed', { objectId: 'batch_2' });
    // Two ingress attempts raced: both queued, the head kept the first one's token.
    const winner = await claimed(c, queued(c, e));
    const loser = { ...winner, token: 'other-attempt' };
    expect(await processMessage(c.deps, loser, 1)).toBe('skipped');
    expect(c.handled).toEqual([]);
    expect(c.log.messages()).toContain('second message of a queued event; dropped');
    expect(await processMessage(c.deps, winner, 1)).toBe('processed');
    expect(c.handled).toHaveLength(1);
  });

  it('writes the head from the first message when the ingress has not yet', async () => {
    const c = consumer();
    const e = event('batch.completed');
    const first = { ...queued(c, e), token: 'first' };
    expect(await processMessage(c.deps, first, 1)).toBe('processed');
    expect(c.store.heads.get(e.id)).toBe('first');
    expect(await processMessage(c.deps, { ...first, token: 'second' }, 1)).toBe('skipped');
    expect(c.handled).toHaveLength(1);
  });

  it('processes a replay (no token) and a message from before tokens', async () => {
    const c = consumer();
    const e = event('batch.completed');
    const message = await claimed(c, queued(c, e));
    const { token: _token, ...untokened } = message;
    expect(await processMessage(c.deps, { ...untokened, replay: 'force' }, 1)).toBe('processed');
    expect(c.handled).toHaveLength(1);
  });

  it('writes the body only with the outcome on a first attempt, and first as well on a retry', async () => {
    const c = consumer();
    const statusDuring: (string | undefined)[] = [];
    c.setUserHandler(async (consumed) => {
      statusDuring.push(c.store.events.get(consumed.eventId)?.status);
      c.handled.push(consumed);
    });
    const first = event('batch.completed');
    await processMessage(c.deps, queued(c, first), 1);
    const retried = event('batch.completed');
    await processMessage(c.deps, queued(c, retried), 2);
    // First attempt: nothing stored while it runs. A retry stores the body (received) first, so an
    // event whose attempts keep dying still has its payload when it reaches the DLQ.
    expect(statusDuring).toEqual([undefined, 'received']);
    expect(c.store.events.get(first.id)).toMatchObject({ status: 'processed', attempts: 1 });
    expect(c.store.events.get(retried.id)).toMatchObject({ status: 'processed', attempts: 2 });
  });
});
