import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, Stack, Token, Tokenization } from 'aws-cdk-lib';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DECISION_LEASE_MS } from '#core/calls/incoming-call';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import { CATEGORIES, type Category, isCategory } from '#core/webhooks/categories';
import { HYDRATABLE_CATEGORIES } from '#core/webhooks/hydration';
import { DEFAULTS, type UserHandler } from '../config';
import type { EventStore } from './event-store';
import { grantInvokeUnqualified } from './grants';
import { type LoggingProps, type ResolvedLogging, resolveLogging } from './logging';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { projectMetric } from './project-metrics';
import { QueueWithDeadLetters } from './queue-with-dead-letters';
import { LAMBDA_MEMORY, PropsCheck } from './validation';

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

/** How one category's queue and consumer behave. */
export interface CategoryConsumerOptions {
  /** SQS messages per consumer invocation (1 to 10000). @default 10 */
  readonly batchSize?: number;
  /** How long to gather a batch (at most 5 minutes). Required by SQS when batchSize > 10. @default Duration.seconds(0) */
  readonly maxBatchingWindow?: Duration;
  /** Cap on concurrent consumer invocations for this queue (2 to 1000). @default no cap */
  readonly maxConcurrency?: number;
  /**
   * Consumer Lambda timeout (5 s to 15 min); the queue's visibility timeout is 6× this. For the
   * `realtime` consumer of a fan-out with `incomingCalls`, at most 10 s.
   * @default Duration.seconds(60); Duration.seconds(10) for the realtime consumer with `incomingCalls`
   */
  readonly timeout?: Duration;
  /** Consumer Lambda memory in MiB (128 to 10240). @default 512 */
  readonly memorySize?: number;
  /**
   * Receives before a message moves to the DLQ (1 to 1000).
   * @default the fan-out's `maxReceiveCount` (on the stack: the stack's `maxReceiveCount`)
   */
  readonly maxReceiveCount?: number;
  /**
   * Fetch the object from the OpenAI API (batches, fine-tuning jobs, responses) and store its
   * useful fields. Needs the API key (the fan-out's `openAiApiKey`; on the stack,
   * `openAiApiKeySecretName`). @default true where the API supports it and there is a key
   */
  readonly hydrate?: boolean;
  /** Your code, called with each stored event. @default none */
  readonly userHandler?: UserHandler;
}

export interface CategoryFanoutProps {
  /** Where every consumer stores events and object state (read/write, `TABLE_NAME`). */
  readonly store: EventStore;
  /** Per-category options; a category left out gets every default. @default the defaults for every category */
  readonly categories?: Readonly<Partial<Record<Category, CategoryConsumerOptions>>>;
  /** Receives before a message moves to its DLQ, for a category that sets none (1 to 1000). @default 5 */
  readonly maxReceiveCount?: number;
  /** How long stored events are kept (DynamoDB TTL); at least 1 day. @default Duration.days(90) */
  readonly eventRetention?: Duration;
  /** How long each DLQ keeps a message (1 minute to 14 days, the SQS maximum). @default Duration.days(14) */
  readonly dlqRetention?: Duration;
  /** OpenAI API base URL for hydration (https). @default 'https://api.openai.com/v1' */
  readonly openAiBaseUrl?: string;
  /**
   * The OpenAI API key secret: hydrating consumers may read it.
   * @default none: no consumer calls the OpenAI API, and no category may hydrate
   */
  readonly openAiApiKey?: ISecret;
  /** Log groups, `LOG_LEVEL` and tracing of the consumers. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
  /**
   * The `realtime` consumer answers phone calls (`realtime.call.incoming`; give it to
   * `SidebandService.bindIncomingCallHandler`). A caller rings for about 30 s, so its timeout
   * defaults to 10 s and may be at most that, its queue's visibility timeout (6× the timeout)
   * is then at most 60 s, and a batching window is refused. @default false
   */
  readonly incomingCalls?: boolean;
}

