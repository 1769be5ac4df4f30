import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createLogger, type Logger, parseLogLevel } from '#core/observability/logger';
import { count, type MetricsPublisher, noMetrics } from '#core/observability/metrics';

/**
 * Emulates a Lambda SQS event source mapping: long-polls a batch, invokes the handler with an
 * `SQSEvent`, deletes what succeeded, and leaves reported failures to reappear after the
 * visibility timeout. SQS itself moves a message to the DLQ after `maxReceiveCount` receives; the
 * poller reads the queue's redrive policy, so it knows when a failed attempt was the last one and
 * says so: an `event dead-lettered` line and the `EventsDeadLettered` metric. A handler that
 * says so itself (`handlerReportsDeadLetters`, the local pipeline's consumers) is left to it.
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
  /** @default JSON (or pretty) lines on stdout at `LOG_LEVEL` */
  readonly log?: Logger;
  /** Where `EventsDeadLettered` goes. @default discarded */
  readonly metrics?: MetricsPublisher;
  /**
   * The handler logs and counts its own last attempts (a consumer given `MAX_RECEIVE_COUNT`, as
   * deployed): the poller then speaks only of a batch the handler failed as a whole (it threw, so
   * it could report nothing), and an event is never counted twice. @default false
   */
  readonly handlerReportsDeadLetters?: boolean;
}

interface RedrivePolicy {
  readonly maxReceiveCount: number;
  readonly deadLetterTargetArn: string;
}

export class EventSourcePoller {
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private redrive: Promise<RedrivePolicy | undefined> | undefined;
  /** Messages whose last attempt failed here, so SQS moves them to the DLQ. */
  deadLettered = 0;

  constructor(private readonly options: PollerOptions) {
    this.log =
      options.log ??
      createLogger({
        service: 'event-source-mapping',
        level: parseLogLevel(process.env.LOG_LEVEL),
      });
  }

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
        let thrown: string | undefined;
        try {
          const result = await this.options.handler({ Records: records });
          failed = new Set((result?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
        } catch (error) {
          // A thrown handler fails the whole batch, as in Lambda.
          thrown = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          this.options.onError?.(error);
        }
        if (failed.size > 0 && (thrown !== undefined || !this.options.handlerReportsDeadLetters))
          await this.noteLastAttempts(
            records.filter((r) => failed.has(r.messageId)),
            thrown !== undefined
              ? `the handler threw: ${thrown}`
              : 'the handler reported the record failed',
          );
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

  /** The queue's redrive policy, read once (undefined for a queue without a DLQ). */
  private redrivePolicy(): Promise<RedrivePolicy | undefined> {
    this.redrive ??= this.options.client
      .send(
        new GetQueueAttributesCommand({
          QueueUrl: this.options.queueUrl,
          AttributeNames: ['RedrivePolicy'],
        }),
      )
      .then((result) => {
        const raw = result.Attributes?.RedrivePolicy;
        if (!raw) return undefined;
        const policy = JSON.parse(raw) as {
          maxReceiveCount?: unknown;
          deadLetterTargetArn?: unknown;
        };
        return {
          maxReceiveCount: Number(policy.maxReceiveCount),
          deadLetterTargetArn: String(policy.deadLetterTargetArn),
        };
      })
      .catch(() => {
        this.redrive = undefined;
        return undefined;
      });
    return this.redrive;
  }

  /** Failed records on their last receive: SQS moves each to the DLQ on its next receive. */
  private async noteLastAttempts(failed: readonly SQSRecord[], reason: string): Promise<void> {
    const policy = await this.redrivePolicy();
    if (!policy || !Number.isFinite(policy.maxReceiveCount)) return;
    for (const record of failed) {
      const attempt = Number(record.attributes.ApproximateReceiveCount);
      if (attempt < policy.maxReceiveCount) continue;
      const attribute = (name: string) => record.messageAttributes[name]?.stringValue;
      const category = attribute('category');
      this.deadLettered++;
      this.log.error('event dead-lettered', {
        eventId: attribute('event-id'),
        type: attribute('event-type'),
        category,
        messageId: record.messageId,
        attempt,
        maxReceiveCount: policy.maxReceiveCount,
        reason,
        dlqArn: policy.deadLetterTargetArn,
        next: `owh events show ${attribute('event-id') ?? '<event id>'} --local; after the fix, owh redrive ${category ?? '<category>'} --local`,
      });
      (this.options.metrics ?? noMetrics)([
        count('EventsDeadLettered', category ? { name: 'Category', value: category } : undefined),
      ]);
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
