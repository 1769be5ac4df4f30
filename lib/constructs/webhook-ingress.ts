import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  type FunctionUrl,
  FunctionUrlAuthType,
  type Function as LambdaFunction,
} from 'aws-cdk-lib/aws-lambda';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import { DEFAULTS } from '../config';
import type { CategoryFanout } from './category-fanout';
import type { EventStore } from './event-store';
import { type LoggingProps, resolveLogging } from './logging';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { type ProjectMetricOptions, projectMetric } from './project-metrics';
import { LAMBDA_MEMORY, PropsCheck } from './validation';

/** The SQS message limit: a webhook body travels as one message. */
const MAX_MESSAGE_BYTES = 1024 * 1024;

export interface WebhookIngressProps {
  /** Where the ingress claims and releases each `webhook-id` (PutItem and DeleteItem only). */
  readonly store: EventStore;
  /** The category queues a verified delivery is sent to. */
  readonly fanout: CategoryFanout;
  /**
   * The signing secret: `whsec_…`, or `{"current":"whsec_…","previous":"whsec_…"}` during a
   * rotation. Read at run time; only its name is in the environment.
   */
  readonly webhookSecret: ISecret;
  /** Replay window for `webhook-timestamp`, both directions (1 second to 1 hour). @default Duration.minutes(5) */
  readonly signatureTolerance?: Duration;
  /** Largest accepted body in bytes (1024 to 1048576, the SQS message limit). @default 1048576 */
  readonly maxBodyBytes?: number;
  /** How long a `webhook-id` is remembered: at least 72 hours, OpenAI's retry horizon. @default Duration.days(7) */
  readonly dedupeRetention?: Duration;
  /**
   * Reserved concurrency, which caps what a flood can cost (at least 1: 0 would throttle every
   * webhook). `null`: none, the account's pool. @default 50
   */
  readonly reservedConcurrency?: number | null;
  /** Memory in MiB (128 to 10240); more memory is more CPU for TLS and HMAC. @default 1024 */
  readonly memorySize?: number;
  /**
   * Function timeout (1 second to 15 minutes). A claim goes stale after 3× this, so a retry can
   * take over from an attempt that died. @default Duration.seconds(10)
   */
  readonly timeout?: Duration;
  /** Log group, `LOG_LEVEL` and tracing of the ingress function. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/** The ingress's own metrics (README "Metrics"). */
export type IngressMetricName = Extract<
  MetricName,
  | 'WebhooksReceived'
  | 'WebhooksVerified'
  | 'WebhooksRejected'
  | 'SignatureFailures'
  | 'WebhooksDuplicate'
  | 'WebhooksAccepted'
  | 'WebhooksFailed'
  | 'SecretMatched'
  | 'AckLatency'
>;

/**
 * The public webhook endpoint: a Lambda function URL with auth type NONE, because the Standard
 * Webhooks signature is the authentication (OpenAI publishes no source IP ranges and cannot sign
 * IAM requests).
 */
export class WebhookIngress extends Construct {
  readonly fn: LambdaFunction;
  readonly url: FunctionUrl;

  constructor(scope: Construct, id: string, props: WebhookIngressProps) {
    super(scope, id);
    const check = new PropsCheck('WebhookIngress', id);
    const logging = resolveLogging(props.logging, check);
    const signatureTolerance = props.signatureTolerance ?? DEFAULTS.signatureTolerance;
    const maxBodyBytes = props.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
    const dedupeRetention = props.dedupeRetention ?? DEFAULTS.dedupeRetention;
    const reserved =
      props.reservedConcurrency === undefined
        ? DEFAULTS.ingressReservedConcurrency
        : props.reservedConcurrency;
    const timeout = props.timeout ?? DEFAULTS.ingressTimeout;
    check
      .duration('signatureTolerance', props.signatureTolerance, {
        min: Duration.seconds(1),
        max: Duration.hours(1),
      })
      .integer('maxBodyBytes', props.maxBodyBytes, 1024, MAX_MESSAGE_BYTES, 'the SQS message limit')
      .duration('dedupeRetention', props.dedupeRetention, {
        min: Duration.hours(72),
        why: 'OpenAI retries a delivery for up to 72 hours',
      })
      .integer(
        'reservedConcurrency',
        reserved ?? undefined,
        1,
        undefined,
        'or null for none: 0 would throttle every webhook',
      )
      .integer('memorySize', props.memorySize, LAMBDA_MEMORY.min, LAMBDA_MEMORY.max)
      .duration('timeout', props.timeout, { min: Duration.seconds(1), max: Duration.minutes(15) })
      .assert();

    const fn = new NodeFunction(this, 'Handler', {
      entry: path.join(PROJECT_ROOT, 'lambdas/ingress/handler.ts'),
      description: 'OpenAI webhooks: verifies, deduplicates and queues each delivery',
      memorySize: props.memorySize ?? DEFAULTS.ingressMemorySize,
      timeout,
      logging,
      ...(reserved !== null ? { reservedConcurrentExecutions: reserved } : {}),
      environment: {
        [ENV.webhookSecretId]: props.webhookSecret.secretName,
        [ENV.queueUrls]: props.fanout.queueUrlsJson(),
        [ENV.toleranceSeconds]: String(signatureTolerance.toSeconds()),
        [ENV.maxBodyBytes]: String(maxBodyBytes),
        [ENV.dedupeTtlSeconds]: String(dedupeRetention.toSeconds()),
      },
    });
    this.fn = fn.fn;
    props.store.bindWebhookLedger(this.fn);
    props.store.acknowledgeIndexGrant(fn);
    props.store.bindPayloadWriter(this.fn);
    props.store.acknowledgePayloadGrant(fn);
    props.fanout.grantPublish(this.fn);
    props.webhookSecret.grantRead(this.fn);
    this.url = this.fn.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
  }

  /** The public webhook URL: register it as the endpoint in the OpenAI project settings. */
  get webhookUrl(): string {
    return this.url.url;
  }

  /** Function URL responses by class: `4xx` (rejected deliveries) or `5xx` (OpenAI will retry). */
  metricResponses(kind: '4xx' | '5xx'): Metric {
    return new Metric({
      namespace: 'AWS/Lambda',
      metricName: kind === '4xx' ? 'Url4xxCount' : 'Url5xxCount',
      dimensionsMap: { FunctionName: this.fn.functionName, Resource: this.fn.functionName },
      statistic: 'Sum',
    });
  }

  /** One of the ingress's EMF metrics: received, rejected by reason, accepted by category, … */
  metricWebhooks(name: IngressMetricName, options?: ProjectMetricOptions): Metric {
    return projectMetric(this, name, options);
  }

  /**
   * Invocations Lambda refused because the function was at its reserved concurrency
   * (`ingressReservedConcurrency`) or the account's limit: the URL answered 429, and OpenAI
   * retries those deliveries.
   */
  metricThrottles(): Metric {
    return this.fn.metricThrottles({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  /** Invocations that threw (should be none: every failure is answered with a status). */
  metricErrors(): Metric {
    return this.fn.metricErrors({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  metricLatency(): Metric {
    return new Metric({
      namespace: 'AWS/Lambda',
      metricName: 'UrlRequestLatency',
      dimensionsMap: { FunctionName: this.fn.functionName, Resource: this.fn.functionName },
      statistic: 'p99',
    });
  }
}
