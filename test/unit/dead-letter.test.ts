import { describe, expect, it } from 'vitest';
import { consumerDepsFromEnv, maxReceiveCountFromEnv } from '#adapters/runtime/consumer-from-env';
import { ENV } from '#core/env';
import { METRICS } from '#core/observability/metrics';
import { type ConsumerDeps, processMessage } from '#core/webhooks/process-event';
import type { QueuedWebhook } from '#core/webhooks/queue-message';
import {
  CapturingLogger,
  FakeClock,
  InMemoryEventStore,
  Journal,
  MetricsRecorder,
} from '../support/fakes';

/**
 * An event whose last attempt fails goes to the DLQ: the consumer says so (a log line and the
 * `EventsDeadLettered` metric) when it knows the queue's `maxReceiveCount`.
 */

function consumer(maxReceiveCount?: number) {
  const journal = new Journal();
  const clock = new FakeClock();
  const log = new CapturingLogger();
  const metrics = new MetricsRecorder();
  const deps: ConsumerDeps = {
    store: new InMemoryEventStore(journal),
    userHandler: async () => {
      throw new Error('handler broke');
    },
    eventTtlSeconds: 3600,
    clock: clock.read,
    log,
    metrics: metrics.publish,
    ...(maxReceiveCount !== undefined ? { maxReceiveCount } : {}),
  };
  return { deps, log, metrics, clock };
}

function message(clock: FakeClock): QueuedWebhook {
  const body = {
    object: 'event',
    id: 'evt_dead',
    type: 'batch.completed',
    created_at: 1_799_999_000,
    data: { id: 'batch_dead' },
  };
  return {
    webhookId: 'wh_dead',
    eventId: body.id,
    type: body.type,
    category: 'batch',
    receivedAt: clock.now - 100,
    secretLabel: 'current',
    body: JSON.stringify(body),
  };
}

describe('dead-lettered events', () => {
  it('logs and counts a failure on the last attempt', async () => {
    const c = consumer(3);
    await expect(processMessage(c.deps, message(c.clock), 3)).rejects.toThrow('handler broke');
    const line = c.log.find('event dead-lettered');
    expect(line?.level).toBe('error');
    expect(line?.fields).toMatchObject({
      eventId: 'evt_dead',
      attempt: 3,
      maxReceiveCount: 3,
      error: 'Error: handler broke',
    });
    expect(c.metrics.names()).toContain('EventsDeadLettered{batch}');
  });

  it('says nothing of the DLQ on an earlier attempt, or when maxReceiveCount is unknown', async () => {
    const early = consumer(3);
    await expect(processMessage(early.deps, message(early.clock), 2)).rejects.toThrow();
    expect(early.log.find('event dead-lettered')).toBeUndefined();
    expect(early.metrics.names()).not.toContain('EventsDeadLettered{batch}');

    const unknown = consumer();
    await expect(processMessage(unknown.deps, message(unknown.clock), 9)).rejects.toThrow();
    expect(unknown.log.find('event dead-lettered')).toBeUndefined();
  });

  it('logs and counts a last attempt that fails before the handler (storing the body)', async () => {
    const c = consumer(3);
    const store = c.deps.store;
    const deps: ConsumerDeps = {
      ...c.deps,
      store: Object.assign(Object.create(store) as typeof store, {
        recordReceived: async () => {
          throw new Error('table unavailable');
        },
      }),
    };
    await expect(processMessage(deps, message(c.clock), 3)).rejects.toThrow('table unavailable');
    expect(c.log.find('event dead-lettered')?.fields).toMatchObject({
      eventId: 'evt_dead',
      error: 'Error: table unavailable',
    });
    expect(c.metrics.names()).toContain('EventsDeadLettered{batch}');
    expect(c.metrics.names()).toContain('ProcessingFailures{batch}');
  });

  it('is in the metric catalogue', () => {
    expect(METRICS).toHaveProperty('EventsDeadLettered');
  });
});

describe("the consumer's maxReceiveCount from its environment", () => {
  it('reads MAX_RECEIVE_COUNT, which the fan-out sets beside the redrive policy', () => {
    expect(maxReceiveCountFromEnv({ [ENV.maxReceiveCount]: '5' })).toEqual({ maxReceiveCount: 5 });
    expect(maxReceiveCountFromEnv({})).toEqual({});
    expect(maxReceiveCountFromEnv({ [ENV.maxReceiveCount]: '' })).toEqual({});
  });

  it.each(['0', '1001', '2.5', 'five'])('refuses %s at cold start', (raw) => {
    expect(() => maxReceiveCountFromEnv({ [ENV.maxReceiveCount]: raw })).toThrow(
      /MAX_RECEIVE_COUNT must be an integer from 1 to 1000/,
    );
  });

  it('hands it to the consumer', () => {
    const env = { [ENV.category]: 'batch', [ENV.tableName]: 'events', [ENV.metrics]: 'off' };
    expect(consumerDepsFromEnv({ ...env, [ENV.maxReceiveCount]: '4' }).maxReceiveCount).toBe(4);
    expect(consumerDepsFromEnv(env)).not.toHaveProperty('maxReceiveCount');
  });
});
