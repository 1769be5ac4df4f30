import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { sqsClientConfig } from '#adapters/aws-clients';
import { DynamoEventStore } from '#adapters/dynamo-event-store';
import { consumerDepsFromEnv } from '#adapters/runtime/consumer-from-env';
import { ingressDepsFromEnv } from '#adapters/runtime/ingress-from-env';
import type { CallsConfig } from '#core/calls/calls-config';
import { ENV } from '#core/env';
import { type MetricsPublisher, noMetrics } from '#core/observability/metrics';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import {
  type ConsumerDeps,
  createConsumerHandler,
  type UserHandler,
} from '#core/webhooks/process-event';
import { createIngressHandler, type IngressDeps } from '#core/webhooks/receive-webhook';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { lookupOrder, startIngressProcess, startWorkerProcess, type WorkerProcess } from './calls';
import { createQueue, createQueues, createTable, type QueuePair } from './provision';
import { type AwsJsonFake, startAwsJsonFake } from './stand-ins/aws-json-fake';
import { startDynamoDbLocal } from './stand-ins/dynamodb-local';
import { EventSourcePoller } from './stand-ins/event-source-poller';
import { serveFunctionUrl } from './stand-ins/function-url';
import { OpenAiSimulator } from './stand-ins/openai-simulator';
import { RealtimeSimulator, type RealtimeSimulatorOptions } from './stand-ins/realtime-simulator';
import { type S3Fake, startS3Fake } from './stand-ins/s3-fake';
import { startSqsEmulator } from './stand-ins/sqs-emulator';

export interface LocalPipelineOptions {
  /** Use running stand-ins (tests share one set); otherwise they are started here. */
  readonly dynamoEndpoint?: string;
  readonly sqsEndpoint?: string;
  /** Keep DynamoDB data in this folder across restarts. @default in memory */
  readonly dbPath?: string;
  /** Port for the webhook URL. @default a free port */
  readonly port?: number;
  /** `whsec_…`. @default generated */
  readonly webhookSecret?: string;
  readonly previousWebhookSecret?: string;
  /** A real or external OpenAI-compatible API; unset starts the loopback simulator. */
  readonly openAiBaseUrl?: string;
  readonly openAiApiKey?: string;
  readonly userHandlers?: Partial<Record<Category, UserHandler>>;
  readonly maxReceiveCount?: number;
  readonly visibilityTimeoutSeconds?: number;
  readonly toleranceSeconds?: number;
  readonly maxBodyBytes?: number;
  readonly logLevel?: string;
  /** Table and queue name prefix. @default random, so runs never collide */
  readonly prefix?: string;
  /** Wraps adapters, for fault-injection tests. */
  readonly decorateIngress?: (deps: IngressDeps) => IngressDeps;
  readonly decorateConsumer?: (category: Category, deps: ConsumerDeps) => ConsumerDeps;
  readonly pollerConcurrency?: number;
  /** Phone calls: the incoming-call handler, a signal queue, and the Realtime simulator. */
  readonly calls?: CallsConfig;
  /** Timing of the Realtime simulator (tests shorten its idle timeouts, say). */
  readonly realtime?: RealtimeSimulatorOptions;
  /** Sideband worker processes to start. @default 0 */
  readonly workers?: number;
  /** A sideband ECS service (in the AWS fake) scaled to `desiredCount`, for scale-from-zero. */
  readonly ecsService?: { readonly desiredCount: number };
  /** Extra environment for the workers (timings in tests). */
  readonly workerEnv?: Record<string, string>;
  /** Where the in-process handlers' metrics go. @default discarded (workers print theirs as EMF) */
  readonly metrics?: MetricsPublisher;
  /**
   * `process`: the ingress runs in a child process of its own (local/ingress-process.ts), as
   * Lambda isolates it from the consumers. @default 'in-process'
   */
  readonly ingress?: 'in-process' | 'process';
}

let sharedAwsFake: Promise<AwsJsonFake> | undefined;

/**
 * The stand-in for services without an emulator: one per process, shared by every pipeline, and
 * never stopped, so it must not be what keeps a finished process (a benchmark, a script) alive.
 */
