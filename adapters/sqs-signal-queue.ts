import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { QueuedSignal, SignalQueue } from '#core/ports/sideband';

/**
 * The call signal queue on SQS: long polls of `waitSeconds`, deletes as acknowledgements, and a
 * visibility change to hand a signal back early.
 */
export class SqsSignalQueue implements SignalQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    /** Long-poll wait; short enough that a drain is not held up for long. */
    private readonly waitSeconds: number,
  ) {}

  async receive(max: number, abort: AbortSignal): Promise<readonly QueuedSignal[]> {
    const received = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: this.waitSeconds,
      }),
      { abortSignal: abort },
    );
    return (received.Messages ?? []).map((message) => ({
      body: message.Body ?? '',
      receipt: message.ReceiptHandle ?? '',
    }));
  }

  async ack(receipt: string): Promise<void> {
    await this.client.send(
      new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receipt }),
    );
  }

  async retryLater(receipt: string, seconds: number): Promise<void> {
    await this.client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receipt,
        VisibilityTimeout: seconds,
      }),
    );
  }
}
