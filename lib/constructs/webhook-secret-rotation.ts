import * as path from 'node:path';
import { Duration, Stack, Validations } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  GraphWidget,
  type IWidget,
  LogQueryVisualizationType,
  LogQueryWidget,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction as LambdaTarget } from 'aws-cdk-lib/aws-events-targets';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { type ISecret, RotationSchedule } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import { METRICS_NAMESPACE } from '#core/observability/metrics';
import { ROTATION_METRICS, WEBHOOK_ENDPOINT_ID_ENV } from '#core/webhooks/endpoint-lifecycle';
import { DEFAULTS } from '../config';
import type { LoggingProps } from './logging';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { PropsCheck } from './validation';

export interface WebhookSecretRotationProps {
  /** The webhook secret the ingress verifies with; rotation writes `{current, previous}` into it. */
  readonly webhookSecret: ISecret;
  /** The OpenAI API key that rotates the endpoint's secret. */
  readonly apiKeySecret: ISecret;
  /** The endpoint at OpenAI whose secret is rotated (`whe_…`). */
  readonly endpointId: string;
  /** Time between rotations (1 to 365 days). @default Duration.days(30) */
  readonly every?: Duration;
  /** OpenAI API base URL (an https:// URL). @default 'https://api.openai.com/v1' */
  readonly openAiBaseUrl?: string;
  /** Log group, `LOG_LEVEL` and tracing of the rotation function. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/**
 * Secrets Manager rotation of the webhook signing secret (lambdas/webhook-secret-rotation):
 * OpenAI issues a new secret and keeps the old one valid 24 hours; the secret holds both until
 * an hourly step drops the old one once its 24 hours are over. An alarm fires on a failed
 * rotation (`alarm`; the stack sends it to the alarm topic).
 */
export class WebhookSecretRotation extends Construct {
  readonly fn: LambdaFunction;
  readonly schedule: RotationSchedule;
  /** A rotation (or the hourly drop of the old secret) failed. */
  readonly alarm: Alarm;

  constructor(scope: Construct, id: string, props: WebhookSecretRotationProps) {
    super(scope, id);
    new PropsCheck('WebhookSecretRotation', id)
      .duration('every', props.every, {
        min: Duration.days(1),
        max: Duration.days(365),
        why: 'an old secret lives 24 h after each rotation',
      })
      .httpsUrl('openAiBaseUrl', props.openAiBaseUrl)
      .assert();

    const fn = new NodeFunction(this, 'Handler', {
      entry: path.join(PROJECT_ROOT, 'lambdas/webhook-secret-rotation/handler.ts'),
      description: 'OpenAI webhooks: rotates the webhook signing secret (Secrets Manager rotation)',
      memorySize: 256,
      timeout: Duration.minutes(1),
      ...(props.logging ? { logging: props.logging } : {}),
      environment: {
        [ENV.openAiKeySecretId]: props.apiKeySecret.secretName,
        [ENV.openAiBaseUrl]: props.openAiBaseUrl ?? DEFAULTS.openAiBaseUrl,
        [ENV.webhookSecretId]: props.webhookSecret.secretName,
        [WEBHOOK_ENDPOINT_ID_ENV]: props.endpointId,
      },
    });
    this.fn = fn.fn;
    props.apiKeySecret.grantRead(this.fn);
    props.webhookSecret.grantRead(this.fn);
    props.webhookSecret.grantWrite(this.fn);

    this.schedule = new RotationSchedule(this, 'Schedule', {
      secret: props.webhookSecret,
      rotationLambda: this.fn,
      automaticallyAfter: props.every ?? Duration.days(30),
      // The first rotation waits for the schedule: registration has just issued a secret.
      rotateImmediatelyOnUpdate: false,
    });

    Validations.of(fn.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'RotationSchedule grants secretsmanager:GetRandomPassword, which takes only Resource "*" (and is unused here: OpenAI generates the secret).',
    });

    // The second phase: drop the old secret once OpenAI has stopped signing with it.
    new Rule(this, 'DropOldSecret', {
      description: 'OpenAI webhooks: drops the previous signing secret 24 h after a rotation',
      schedule: Schedule.rate(Duration.hours(1)),
      targets: [
        new LambdaTarget(this.fn, {
          event: RuleTargetInput.fromObject({ action: 'expirePrevious' }),
          retryAttempts: 2,
        }),
      ],
    });

    this.alarm = new Alarm(this, 'RotationFailed', {
      metric: this.metricRotations('failures'),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription:
        'The webhook signing secret could not be rotated (or its old half dropped). The current secret still works; OpenAI may hold a new one the stack has not stored. Read the rotation function logs, fix the cause (often the API key), then run `owh webhooks rotate`.',
    });
  }

  /**
   * Dashboard widgets: the last rotation steps with their times (from the rotation function's
   * logs: a metric cannot show a time), and rotations, failures and old secrets dropped. Which
   * secret signed recent deliveries is the ingress row's `SecretMatched` graph (current/previous).
   */
  dashboardWidgets(): IWidget[] {
    return [
      new LogQueryWidget({
        title: 'Webhook secret: last rotation steps',
        logGroupNames: [this.fn.logGroup.logGroupName],
        view: LogQueryVisualizationType.TABLE,
        queryLines: [
          'fields @timestamp, step, did, error',
          'filter message like /webhook secret rotation/',
          'sort @timestamp desc',
          'limit 10',
        ],
        width: 12,
        height: 6,
      }),
      new GraphWidget({
        title: 'Webhook secret rotations',
        left: [
          this.metricRotations('rotations').with({ label: 'rotated' }),
          this.metricRotations('expired').with({ label: 'old secret dropped' }),
          this.metricRotations('failures').with({ label: 'failed' }),
        ],
        width: 12,
        height: 6,
      }),
    ];
  }

  /** `failures`: failed steps; `rotations`: rotations finished; `expired`: old secrets dropped. */
  metricRotations(kind: keyof typeof ROTATION_METRICS): Metric {
    return new Metric({
      namespace: METRICS_NAMESPACE,
      metricName: ROTATION_METRICS[kind],
      dimensionsMap: { Stack: Stack.of(this).stackName },
      statistic: 'Sum',
      period: Duration.minutes(5),
    });
  }
}