export function awsJsonFake(): Promise<AwsJsonFake> {
  sharedAwsFake ??= startAwsJsonFake({ unref: true });
  return sharedAwsFake;
}

let sharedS3: Promise<S3Fake> | undefined;

/** The S3 stand-in (the claim-check bucket): like `awsJsonFake`, one per process, never stopped. */
export function s3Fake(): Promise<S3Fake> {
  sharedS3 ??= startS3Fake({ unref: true });
  return sharedS3;
}

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The whole pipeline on this machine: the same handler code, real wire protocols. */
export class LocalPipeline {
  readonly stops: (() => Promise<void>)[] = [];
  readonly pollers: EventSourcePoller[] = [];
  url = '';
  tableName = '';
  queues = {} as Record<Category, QueuePair>;
  simulator: OpenAiSimulator | undefined;
  openAiBaseUrl = '';
  dynamoEndpoint = '';
  sqsEndpoint = '';
  webhookSecret = '';
  store!: DynamoEventStore;
  dynamo!: DynamoDBClient;
  sqs!: SQSClient;
  aws!: AwsJsonFake;
  /** The S3 stand-in; this pipeline's claim-check bucket is `payloadBucket`. */
  s3!: S3Fake;
  payloadBucket = '';
  env: NodeJS.ProcessEnv = {};
  realtime: RealtimeSimulator | undefined;
  signalQueue: QueuePair | undefined;
  readonly workers: WorkerProcess[] = [];

  private constructor(readonly options: LocalPipelineOptions) {}

  static async start(options: LocalPipelineOptions = {}): Promise<LocalPipeline> {
    const pipeline = new LocalPipeline(options);
    try {
      await pipeline.boot();
    } catch (error) {
      await pipeline.stop();
      throw error;
    }
    return pipeline;
  }

