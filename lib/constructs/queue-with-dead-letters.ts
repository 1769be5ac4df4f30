import { Duration, Validations } from 'aws-cdk-lib';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULTS } from '../config';
import { PropsCheck } from './validation';

export interface QueueWithDeadLettersProps {
  /**
   * How long a received message stays invisible to other receivers (at most 12 hours). For a
   * Lambda source, at least 6× the function timeout. @default Duration.seconds(30)
   */
  readonly visibilityTimeout?: Duration;
  /** Receives before a message moves to the dead-letter queue (1 to 1000). @default 5 */
  readonly maxReceiveCount?: number;
  /** How long the dead-letter queue keeps a message (1 minute to 14 days). @default Duration.days(14) */
  readonly dlqRetention?: Duration;
  /** How long the queue keeps a message (1 minute to 14 days). @default Duration.days(4) */
  readonly retention?: Duration;
}

/** SQS publishes its queue metrics once a minute; the worst value in each minute is what matters. */
const EACH_MINUTE_AT_WORST = { period: Duration.minutes(1), statistic: 'Maximum' } as const;

/** What SQS accepts for a message retention period. */
const SQS_RETENTION = { min: Duration.minutes(1), max: Duration.days(14) } as const;

/** An encrypted, TLS-only queue and its encrypted, TLS-only dead-letter queue. */
export class QueueWithDeadLetters extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: QueueWithDeadLettersProps = {}) {
    super(scope, id);
    new PropsCheck('QueueWithDeadLetters', id)
      .duration('visibilityTimeout', props.visibilityTimeout, { max: Duration.hours(12) })
      .integer('maxReceiveCount', props.maxReceiveCount, 1, 1000)
      .duration('dlqRetention', props.dlqRetention, SQS_RETENTION)
      .duration('retention', props.retention, SQS_RETENTION)
      .assert();
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: props.dlqRetention ?? DEFAULTS.dlqRetention,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself a dead-letter queue; it has an alarm instead of a DLQ of its own.',
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: props.visibilityTimeout ?? Duration.seconds(30),
      retentionPeriod: props.retention ?? Duration.days(4),
      deadLetterQueue: {
        queue: this.deadLetterQueue,
        maxReceiveCount: props.maxReceiveCount ?? DEFAULTS.maxReceiveCount,
      },
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