/** A category's options with every default applied. */
interface ResolvedConsumerOptions {
  readonly batchSize: number;
  readonly maxBatchingWindow: Duration;
  readonly maxConcurrency: number | undefined;
  readonly timeout: Duration;
  readonly memorySize: number;
  readonly maxReceiveCount: number;
  readonly hydrate: boolean;
  readonly userHandler: UserHandler | undefined;
}

interface CategoryPipelineProps {
  readonly category: Category;
  readonly options: ResolvedConsumerOptions;
  readonly store: EventStore;
  readonly eventRetention: Duration;
  readonly dlqRetention: Duration;
  readonly openAiBaseUrl: string;
  readonly openAiApiKey: ISecret | undefined;
  readonly logging: ResolvedLogging;
}

/** One category's queue, dead-letter queue and consumer (props already checked by the fan-out). */
class CategoryPipeline extends Construct {
  readonly queues: QueueWithDeadLetters;
  readonly consumer: LambdaFunction;
  readonly maxReceiveCount: number;

  constructor(scope: Construct, id: string, props: CategoryPipelineProps) {
    super(scope, id);
    const { category, options } = props;
    this.maxReceiveCount = options.maxReceiveCount;
    this.queues = new QueueWithDeadLetters(this, 'Queues', {
      // AWS's guidance for Lambda sources: at least 6x the function timeout, so retries of a
      // throttled batch do not become visible while it still runs.
      visibilityTimeout: Duration.seconds(options.timeout.toSeconds() * 6),
      maxReceiveCount: options.maxReceiveCount,
      dlqRetention: props.dlqRetention,
    });

    const user = options.userHandler?.source;
    const consumer = new NodeFunction(this, 'Consumer', {
      entry:
        user?.kind === 'entry'
          ? generateUserEntry(category, user.entry, user.exportName)
          : path.join(PROJECT_ROOT, 'lambdas/consumer/handler.ts'),
      description: `OpenAI webhooks: stores and projects ${category} events`,
      memorySize: options.memorySize,
      timeout: options.timeout,
      logging: props.logging,
      environment: {
        [ENV.category]: category,
        [ENV.hydrate]: String(options.hydrate),
        [ENV.eventTtlSeconds]: String(props.eventRetention.toSeconds()),
        // The same number as the queue's redrive policy: the consumer then knows a failure on
        // this receive is the last, and logs and counts the event as dead-lettered.
        [ENV.maxReceiveCount]: Tokenization.stringifyNumber(options.maxReceiveCount),
      },
    });
    this.consumer = consumer.fn;
    // What every consumer needs for OpenAI calls, after LOG_LEVEL.
    this.consumer.addEnvironment(ENV.openAiBaseUrl, props.openAiBaseUrl);
    if (props.openAiApiKey)
      this.consumer.addEnvironment(ENV.openAiKeySecretId, props.openAiApiKey.secretName);
    props.store.bindReadWrite(this.consumer);
    props.store.acknowledgeIndexGrant(consumer);
    props.store.bindPayloadReader(this.consumer);
    props.store.acknowledgePayloadGrant(consumer);
    if (options.hydrate) props.openAiApiKey?.grantRead(this.consumer);
    if (user?.kind === 'function') {
      grantInvokeUnqualified(user.fn, this.consumer);
      this.consumer.addEnvironment(ENV.userHandlerFunction, user.fn.functionArn);
    }
    this.consumer.addEventSource(
      new SqsEventSource(this.queues.queue, {
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
  private readonly pipelines: Readonly<Record<Category, CategoryPipeline>>;

  constructor(scope: Construct, id: string, props: CategoryFanoutProps) {
    super(scope, id);
    const check = new PropsCheck('CategoryFanout', id);
    const logging = resolveLogging(props.logging, check);
    const maxReceiveCount = props.maxReceiveCount ?? DEFAULTS.maxReceiveCount;
    const eventRetention = props.eventRetention ?? DEFAULTS.eventRetention;
    const dlqRetention = props.dlqRetention ?? DEFAULTS.dlqRetention;
    const openAiBaseUrl = props.openAiBaseUrl ?? DEFAULTS.openAiBaseUrl;
    check
      .integer('maxReceiveCount', props.maxReceiveCount, 1, 1000)
      .duration('eventRetention', eventRetention, { min: Duration.days(1) })
      .duration('dlqRetention', dlqRetention, {
        min: Duration.minutes(1),
        max: Duration.days(14),
        why: 'the SQS maximum',
      })
      .httpsUrl('openAiBaseUrl', openAiBaseUrl);
    for (const name of Object.keys(props.categories ?? {}))
      check.that(
        isCategory(name),
        `categories.${name}`,
        `is not a category; use one of ${CATEGORIES.join(', ')}.`,
      );
    const options = {} as Record<Category, ResolvedConsumerOptions>;
    for (const category of CATEGORIES) {
      options[category] = resolveCategory(
        category,
        props.categories?.[category] ?? {},
        maxReceiveCount,
        props.openAiApiKey !== undefined,
        category === 'realtime' && props.incomingCalls === true,
        check,
      );
    }
    check.assert();

    const pipelines = {} as Record<Category, CategoryPipeline>;
    for (const category of CATEGORIES) {
      pipelines[category] = new CategoryPipeline(this, pascal(category), {
        category,
        options: options[category],
        store: props.store,
        eventRetention,
        dlqRetention,
        openAiBaseUrl,
        openAiApiKey: props.openAiApiKey,
        logging,
      });
    }
    this.pipelines = pipelines;
  }

  /**
   * A category's consumer function. The `realtime` one is also the incoming-call handler: give
   * it to `SidebandService.bindIncomingCallHandler`.
   */
  consumerOf(category: Category): LambdaFunction {
    return this.pipelines[category].consumer;
  }

  /** A category's queue (what the ingress, `owh replay` and `owh redrive` send to). */
  queueOf(category: Category): IQueue {
    return this.pipelines[category].queues.queue;
  }

  /** A category's dead-letter queue. */
  deadLetterQueueOf(category: Category): IQueue {
    return this.pipelines[category].queues.deadLetterQueue;
  }

  /** Receives before a message of the category moves to its DLQ. */
  maxReceiveCountOf(category: Category): number {
    return this.pipelines[category].maxReceiveCount;
  }

  /** `QUEUE_URLS`: a JSON object of queue URLs per category, for the ingress. */
  queueUrlsJson(): string {
    const urls: Record<string, string> = {};
    for (const category of CATEGORIES) urls[category] = this.queueOf(category).queueUrl;
    return Stack.of(this).toJsonString(urls);
  }

  /** Send on every category queue. */
  grantPublish(grantee: IGrantable): Grant[] {
    return CATEGORIES.map((category) => this.queueOf(category).grantSendMessages(grantee));
  }

  /** Messages waiting in a category's DLQ. */
  metricDeadLetterDepth(category: Category): Metric {
    return this.pipelines[category].queues.metricDeadLetterDepth();
  }

  /** Age in seconds of the oldest message in a category's queue. */
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

  /** Invocations of a category's consumer that threw, per minute. */
  metricConsumerErrors(category: Category): Metric {
    return this.pipelines[category].consumer.metricErrors({ period: Duration.minutes(1) });
  }
}

/** Applies a category's defaults and records what is wrong with its options. */
function resolveCategory(
  category: Category,
  given: CategoryConsumerOptions,
  maxReceiveCount: number,
  hasApiKey: boolean,
  answersCalls: boolean,
  check: PropsCheck,
): ResolvedConsumerOptions {
  const where = `categories.${category}`;
  const resolved: ResolvedConsumerOptions = {
    batchSize: given.batchSize ?? DEFAULTS.batchSize,
    maxBatchingWindow: given.maxBatchingWindow ?? Duration.seconds(0),
    maxConcurrency: given.maxConcurrency,
    timeout:
      given.timeout ?? (answersCalls ? DEFAULTS.incomingCallTimeout : DEFAULTS.consumerTimeout),
    memorySize: given.memorySize ?? DEFAULTS.consumerMemorySize,
    maxReceiveCount: given.maxReceiveCount ?? maxReceiveCount,
    hydrate: given.hydrate ?? (HYDRATABLE_CATEGORIES.has(category) && hasApiKey),
    userHandler: given.userHandler,
  };
  const window = resolved.maxBatchingWindow;
  check
    .integer(`${where}.batchSize`, given.batchSize, 1, 10_000)
    .duration(`${where}.maxBatchingWindow`, given.maxBatchingWindow, { max: Duration.minutes(5) })
    .that(
      Token.isUnresolved(resolved.batchSize) ||
        window.isUnresolved() ||
        resolved.batchSize <= 10 ||
        window.toMilliseconds({ integral: false }) > 0,
      `${where}.batchSize`,
      'above 10 needs a maxBatchingWindow (an SQS rule).',
    )
    .integer(`${where}.maxConcurrency`, given.maxConcurrency, 2, 1000)
    .duration(`${where}.timeout`, given.timeout, {
      min: Duration.seconds(5),
      max: Duration.minutes(15),
    })
    .integer(`${where}.memorySize`, given.memorySize, LAMBDA_MEMORY.min, LAMBDA_MEMORY.max)
    .integer(`${where}.maxReceiveCount`, given.maxReceiveCount, 1, 1000)
    .that(
      !resolved.hydrate || HYDRATABLE_CATEGORIES.has(category),
      `${where}.hydrate`,
      `cannot be on: the OpenAI API cannot fetch ${category} objects by id alone.`,
    )
    .that(
      !resolved.hydrate || hasApiKey,
      `${where}.hydrate`,
      'needs openAiApiKey (hydration calls the OpenAI API).',
    );
  if (answersCalls) checkIncomingCalls(where, resolved, check);
  const user = resolved.userHandler?.source;
  if (user?.kind === 'entry') {
    check
      .that(
        fs.existsSync(path.resolve(user.entry)),
        `${where}.userHandler`,
        `${path.resolve(user.entry)} does not exist.`,
      )
      .that(
        /^[A-Za-z_$][\w$]*$/.test(user.exportName),
        `${where}.userHandler`,
        `export name "${user.exportName}" is not a JavaScript identifier.`,
      );
  }
  return resolved;
}

/**
 * The realtime consumer that answers phone calls. The trade-off: AWS asks for a visibility timeout
 * of at least 6× the function timeout, so that Lambda can retry a throttled batch before its
 * messages reappear ("Creating and configuring an Amazon SQS event source mapping", AWS Lambda
 * developer guide), while a failed call is only redelivered after the visibility timeout, when a
 * caller ringing for about 30 s has usually given up. So the timeout is short (at most 10 s: an
 * accept takes at most two 3 s attempts) and the visibility 6× that (at most 60 s); transient
 * failures are retried inside the handler first (core/calls/incoming-call.ts `IN_HANDLER_RETRY`),
 * and the redelivery only finishes what a crash left (a `/reject`, a signal). A batching window
 * would hold a ringing call back before it is looked at. The decision lease must outlast a live
 * attempt (the timeout) and end before a redelivery can arrive (visibility minus the timeout).
 */
function checkIncomingCalls(
  where: string,
  resolved: ResolvedConsumerOptions,
  check: PropsCheck,
): void {
  const { timeout, maxBatchingWindow: window } = resolved;
  check
    .duration(`${where}.timeout`, timeout, {
      max: DEFAULTS.incomingCallTimeout,
      why: 'the realtime consumer answers phone calls; its queue redelivers a failed call after 6× the timeout',
    })
    .that(
      window.isUnresolved() || window.toMilliseconds() === 0,
      `${where}.maxBatchingWindow`,
      'must be 0 with incomingCalls: a batching window holds a ringing call back before it is looked at.',
    );
  if (timeout.isUnresolved()) return;
  const timeoutMs = timeout.toMilliseconds();
  check.that(
    timeoutMs < DECISION_LEASE_MS && DECISION_LEASE_MS < 5 * timeoutMs,
    `${where}.timeout`,
    `must leave the call decision lease (${DECISION_LEASE_MS} ms) longer than one attempt and shorter than the wait for a redelivery (5× the timeout).`,
  );
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
