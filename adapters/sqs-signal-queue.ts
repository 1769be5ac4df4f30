import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { QueuedSignal, SignalQueue } from '#core/ports/sideband';

/**
 * The call signal queue on SQS: long polls of `waitSeconds`, each message received invisible for
 * `claimSeconds` only (a worker that dies right after a receive, or whose long poll the queue
 * answered after it died, leaves its signals to come back in seconds, not after the queue's
 * visibility timeout), visibility changes to hold or hand back a signal, and deletes as
 * acknowledgements.
 */
export class SqsSignalQueue implements SignalQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    /** Long-poll wait; short enough that a drain is not held up for long. */
    private readonly waitSeconds: number,
    /** How long a received signal stays invisible before its call is claimed. */
    private readonly claimSeconds = 10,
  ) {}

  async receive(max: number, abort: AbortSignal): Promise<readonly QueuedSignal[]> {
    const received = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: this.waitSeconds,
        VisibilityTimeout: this.claimSeconds,
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

  async delay(receipt: string, seconds: number): Promise<void> {
    await this.client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receipt,
        VisibilityTimeout: seconds,
      }),
    );
  }
}