  private async boot(): Promise<void> {
    const o = this.options;
    const prefix = o.prefix ?? `owh${randomBytes(4).toString('hex')}`;
    if (o.dynamoEndpoint) {
      this.dynamoEndpoint = o.dynamoEndpoint;
    } else {
      const dynamo = await startDynamoDbLocal(o.dbPath ? { dbPath: o.dbPath } : {});
      this.stops.push(() => dynamo.stop());
      this.dynamoEndpoint = dynamo.endpoint;
    }
    if (o.sqsEndpoint) {
      this.sqsEndpoint = o.sqsEndpoint;
    } else {
      const sqs = await startSqsEmulator();
      this.stops.push(() => sqs.stop());
      this.sqsEndpoint = sqs.endpoint;
    }
    this.aws = await awsJsonFake();
    this.s3 = await s3Fake();
    useLocalAws({
      dynamo: this.dynamoEndpoint,
      sqs: this.sqsEndpoint,
      aws: this.aws.endpoint,
      s3: this.s3.endpoint,
    });
    this.payloadBucket = `${prefix}-payloads`;
    this.s3.buckets.set(this.payloadBucket, new Map());
    this.dynamo = new DynamoDBClient({});
    this.sqs = new SQSClient(sqsClientConfig());
    this.store = new DynamoEventStore(
      DynamoDBDocumentClient.from(this.dynamo, {
        marshallOptions: { removeUndefinedValues: true },
      }),
      `${prefix}-events`,
    );

    if (o.openAiBaseUrl) {
      this.openAiBaseUrl = o.openAiBaseUrl;
    } else {
      this.simulator = new OpenAiSimulator(o.openAiApiKey);
      this.openAiBaseUrl = await this.simulator.start();
      const simulator = this.simulator;
      this.stops.push(() => simulator.stop());
    }
    const apiKey = o.openAiApiKey ?? this.simulator?.apiKey ?? '';

    this.tableName = `${prefix}-events`;
    await createTable(this.dynamo, this.tableName);
    this.queues = await createQueues(this.sqs, prefix, {
      maxReceiveCount: o.maxReceiveCount ?? 5,
      visibilityTimeoutSeconds: o.visibilityTimeoutSeconds ?? 30,
    });

    this.webhookSecret = o.webhookSecret ?? generateWebhookSecret();
    parseWebhookSecret(this.webhookSecret, 'local');
    const webhookSecretId = `${prefix}/webhook-secret`;
    this.aws.secrets.set(
      webhookSecretId,
      o.previousWebhookSecret
        ? JSON.stringify({ current: this.webhookSecret, previous: o.previousWebhookSecret })
        : this.webhookSecret,
    );
    const apiKeySecretId = `${prefix}/api-key`;
    if (apiKey) this.aws.secrets.set(apiKeySecretId, apiKey);

    if (o.calls) {
      this.signalQueue = await createQueue(this.sqs, `${prefix}-signals`, {
        maxReceiveCount: 5,
        visibilityTimeoutSeconds: 30,
      });
      if (this.simulator) {
        this.realtime = new RealtimeSimulator(this.simulator, o.realtime);
        this.realtime.attach();
        const realtime = this.realtime;
        // Stops run in reverse: this closes the sockets before the simulator server stops.
        this.stops.push(async () => realtime.close());
      }
      this.aws.functions.set('lookup-order', lookupOrder);
      if (o.ecsService)
        this.aws.services.set(`${prefix}-sideband`, {
          desiredCount: o.ecsService.desiredCount,
          runningCount: o.ecsService.desiredCount,
        });
    }

    const queueUrls: Record<string, string> = {};
    for (const category of CATEGORIES) queueUrls[category] = this.queues[category].queueUrl;
    this.env = {
      [ENV.tableName]: this.tableName,
      [ENV.queueUrls]: JSON.stringify(queueUrls),
      [ENV.webhookSecretId]: webhookSecretId,
      [ENV.openAiBaseUrl]: this.openAiBaseUrl,
      ...(apiKey ? { [ENV.openAiKeySecretId]: apiKeySecretId } : {}),
      [ENV.toleranceSeconds]: String(o.toleranceSeconds ?? 300),
      [ENV.maxBodyBytes]: String(o.maxBodyBytes ?? 1024 * 1024),
      [ENV.logLevel]: o.logLevel ?? 'info',
      [ENV.stackName]: 'local',
      [ENV.payloadBucket]: this.payloadBucket,
      ...(o.calls && this.signalQueue
        ? {
            [ENV.callsConfig]: JSON.stringify(o.calls),
            [ENV.signalQueueUrl]: this.signalQueue.queueUrl,
          }
        : {}),
      ...(o.ecsService
        ? { [ENV.ecsCluster]: `${prefix}-cluster`, [ENV.ecsService]: `${prefix}-sideband` }
        : {}),
    };

    if (Object.values(o.userHandlers ?? {}).some(Boolean)) this.shareEnvWithUserHandlers();

    const metrics = o.metrics ?? noMetrics;
    if (o.ingress === 'process') {
      // Decorators and the metrics callback wrap in-process objects; a child cannot take them.
      if (o.decorateIngress || o.metrics)
        throw new Error('decorateIngress and metrics need the in-process ingress.');
      const child = await startIngressProcess({
        ...this.env,
        [ENV.metrics]: 'off',
        PORT: String(o.port ?? 0),
      });
      this.url = child.url;
      this.stops.push(child.stop);
    } else {
      const ingressDeps = { ...ingressDepsFromEnv(this.env), metrics };
      const ingress = createIngressHandler(
        o.decorateIngress ? o.decorateIngress(ingressDeps) : ingressDeps,
      );
      const served = await serveFunctionUrl(ingress, o.port ?? 0);
      this.url = served.url;
      this.stops.push(() => served.stop());
    }

    for (const category of CATEGORIES) {
      // MAX_RECEIVE_COUNT as the fan-out sets it deployed: the consumer logs and counts an event
      // its last attempt sends to the DLQ, on the same code path, into this pipeline's metrics.
      const deps = consumerDepsFromEnv(
        {
          ...this.env,
          [ENV.category]: category,
          [ENV.maxReceiveCount]: String(o.maxReceiveCount ?? 5),
        },
        o.userHandlers?.[category],
        metrics,
      );
      const handler = createConsumerHandler(
        o.decorateConsumer ? o.decorateConsumer(category, deps) : deps,
      );
      const poller = new EventSourcePoller({
        client: this.sqs,
        queueUrl: this.queues[category].queueUrl,
        queueArn: this.queues[category].queueArn,
        handler,
        concurrency: o.pollerConcurrency ?? 2,
        // The consumer reports its own dead letters (above); the poller adds only a batch the
        // handler failed as a whole, into the same metrics.
        metrics,
        handlerReportsDeadLetters: true,
      });
      poller.start();
      this.pollers.push(poller);
    }
    for (let i = 0; i < (o.workers ?? 0); i++) await this.startWorker(`worker-${i + 1}`);
  }

