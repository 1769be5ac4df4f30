import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricPoint } from '#core/observability/metrics';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { CapturingLogger } from '../support/fakes';
import { doomedMessagePoller, emulatorSqs } from '../support/local-mode';
import { eventually, holdsFor, post, signedDelivery, startPipeline } from '../support/webhooks';

/**
 * Issue 13 §3: an event that lands in a DLQ is logged and counted, in local mode on the same code
 * path as deployed (the consumer reads `MAX_RECEIVE_COUNT`, which the fan-out sets beside the
 * queue's redrive policy), into the pipeline's metrics.
 */
describe('dead letters in local mode', () => {
  let p: LocalPipeline;
  const log = new CapturingLogger();
  const metrics: MetricPoint[] = [];
  const deadLettered = () => metrics.filter((m) => m.name === 'EventsDeadLettered');
  beforeAll(async () => {
    p = await startPipeline({
      maxReceiveCount: 2,
      metrics: (points) => metrics.push(...points),
      userHandlers: {
        batch: async () => {
          throw new Error('handler down');
        },
      },
      // Only the logger is swapped, to read the lines: the rest is what consumerDepsFromEnv built.
      decorateConsumer: (_category, deps) => ({ ...deps, log }),
    });
  });
  afterAll(() => p.stop());

  it('logs and counts, once, an event whose failing handler sends it to the DLQ', async () => {
    const event = sampleEvent('batch.completed');
    expect(await post(p.url, signedDelivery(p.webhookSecret, event))).toMatchObject({
      status: 200,
    });

    const moved = await eventually(
      async () =>
        (
          await p.sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: p.queues.batch.dlqUrl,
              WaitTimeSeconds: 1,
              MessageAttributeNames: ['All'],
            }),
          )
        ).Messages?.[0],
      20_000,
      'the event in the batch DLQ',
    );
    expect(moved.MessageAttributes?.['event-id']?.StringValue).toBe(event.id);

    const line = log.lines.find((l) => l.message === 'event dead-lettered');
    expect(line?.level).toBe('error');
    expect(line?.fields).toMatchObject({
      eventId: event.id,
      type: 'batch.completed',
      category: 'batch',
      attempt: 2,
      maxReceiveCount: 2,
      error: 'Error: handler down',
    });
    // The first attempt failed too, but was not the last: one line, one count.
    expect(log.lines.filter((l) => l.message === 'event dead-lettered')).toHaveLength(1);
    expect(log.lines.filter((l) => l.message === 'event processing failed')).toHaveLength(2);
    expect(deadLettered()).toEqual([
      { name: 'EventsDeadLettered', value: 1, dimension: { name: 'Category', value: 'batch' } },
    ]);
    // The message is already in the DLQ, so no later attempt can count it again; the window
    // only covers a poller that would report the same failure a moment after the consumer did.
    await holdsFor(() => deadLettered().length === 1, 500, 'a single EventsDeadLettered');
  });
});

/**
 * The event source mapping stand-in, beside a consumer that reports its own dead letters: it
 * leaves reported failures to the consumer, and speaks only of a batch the handler failed as a
 * whole (it threw, so it could report nothing), with the reason.
 */
describe('the poller beside a consumer that reports its own dead letters', () => {
  const sqs = emulatorSqs();
  afterAll(() => sqs.destroy());

  const run = async (handler: 'reports' | 'throws') => {
    const { queue, poller, log, metrics } = await doomedMessagePoller(
      sqs,
      async (event) => {
        if (handler === 'throws') throw new Error('out of memory');
        return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
      },
      { handlerReportsDeadLetters: true, onError: () => undefined },
    );
    poller.start();
    try {
      await eventually(
        async () =>
          (
            await sqs.send(
              new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl, WaitTimeSeconds: 1 }),
            )
          ).Messages?.[0],
        15_000,
        'the message in the DLQ',
      );
    } finally {
      await poller.stop();
    }
    return { log, metrics, poller };
  };

  it('says nothing of a failure the handler reported (the handler counted it)', async () => {
    const { log, metrics, poller } = await run('reports');
    expect(log.find('event dead-lettered')).toBeUndefined();
    expect(metrics).toEqual([]);
    expect(poller.deadLettered).toBe(0);
  });

  it('logs and counts a batch the handler failed by throwing, with the reason', async () => {
    const { log, metrics, poller } = await run('throws');
    expect(log.find('event dead-lettered')?.fields).toMatchObject({
      eventId: 'evt_doomed',
      type: 'batch.failed',
      category: 'batch',
      attempt: 2,
      reason: 'the handler threw: Error: out of memory',
    });
    expect(metrics).toEqual([
      { name: 'EventsDeadLettered', value: 1, dimension: { name: 'Category', value: 'batch' } },
    ]);
    expect(poller.deadLettered).toBe(1);
  });
});
