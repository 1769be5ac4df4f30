import * as path from 'node:path';
import { Annotations, ArnFormat, Duration, Names, Stack, Validations } from 'aws-cdk-lib';
import {
  type CfnStage,
  HttpApi,
  HttpMethod,
  type HttpRoute,
  type HttpStage,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { type Grant, type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { CallsConfig } from '#core/calls/calls-config';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import {
  type ApiAuth,
  addAuthedRoute,
  addLoggedDefaultStage,
  checkApiAuth,
  grantRouteInvoke,
} from './api-auth';
import type { EventStore } from './event-store';
import { type LoggingProps, resolveLogging } from './logging';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { type ProjectMetricOptions, projectMetric } from './project-metrics';
import type { SidebandService } from './sideband-service';
import { PropsCheck } from './validation';

/** The `callControl` stack prop: the construct's own options. */
export interface CallControlOptions {
  /**
   * Who may send commands and read their results: `'iam'` (SigV4; grant with
   * `grantCallControl`), a JWT authorizer (`{ jwt: { issuer, audience, scopes? } }`), or `'open'`
   * (demos only: anyone could hang up your calls). @default 'iam'
   */
  readonly auth?: ApiAuth;
  /** Route throttling (both routes). @default 20 requests/s, burst 40 */
  readonly throttle?: { readonly rateLimit: number; readonly burstLimit: number };
}

export interface CallControlApiProps extends CallControlOptions {
  readonly store: EventStore;
  /** The sideband fleet: each worker gets its own control queue, named with this API's prefix. */
  readonly sideband: SidebandService;
  /** The fleet's calls config: the tools and transfer targets a command may name. */
  readonly callsConfig: CallsConfig;
  /** Log group and level of the API's function. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/** The workers' command metrics (EMF, core/observability/metrics.ts; README "Metrics"). */
export type CallCommandMetricName = Extract<
  MetricName,
  'CallCommandsApplied' | 'CallCommandsRefused' | 'CallCommandsFailed' | 'CallCommandLatency'
>;

const DEFAULT_THROTTLE = { rateLimit: 20, burstLimit: 40 } as const;
const COMMANDS_PATH = '/calls/{call_id}/commands';
const COMMAND_PATH = '/calls/{call_id}/commands/{id}';

/**
 * Live call control (issue 16): `POST /calls/{call_id}/commands` (say, update, cancel, hangup,
 * transfer; 202 with the command's id) and `GET /calls/{call_id}/commands/{id}` (pending,
 * applied, refused, failed), an API Gateway HTTP API with IAM auth by default. The function
 * (lambdas/call-control/handler.ts) stores each command in the table and nudges the worker that
 * holds the call on that worker's own SQS queue, which each worker creates at start (named with
 * `queuePrefix`) and deletes when it stops; this construct gives the workers that permission and
 * the prefix. Cost does not grow with calls or time: one long poll per worker every 20 s, and a
 * few requests per command (see the README's design notes).
 */
export class CallControlApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly fn: LambdaFunction;
  readonly commandsRoute: HttpRoute;
  readonly commandRoute: HttpRoute;
  readonly auth: ApiAuth;
  /** The name prefix of the workers' control queues (IAM is scoped to it). */
  readonly queuePrefix: string;

  constructor(scope: Construct, id: string, props: CallControlApiProps) {
    super(scope, id);
    const check = new PropsCheck('CallControlApi', id);
    const logging = resolveLogging(props.logging, check);
    const auth = props.auth ?? 'iam';
    const throttle = props.throttle ?? DEFAULT_THROTTLE;
    checkApiAuth(check, 'auth', props.auth)
      .integer('throttle.rateLimit', throttle.rateLimit, 1, 10_000)
      .integer('throttle.burstLimit', throttle.burstLimit, 1, 5000)
      .assert();
    this.auth = auth;
    // Short and unique per construct: SQS names are at most 80 characters, and the ECS task id
    // that follows is 32.
    this.queuePrefix = `owh-ctl-${Names.uniqueId(this).slice(-8).toLowerCase()}-`;
    const stack = Stack.of(this);
    const queueArns = stack.formatArn({
      service: 'sqs',
      resource: `${this.queuePrefix}*`,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });

    const fn = new NodeFunction(this, 'Handler', {
      entry: path.join(PROJECT_ROOT, 'lambdas/call-control/handler.ts'),
      description:
        'Call control: stores commands for live calls and nudges the worker holding each',
      memorySize: 256,
      timeout: Duration.seconds(10),
      logging,
      environment: { [ENV.callsConfig]: stack.toJsonString(props.callsConfig) },
    });
    this.fn = fn.fn;
    props.store.bindReadWrite(this.fn);
    props.store.acknowledgeIndexGrant(fn);
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queueArns] }),
    );
    Validations.of(fn).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${this.queuePrefix}*]`,
      reason:
        'The workers create their control queues at start (one per task, named after the task); the function may only send to queues of that prefix.',
    });

    // The workers: create, read and delete their own control queue.
    const container = props.sideband.taskDefinition.defaultContainer;
    container?.addEnvironment('CONTROL_QUEUE_PREFIX', this.queuePrefix);
    props.sideband.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: [
          'sqs:CreateQueue',
          'sqs:TagQueue',
          'sqs:GetQueueUrl',
          'sqs:GetQueueAttributes',
          'sqs:ReceiveMessage',
          'sqs:DeleteMessage',
          'sqs:DeleteQueue',
        ],
        resources: [queueArns],
      }),
    );
    Validations.of(props.sideband.taskDefinition).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${this.queuePrefix}*]`,
      reason:
        'Each worker creates one control queue named after its task at start and deletes it when it stops (and those of workers that died); the task role is scoped to that name prefix.',
    });

    this.api = new HttpApi(this, 'Api', {
      description: 'Live call control for the OpenAI sideband fleet',
      createDefaultStage: false,
    });
    this.stage = addLoggedDefaultStage(this, this.api, throttle, logging);
    const integration = new HttpLambdaIntegration('Integration', this.fn);
    this.commandsRoute = addAuthedRoute(this, this.api, {
      path: COMMANDS_PATH,
      method: HttpMethod.POST,
      integration,
      auth,
      what: 'the call-control API',
    });
    this.commandRoute = addAuthedRoute(this, this.api, {
      path: COMMAND_PATH,
      method: HttpMethod.GET,
      integration,
      auth,
      what: 'the call-control API',
    });
    const cfnStage = this.stage.node.defaultChild as CfnStage;
    cfnStage.routeSettings = {
      [`POST ${COMMANDS_PATH}`]: {
        ThrottlingRateLimit: throttle.rateLimit,
        ThrottlingBurstLimit: throttle.burstLimit,
      },
      [`GET ${COMMAND_PATH}`]: {
        ThrottlingRateLimit: throttle.rateLimit,
        ThrottlingBurstLimit: throttle.burstLimit,
      },
    };
    this.stage.node.addDependency(this.commandsRoute, this.commandRoute);
    if (auth === 'open')
      Annotations.of(this).addWarningV2(
        'openai-webhooks:call-control-open',
        'The call-control API is OPEN: anyone who finds its URL can hang up, transfer or steer your calls. Use auth "iam" (the default) or a JWT authorizer.',
      );
  }

  /** The API's base URL (`owh calls …` and `sendCallCommand` append the routes). */
  get url(): string {
    return this.api.apiEndpoint;
  }

  /**
   * Lets `principal` send commands and read their results with SigV4 (auth `'iam'`, the
   * default). Returns the grants; none for a JWT or open API (the token is the permission).
   */
  grantCallControl(principal: IGrantable): Grant[] {
    return [
      grantRouteInvoke(this.api, HttpMethod.POST, COMMANDS_PATH, this.auth, principal),
      grantRouteInvoke(this.api, HttpMethod.GET, COMMAND_PATH, this.auth, principal),
    ].filter((g): g is Grant => g !== undefined);
  }

  /**
   * For a user handler or tool function: `CALL_CONTROL_URL` in its environment (what
   * `sendCallCommand` reads) and the grant to call the API.
   */
  bindCallControl(fn: LambdaFunction): Grant[] {
    fn.addEnvironment('CALL_CONTROL_URL', this.url);
    return this.grantCallControl(fn);
  }

  /** API Gateway 4xx answers: refused commands (400/409), unknown calls (404), auth refused (403). */
  metricClientErrors(): Metric {
    return this.api.metricClientError({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  /** API Gateway 5xx answers (the table unavailable). */
  metricServerErrors(): Metric {
    return this.api.metricServerError({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  /** Request latency at the API (p99): storing a command and nudging its worker. */
  metricLatency(): Metric {
    return this.api.metricLatency({ statistic: 'p99' });
  }

  /** Commands sent: requests to the API. */
  metricRequests(): Metric {
    return this.api.metricCount({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  /**
   * What the workers did with the commands (EMF from the worker holding each call):
   * `CallCommandsApplied` and `CallCommandLatency` (API accept → applied, ms; p95 unless a
   * statistic is given) by `Action`, `CallCommandsRefused` and `CallCommandsFailed` by `Reason`.
   * Without a dimension, the total over every value.
   */
  metricCommands(name: CallCommandMetricName, options?: ProjectMetricOptions): Metric {
    return projectMetric(this, name, options);
  }
}
