import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import type { ResolvedCategory } from '../config';
import type { EventStore } from './event-store';
import { grantInvokeUnqualified } from './grants';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { projectMetric } from './project-metrics';
import { QueueWithDeadLetters } from './queue-with-dead-letters';

/** The consumers' own metrics, per category (README "Metrics"). */
export type ConsumerMetricName = Extract<
  MetricName,
  | 'EventsProcessed'
  | 'EventsSkipped'
  | 'ProcessingTime'
  | 'ProcessingFailures'
  | 'HydrationErrors'
  | 'EventLatency'
>;

export interface CategoryFanoutProps {
  readonly categories: Readonly<Record<Category, ResolvedCategory>>;
  readonly store: EventStore;
  readonly eventRetention: Duration;
  readonly dlqRetention: Duration;
  readonly logRetention: RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly logLevel: string;
  readonly tracing: boolean;
  /** Environment every consumer needs for OpenAI calls (base URL, API key secret id). */
  readonly openAiEnvironment: Record<string, string>;
  /** Grants the consumer read access to the OpenAI API key, when one is configured. */
  readonly grantOpenAiKey?: (grantee: IGrantable) => void;
}

/** One category's queue, dead-letter queue and consumer. */
export class CategoryPipeline extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly queues: QueueWithDeadLetters;
  readonly consumer: LambdaFunction;

  constructor(
    scope: Construct,
    id: string,
    category: Category,
    options: ResolvedCategory,
    props: CategoryFanoutProps,
  ) {
    super(scope, id);
    const queues = new QueueWithDeadLetters(this, 'Queues', {
      // AWS's guidance for Lambda sources: at least 6x the function timeout, so retries of a
      // throttled batch do not become visible while it still runs.
      visibilityTimeout: Duration.seconds(options.timeout.toSeconds() * 6),
      maxReceiveCount: options.maxReceiveCount,
      dlqRetention: props.dlqRetention,
    });
    this.queues = queues;
    this.queue = queues.queue;
    this.deadLetterQueue = queues.deadLetterQueue;

    const user = options.userHandler?.source;
    const consumer = new NodeFunction(this, 'Consumer', {
      entry:
        user?.kind === 'entry'
          ? generateUserEntry(category, user.entry, user.exportName)
          : path.join(PROJECT_ROOT, 'lambdas/consumer/handler.ts'),
      description: `OpenAI webhooks: stores and projects ${category} events`,
      memorySize: options.memorySize,
      timeout: options.timeout,
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      tracing: props.tracing,
      environment: {
        [ENV.category]: category,
        [ENV.hydrate]: String(options.hydrate),
        [ENV.eventTtlSeconds]: String(props.eventRetention.toSeconds()),
        [ENV.logLevel]: props.logLevel,
        ...props.openAiEnvironment,
      },
    });
    this.consumer = consumer.fn;
    props.store.bindReadWrite(this.consumer);
    props.store.acknowledgeIndexGrant(consumer);
    if (options.hydrate) props.grantOpenAiKey?.(this.consumer);
    if (user?.kind === 'function') {
      grantInvokeUnqualified(user.fn, this.consumer);
      this.consumer.addEnvironment(ENV.userHandlerFunction, user.fn.functionArn);
    }
    this.consumer.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: options.batchSize,
        maxBatchingWindow:
          options.maxBatchingWindow.toSeconds() > 0 ? options.maxBatchingWindow : undefined,
        reportBatchItemFailures: true,
        ...(options.maxConcurrency !== undefined ? { maxConcurrency: options.maxConcurrency } : {}),
      }),
    );
  }
}

/**
 * Per category: an encrypted, TLS-only queue with its own DLQ, and a consumer Lambda with partial
 * batch failure reporting.
 */
export class CategoryFanout extends Construct {
  readonly pipelines: Readonly<Record<Category, CategoryPipeline>>;

  constructor(scope: Construct, id: string, props: CategoryFanoutProps) {
    super(scope, id);
    const pipelines = {} as Record<Category, CategoryPipeline>;
    for (const category of CATEGORIES) {
      pipelines[category] = new CategoryPipeline(
        this,
        pascal(category),
        category,
        props.categories[category],
        props,
      );
    }
    this.pipelines = pipelines;
  }

  /** `QUEUE_URLS`: a JSON object of queue URLs per category, for the ingress. */
  queueUrlsJson(): string {
    const urls: Record<string, string> = {};
    for (const category of CATEGORIES) urls[category] = this.pipelines[category].queue.queueUrl;
    return Stack.of(this).toJsonString(urls);
  }

  grantPublish(grantee: IGrantable): Grant[] {
    return CATEGORIES.map((category) => this.pipelines[category].queue.grantSendMessages(grantee));
  }

  /** Messages waiting in a category's DLQ. */
  metricDeadLetterDepth(category: Category): Metric {
    return this.pipelines[category].queues.metricDeadLetterDepth();
  }

  metricOldestMessageAge(category: Category): Metric {
    return this.pipelines[category].queues.metricOldestMessageAge();
  }

  /** A consumer EMF metric for one category (processed, failures, processing time, …). */
  metricConsumer(
    name: ConsumerMetricName,
    category: Category,
    options: { statistic?: string; label?: string } = {},
  ): Metric {
    return projectMetric(this, name, {
      ...options,
      dimension: { name: 'Category', value: category },
    });
  }

  /** Messages waiting in a category's queue. */
  metricQueueDepth(category: Category): Metric {
    return this.pipelines[category].queues.metricDepth();
  }

  metricConsumerErrors(category: Category): Metric {
    return this.pipelines[category].consumer.metricErrors({ period: Duration.minutes(1) });
  }
}

function pascal(category: string): string {
  return category.replace(/(^|_)([a-z])/g, (_m, _sep, c: string) => c.toUpperCase());
}

/**
 * A user's entry file is bundled into the consumer through a small generated entry that hands
 * the user's export to the consumer runtime. It lives in .build/ (git-ignored).
 */
function generateUserEntry(category: Category, entry: string, exportName: string): string {
  const userFile = path.resolve(entry);
  if (!fs.existsSync(userFile))
    throw new Error(`categories.${category}.userHandler: ${userFile} does not exist.`);
  const dir = path.join(PROJECT_ROOT, '.build', 'generated');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `consumer-${category}.ts`);
  const runtime = path.join(PROJECT_ROOT, 'adapters/runtime/consumer-from-env.ts');
  fs.writeFileSync(
    file,
    [
      '// Generated at synth by lib/constructs/category-fanout.ts. Do not edit.',
      `import { consumerHandlerFromEnv } from ${JSON.stringify(runtime)};`,
      `import { ${exportName} as userHandler } from ${JSON.stringify(userFile)};`,
      'export const handler = consumerHandlerFromEnv(process.env, userHandler);',
      '',
    ].join('\n'),
  );
  return file;
}
