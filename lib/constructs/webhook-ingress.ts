import * as path from 'node:path';
import { CfnOutput, Duration, type RemovalPolicy } from 'aws-cdk-lib';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  type FunctionUrl,
  FunctionUrlAuthType,
  type Function as LambdaFunction,
} from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import type { CategoryFanout } from './category-fanout';
import type { EventStore } from './event-store';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { type ProjectMetricOptions, projectMetric } from './project-metrics';

export interface WebhookIngressProps {
  readonly store: EventStore;
  readonly fanout: CategoryFanout;
  readonly webhookSecret: ISecret;
  readonly signatureTolerance: Duration;
  readonly maxBodyBytes: number;
  readonly dedupeRetention: Duration;
  readonly reservedConcurrency: number | null;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly logRetention: RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly logLevel: string;
  readonly tracing: boolean;
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
    const fn = new NodeFunction(this, 'Handler', {
      entry: path.join(PROJECT_ROOT, 'lambdas/ingress/handler.ts'),
      description: 'OpenAI webhooks: verifies, deduplicates and queues each delivery',
      memorySize: props.memorySize,
      timeout: props.timeout,
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      tracing: props.tracing,
      ...(props.reservedConcurrency !== null
        ? { reservedConcurrentExecutions: props.reservedConcurrency }
        : {}),
      environment: {
        [ENV.webhookSecretId]: props.webhookSecret.secretName,
        [ENV.queueUrls]: props.fanout.queueUrlsJson(),
        [ENV.toleranceSeconds]: String(props.signatureTolerance.toSeconds()),
        [ENV.maxBodyBytes]: String(props.maxBodyBytes),
        [ENV.dedupeTtlSeconds]: String(props.dedupeRetention.toSeconds()),
        // A claim is stale once the attempt that made it must have timed out.
        [ENV.claimTimeoutSeconds]: String(props.timeout.toSeconds() * 3),
        [ENV.logLevel]: props.logLevel,
      },
    });
    this.fn = fn.fn;
    props.store.bindWebhookLedger(this.fn);
    props.store.acknowledgeIndexGrant(fn);
    props.fanout.grantPublish(this.fn);
    props.webhookSecret.grantRead(this.fn);
    this.url = this.fn.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
    new CfnOutput(scope, 'WebhookUrl', {
      value: this.url.url,
      description: 'Register this URL as the webhook endpoint in the OpenAI project settings.',
    });
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
