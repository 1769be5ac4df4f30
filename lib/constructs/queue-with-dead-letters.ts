import { Duration, Validations } from 'aws-cdk-lib';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface QueueWithDeadLettersProps {
  readonly visibilityTimeout: Duration;
  readonly maxReceiveCount: number;
  readonly dlqRetention: Duration;
  /** @default Duration.days(4) */
  readonly retention?: Duration;
}

/** SQS publishes its queue metrics once a minute; the worst value in each minute is what matters. */
const EACH_MINUTE_AT_WORST = { period: Duration.minutes(1), statistic: 'Maximum' } as const;

/** An encrypted, TLS-only queue and its encrypted, TLS-only dead-letter queue. */
export class QueueWithDeadLetters extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: QueueWithDeadLettersProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: props.dlqRetention,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself a dead-letter queue; it has an alarm instead of a DLQ of its own.',
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: props.visibilityTimeout,
      retentionPeriod: props.retention ?? Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });
  }

  /** Messages waiting in the queue. */
  metricDepth(): Metric {
    return this.queue.metricApproximateNumberOfMessagesVisible(EACH_MINUTE_AT_WORST);
  }

  /** Age in seconds of the oldest message in the queue. */
  metricOldestMessageAge(): Metric {
    return this.queue.metricApproximateAgeOfOldestMessage(EACH_MINUTE_AT_WORST);
  }

  /** Messages that failed `maxReceiveCount` times and wait in the dead-letter queue. */
  metricDeadLetterDepth(): Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible(EACH_MINUTE_AT_WORST);
  }
}
