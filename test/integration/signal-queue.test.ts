import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsSignalQueue } from '#adapters/sqs-signal-queue';
import { localCallsConfig } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { eventually, startPipeline } from '../support/webhooks';

/**
 * The signal queue against the SQS emulator: a signal received by a worker that never gets to it
 * (it died right after the receive, or the queue answered a long poll of a worker already dead)
 * comes back within the claim window, not after the queue's 30 s visibility timeout.
 */
describe('the signal queue', () => {
  let p: LocalPipeline;
  beforeAll(async () => {
    p = await startPipeline({ calls: localCallsConfig() });
  });
  afterAll(() => p.stop());

  it('lets a signal nobody claimed come back within the claim window, and holds a claimed one', async () => {
    const url = p.signalQueue?.queueUrl ?? '';
    const queue = new SqsSignalQueue(p.sqs, url, 1, 1);
    await p.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: '{"callId":"lost"}' }));
    const never = new AbortController();
    const [taken] = await queue.receive(1, never.signal);
    expect(taken?.body).toBe('{"callId":"lost"}');
    // Its receiver dies: the queue's own visibility timeout is 30 s, the claim window 1 s.
    const startedAt = Date.now();
    const again = await eventually(async () => (await queue.receive(1, never.signal))[0], 10_000);
    expect(again.body).toBe('{"callId":"lost"}');
    expect(Date.now() - startedAt).toBeLessThan(5000);
    // Claimed: held while it attaches, then acknowledged.
    await queue.delay(again.receipt, 30);
    expect(await queue.receive(1, never.signal)).toEqual([]);
    await queue.ack(again.receipt);
  });
});