  /**
   * The in-process user handlers (`UserHandler.fromEntry`) get the environment their consumer
   * Lambda has. A handler reads it from `process.env`, as in Lambda (examples/handlers/
   * batch-completed.ts: `openAiFromEnv(process.env)`), and nothing else reaches a module's
   * `process.env` reads, so these are set there, and put back on stop. Exactly the variables every
   * consumer Lambda has alike (lib/constructs/category-fanout.ts, event-store.ts binds,
   * node-function.ts): a handler's way to the OpenAI API and its key, the table and the claim-check
   * bucket. Not the per-category ones (CATEGORY, HYDRATE, …: one process runs every category) nor
   * LOG_LEVEL (read when a handler module loads, which is before this; `npm start` passes its own).
   * A variable without a value here (no API key) is removed, as the Lambda would not have it.
   */
  private shareEnvWithUserHandlers(): void {
    const saved: Record<string, string | undefined> = {};
    for (const name of USER_HANDLER_ENV) {
      saved[name] = process.env[name];
      const value = this.env[name];
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    this.stops.push(async () => {
      for (const name of USER_HANDLER_ENV) {
        // Another pipeline may have set its own since: leave that alone.
        if (process.env[name] !== this.env[name]) continue;
        const previous = saved[name];
        if (previous === undefined) delete process.env[name];
        else process.env[name] = previous;
      }
    });
  }

  /** Starts a sideband worker process against this pipeline. */
  async startWorker(id: string, env: Record<string, string> = {}): Promise<WorkerProcess> {
    // The id keys the worker's lease renewal: two live workers sharing one would hide a death.
    if (
      this.workers.some(
        (w) => w.id === id && w.child.exitCode === null && w.child.signalCode === null,
      )
    ) {
      throw new Error(`A worker named ${id} is already running.`);
    }
    const worker = await startWorkerProcess(id, {
      ...this.env,
      AWS_ENDPOINT_URL_LAMBDA: this.aws.endpoint,
      ...this.options.workerEnv,
      ...env,
    });
    this.workers.push(worker);
    return worker;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.kill()));
    await Promise.allSettled(this.pollers.map((p) => p.stop()));
    for (const stop of this.stops.reverse()) await stop().catch(() => undefined);
    this.stops.length = 0;
  }
}

/** What local mode shares with in-process user handlers (`LocalPipeline.shareEnvWithUserHandlers`). */
export const USER_HANDLER_ENV = [
  ENV.openAiBaseUrl,
  ENV.openAiKeySecretId,
  ENV.tableName,
  ENV.payloadBucket,
  ENV.stackName,
] as const;

/** Points every AWS SDK client in this process at the stand-ins, with dummy credentials. */
export function useLocalAws(endpoints: {
  dynamo: string;
  sqs: string;
  aws: string;
  s3?: string;
}): void {
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'local';
  process.env.AWS_SECRET_ACCESS_KEY = 'local';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_ENDPOINT_URL_DYNAMODB = endpoints.dynamo;
  process.env.AWS_ENDPOINT_URL_SQS = endpoints.sqs;
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = endpoints.aws;
  process.env.AWS_ENDPOINT_URL_ECS = endpoints.aws;
  process.env.AWS_ENDPOINT_URL_LAMBDA = endpoints.aws;
  if (endpoints.s3) process.env.AWS_ENDPOINT_URL_S3 = endpoints.s3;
}
