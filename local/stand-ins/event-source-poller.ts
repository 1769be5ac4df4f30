import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

/**
 * Emulates a Lambda SQS event source mapping: long-polls a batch, invokes the handler with an
 * `SQSEvent`, deletes what succeeded, and leaves reported failures to reappear after the
 * visibility timeout. SQS itself moves a message to the DLQ after `maxReceiveCount` receives.
 */
export interface PollerOptions {
  readonly client: SQSClient;
  readonly queueUrl: string;
  readonly queueArn: string;
  readonly handler: (event: SQSEvent) => Promise<SQSBatchResponse | undefined>;
  readonly batchSize?: number;
  /** Parallel pollers, like the mapping's concurrency. */
  readonly concurrency?: number;
  readonly onError?: (error: unknown) => void;
}

export class EventSourcePoller {
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly abort = new AbortController();

  constructor(private readonly options: PollerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    for (let i = 0; i < (this.options.concurrency ?? 2); i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await Promise.allSettled(this.loops);
    this.loops = [];
  }

  private async loop(): Promise<void> {
    const { client, queueUrl } = this.options;
    while (this.running) {
      try {
        const received = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: Math.min(10, this.options.batchSize ?? 10),
            WaitTimeSeconds: 1,
            MessageAttributeNames: ['All'],
            MessageSystemAttributeNames: ['All'],
          }),
          { abortSignal: this.abort.signal },
        );
        const messages = received.Messages ?? [];
        if (messages.length === 0 || !this.running) continue;
        const records = messages.map((m) => this.toRecord(m));
        let failed = new Set<string>(records.map((r) => r.messageId));
        try {
          const result = await this.options.handler({ Records: records });
          failed = new Set((result?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
        } catch (error) {
          // A thrown handler fails the whole batch, as in Lambda.
          this.options.onError?.(error);
        }
        const done = records.filter((r) => !failed.has(r.messageId));
        if (done.length > 0) {
          await client.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
            }),
          );
        }
      } catch (error) {
        if (!this.running) return;
        this.options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  private toRecord(message: Message): SQSRecord {
    const attributes: Record<string, string | undefined> = message.Attributes ?? {};
    const messageAttributes: SQSRecord['messageAttributes'] = {};
    for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
      messageAttributes[name] = {
        stringValue: value.StringValue,
        dataType: value.DataType ?? 'String',
        stringListValues: [],
        binaryListValues: [],
      };
    }
    return {
      messageId: String(message.MessageId),
      receiptHandle: String(message.ReceiptHandle),
      body: String(message.Body ?? ''),
      attributes: {
        ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
        SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
        SenderId: attributes.SenderId ?? 'local',
        ApproximateFirstReceiveTimestamp:
          attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      },
      messageAttributes,
      md5OfBody: String(message.MD5OfBody ?? ''),
      eventSource: 'aws:sqs',
      eventSourceARN: this.options.queueArn,
      awsRegion: 'us-east-1',
    };
  }
}
