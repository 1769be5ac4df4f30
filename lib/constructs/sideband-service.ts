import { type CfnElement, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  FlowLogDestination,
  type IVpc,
  SecurityGroup,
  type SubnetSelection,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { validateCallPolicy } from '#core/calls/call-policy';
import { type CallsConfig, validateCallsConfig } from '#core/calls/calls-config';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import { MAX_PROTECTION_MINUTES } from '#core/ports/task-protection';
import {
  callsConfigSizeProblem,
  FARGATE_CPUS,
  SERVICE_DEFAULTS,
  type TaskProtectionOptions,
} from '../calls-config';
import { DEFAULTS } from '../config';
import type { BindableFunction, EventStore } from './event-store';
import { grantInvokeUnqualified } from './grants';
import { type LoggingProps, resolveLogging } from './logging';
import { PROJECT_ROOT } from './node-function';
import { type ProjectMetricOptions, projectMetric } from './project-metrics';
import { QueueWithDeadLetters } from './queue-with-dead-letters';
import { PropsCheck } from './validation';

export interface SidebandServiceProps {
  /** Where the workers keep leases, call records, transcripts and tool results (read/write). */
  readonly store: EventStore;
  /** The OpenAI API key secret: the workers read it at start, the incoming-call handler per call. */
  readonly apiKeySecret: ISecret;
  /**
   * The calls runtime config (`CALLS_CONFIG`: policy, sessions, tools, transfer targets, …), as
   * `resolveCalls` in lib/calls-config.ts builds it from the stack's `calls` props. It must fit
   * the incoming-call handler's environment (about 3 KB).
   */
  readonly callsConfig: CallsConfig;
  /**
   * The Lambda functions behind `callsConfig.tools`, one per tool `functionName`: the task role
   * may invoke these and nothing else. @default none
   */
  readonly toolFunctions?: readonly IFunction[];
  /** OpenAI API base URL (https); the Realtime WebSocket URL derives from it. @default 'https://api.openai.com/v1' */
  readonly openAiBaseUrl?: string;
  /** Tasks kept running (0 or more). 0 allows scale-to-zero: the first call then waits minutes for a task. @default 1 */
  readonly minTasks?: number;
  /** Tasks at most (at least 1 and at least `minTasks`). @default 10 */
  readonly maxTasks?: number;
  /** Fargate CPU units per task: 256, 512, 1024, 2048 or 4096. @default 256 */
  readonly cpu?: number;
  /** Memory per task in MiB: at least 512, and a size Fargate offers for `cpu`. @default 512 */
  readonly memoryMiB?: number;
  /**
   * Average CPU use (%) the service scales out to keep (10 to 90), as well as calls per task:
   * tools and transcripts cost CPU a call count does not show. @default 60
   */
  readonly cpuTargetPercent?: number;
  /**
   * An existing VPC. Its private subnets (with egress to api.openai.com:443) are used unless
   * `vpcSubnets` says otherwise, and tasks get no public IP.
   * @default a new VPC with public subnets, no NAT gateway, and flow logs
   */
  readonly vpc?: IVpc;
  /** Where in `vpc` the tasks run; needs `vpc`. @default the private subnets of `vpc` */
  readonly vpcSubnets?: SubnetSelection;
  /** How long the signal DLQ keeps a message (1 minute to 14 days). @default Duration.days(14) */
  readonly dlqRetention?: Duration;
  /**
   * Log groups (the workers' and the new VPC's flow logs) and the workers' `LOG_LEVEL`.
   * `tracing` does not apply: the worker is not traced. @default the LoggingProps defaults
   */
  readonly logging?: LoggingProps;
  /**
   * The workers' task scale-in protection budget: how long a task holding calls stays protected
   * from scale-in and deployments at a stretch, and how long it then rests unprotected. Each
   * value given is set in the workers' environment (`TASK_PROTECTION_MAX_MINUTES`,
   * `TASK_PROTECTION_REST_MINUTES`, read by adapters/ecs-task-protection.ts `fromEnv`); one not
   * given is left to the worker's default. @default 60 minutes protected, then 15 minutes' rest
   */
  readonly taskProtection?: TaskProtectionOptions;
}

/** The phone-call metrics: the incoming-call handler's and the workers' (README "Metrics"). */
export type CallMetricName = Extract<
  MetricName,
  | 'CallsIncoming'
  | 'CallsAccepted'
  | 'CallsRejected'
  | 'CallsMissed'
  | 'CallsFailed'
  | 'AcceptLatency'
  | 'AttachLatency'
  | 'ToolCalls'
  | 'ToolLatency'
  | 'ToolErrors'
  | 'TransfersConfirmed'
  | 'TransfersFailed'
  | 'CallsEnded'
  | 'CallsEndedByChannel'
  | 'CallDuration'
  | 'SessionCapHits'
  | 'Handoffs'
  | 'SweeperReattaches'
  // The worker under faults (issue 11) and its call recorder (issue 12).
  | 'LeasesLost'
  | 'Reattaches'
  | 'AttachRetries'
  | 'ToolCallsSkipped'
  | 'ToolOutputsTruncated'
  | 'ToolOutputsHandedOver'
  | 'IdleTimeouts'
  | 'CallerBargeIns'
  | 'RecorderItemsDropped'
>;

/**
 * The workers' protection budget variables, as adapters/ecs-task-protection.ts `TASK_PROTECTION_ENV`
 * names them (lib does not import adapters; test/infra/sideband-service.test.ts checks they agree).
 */
export const TASK_PROTECTION_ENV_NAMES = {
  maxProtectedMinutes: 'TASK_PROTECTION_MAX_MINUTES',
  restMinutes: 'TASK_PROTECTION_REST_MINUTES',
} as const;
// Fargate sends SIGKILL this long after SIGTERM: the time a worker has to hand its calls off.
const STOP_TIMEOUT = Duration.seconds(120);

/**
 * The sideband service: Fargate tasks (ARM64) that long-poll a signal queue and hold each call's
 * Realtime WebSocket for the life of the call. By default in a new VPC with public subnets and
 * no NAT gateway (its cost); tasks get a public IP and no inbound rule.
 */
export class SidebandService extends Construct {
  readonly signalQueue: Queue;
  readonly signalDeadLetterQueue: Queue;
  private readonly signals: QueueWithDeadLetters;
  readonly cluster: Cluster;
  readonly service: FargateService;
  readonly taskDefinition: FargateTaskDefinition;
  /** Calls at once across the account (`calls.maxConcurrentCalls`). */
  readonly callCapacity: number;
  /** Calls one task may hold (`calls.maxCallsPerTask`). */
  readonly callsPerTask: number;
  /** Tasks kept running; 0 means the service scales to zero. */
  readonly minTasks: number;
  private readonly callsConfig: CallsConfig;
  private readonly apiKeySecret: ISecret;

  constructor(scope: Construct, id: string, props: SidebandServiceProps) {
    super(scope, id);
    const check = new PropsCheck('SidebandService', id);
    const logging = resolveLogging(props.logging, check);
    const minTasks = props.minTasks ?? SERVICE_DEFAULTS.minTasks;
    const maxTasks = props.maxTasks ?? SERVICE_DEFAULTS.maxTasks;
    const cpu = props.cpu ?? SERVICE_DEFAULTS.cpu;
    const memoryMiB = props.memoryMiB ?? SERVICE_DEFAULTS.memoryMiB;
    const cpuTargetPercent = props.cpuTargetPercent ?? SERVICE_DEFAULTS.cpuTargetPercent;
    const toolFunctions = props.toolFunctions ?? [];
    const openAiBaseUrl = props.openAiBaseUrl ?? DEFAULTS.openAiBaseUrl;
    const tooLarge = callsConfigSizeProblem(props.callsConfig);
    check
      .problemsOf('callsConfig', [
        ...new Set([
          ...validateCallsConfig(props.callsConfig),
          ...validateCallPolicy(props.callsConfig.policy),
        ]),
      ])
      .problemsOf('callsConfig', tooLarge ? [tooLarge] : [])
      .integer('minTasks', props.minTasks, 0)
      .integer(
        'maxTasks',
        maxTasks,
        Token.isUnresolved(minTasks) ? 1 : Math.max(1, minTasks),
        undefined,
        'at least 1 and at least minTasks',
      )
      .oneOf('cpu', props.cpu, FARGATE_CPUS)
      .integer('memoryMiB', props.memoryMiB, 512)
      .integer('cpuTargetPercent', props.cpuTargetPercent, 10, 90)
      .that(
        !FARGATE_CPUS.some((c) => c === cpu) || fargateMemoryFits(cpu, memoryMiB),
        'memoryMiB',
        `${memoryMiB} is not a size Fargate offers with cpu ${cpu} (${fargateMemoryText(cpu)}).`,
      )
      .that(props.vpcSubnets === undefined || props.vpc !== undefined, 'vpcSubnets', 'needs vpc.')
      .duration('dlqRetention', props.dlqRetention, {
        min: Duration.minutes(1),
        max: Duration.days(14),
        why: 'the SQS maximum',
      })
      .httpsUrl('openAiBaseUrl', openAiBaseUrl)
      // ECS takes ExpiresInMinutes from 1 to 2880 (core/ports/task-protection.ts).
      .integer(
        'taskProtection.maxProtectedMinutes',
        props.taskProtection?.maxProtectedMinutes,
        1,
        MAX_PROTECTION_MINUTES,
      )
      .integer(
        'taskProtection.restMinutes',
        props.taskProtection?.restMinutes,
        0,
        MAX_PROTECTION_MINUTES,
      );
    // Each tool names its function by ARN (or name), and the task role may invoke exactly those.
    const tools = props.callsConfig.tools ?? [];
    const backs = (fn: IFunction, functionName: string) =>
      functionName === fn.functionArn || functionName === fn.functionName;
    for (const tool of tools) {
      check.that(
        toolFunctions.some((fn) => backs(fn, tool.functionName)),
        `callsConfig.tools.${tool.name}.functionName`,
        'is none of toolFunctions: the workers could not invoke it.',
      );
    }
    toolFunctions.forEach((fn, i) => {
      check.that(
        tools.some((tool) => backs(fn, tool.functionName)),
        `toolFunctions[${i}]`,
        'backs no tool in callsConfig.tools: the workers need no access to it.',
      );
    });
    check.assert();
    this.minTasks = minTasks;
    this.callsConfig = props.callsConfig;
    this.apiKeySecret = props.apiKeySecret;

    const signals = new QueueWithDeadLetters(this, 'Signals', {
      visibilityTimeout: Duration.seconds(30),
      maxReceiveCount: 5,
      dlqRetention: props.dlqRetention ?? DEFAULTS.dlqRetention,
      // A signal older than a ring is useless, but keep it long enough to debug.
      retention: Duration.hours(1),
    });
    this.signals = signals;
    this.signalQueue = signals.queue;
    this.signalDeadLetterQueue = signals.deadLetterQueue;

    let vpc = props.vpc;
    if (!vpc) {
      vpc = new Vpc(this, 'Vpc', {
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [{ name: 'public', subnetType: SubnetType.PUBLIC }],
      });
      const flowLogs = new LogGroup(this, 'FlowLogs', {
        retention: logging.logRetention,
        removalPolicy: logging.logRemovalPolicy,
      });
      vpc.addFlowLog('FlowLog', { destination: FlowLogDestination.toCloudWatchLogs(flowLogs) });
    }
    const subnets = props.vpcSubnets ?? {
      subnetType: props.vpc ? SubnetType.PRIVATE_WITH_EGRESS : SubnetType.PUBLIC,
    };
    const publicSubnets = !props.vpc && !props.vpcSubnets;

    this.cluster = new Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: ContainerInsights.ENABLED,
    });
    this.taskDefinition = new FargateTaskDefinition(this, 'Task', {
      cpu,
      memoryLimitMiB: memoryMiB,
      runtimePlatform: {
        cpuArchitecture: CpuArchitecture.ARM64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    const logGroup = new LogGroup(this, 'Logs', {
      retention: logging.logRetention,
      removalPolicy: logging.logRemovalPolicy,
    });
    this.callCapacity = props.callsConfig.policy.maxConcurrentCalls;
    this.callsPerTask = props.callsConfig.maxCallsPerTask;
    this.taskDefinition.addContainer('Worker', {
      image: ContainerImage.fromAsset(PROJECT_ROOT, {
        file: 'containers/sideband/Dockerfile',
        platform: Platform.LINUX_ARM64,
      }),
      logging: LogDrivers.awsLogs({ streamPrefix: 'sideband', logGroup }),
      stopTimeout: STOP_TIMEOUT,
      // Configuration only: the API key is read from Secrets Manager at start, never passed here.
      environment: {
        [ENV.tableName]: props.store.tableName,
        [ENV.signalQueueUrl]: this.signalQueue.queueUrl,
        [ENV.callsConfig]: Stack.of(this).toJsonString(props.callsConfig),
        [ENV.openAiBaseUrl]: openAiBaseUrl,
        [ENV.openAiKeySecretId]: props.apiKeySecret.secretName,
        [ENV.logLevel]: logging.logLevel,
        [ENV.stackName]: Stack.of(this).stackName,
        // The protection budget, only as given: the worker has the same defaults.
        ...(props.taskProtection?.maxProtectedMinutes !== undefined
          ? {
              [TASK_PROTECTION_ENV_NAMES.maxProtectedMinutes]: String(
                props.taskProtection.maxProtectedMinutes,
              ),
            }
          : {}),
        ...(props.taskProtection?.restMinutes !== undefined
          ? { [TASK_PROTECTION_ENV_NAMES.restMinutes]: String(props.taskProtection.restMinutes) }
          : {}),
      },
      healthCheck: {
        command: [
          'CMD',
          'node',
          '-e',
          "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))",
        ],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(3),
        startPeriod: Duration.seconds(20),
        retries: 3,
      },
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment carries configuration only (table, queue, calls config, secret name); the API key is read from Secrets Manager at start.',
    });

    const securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: 'Sideband workers: outbound to the OpenAI API and AWS endpoints, no inbound',
      allowAllOutbound: true,
    });
    // No desiredCount: a DesiredCount in the template resets the running count on every deploy
    // that touches the service, dropping tasks that hold calls. CloudFormation starts a new
    // service with 1 task when it is omitted and keeps the current count on updates (CDK's
    // BaseServiceOptions.desiredCount: "When creating the service, default is 1; when updating
    // the service, default uses the current task number"; aws/aws-cdk#13130). Registering the
    // scalable target below then moves the count into [minTasks, maxTasks]
    // (Application Auto Scaling RegisterScalableTarget: "it changes the resource's current
    // capacity to a value that is inside of this range").
    this.service = new FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      assignPublicIp: publicSubnets,
      vpcSubnets: subnets,
      securityGroups: [securityGroup],
      // Keep every running task until its replacement is healthy: calls must not drop on deploy.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
    });

    const scaling = this.service.autoScaleTaskCount({
      minCapacity: minTasks,
      maxCapacity: maxTasks,
    });
    // Scale out before a task is full: at 60 % of its call capacity on average, or at
    // `cpuTargetPercent` CPU. With several target tracking policies, the service scales out when
    // any policy asks and in only when all do (Amazon ECS developer guide, "Use a target metric
    // to scale Amazon ECS services"). Scale-in never stops a task whose worker protects it
    // (task scale-in protection, granted below) while it holds calls.
    scaling.scaleToTrackCustomMetric('ActiveCallsPerTask', {
      metric: this.metricActiveCallsPerTask(),
      targetValue: Math.max(1, Math.floor(props.callsConfig.maxCallsPerTask * 0.6)),
      scaleOutCooldown: Duration.seconds(30),
      scaleInCooldown: Duration.minutes(5),
    });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: cpuTargetPercent,
      scaleOutCooldown: Duration.seconds(30),
      scaleInCooldown: Duration.minutes(5),
    });

    const role = this.taskDefinition.taskRole;
    this.signalQueue.grantConsumeMessages(role);
    // Hand-offs and the sweeper send signals too.
    this.signalQueue.grantSendMessages(role);
    props.store.grantReadWriteData(role);
    props.store.acknowledgeIndexGrant(this.taskDefinition);
    props.apiKeySecret.grantRead(role);
    for (const fn of toolFunctions) grantInvokeUnqualified(fn, role);
    this.grantTaskProtection(role);
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role pulls the image from ECR: ecr:GetAuthorizationToken only accepts Resource "*".',
    });
  }

  /**
   * Makes `fn` (the `realtime` consumer) the incoming-call handler: the calls config and the
   * signal queue in its environment, read access to the API key, send on the signal queue and,
   * when the service scales to zero, the cluster and service names and the right to raise it.
   */
  bindIncomingCallHandler(fn: BindableFunction): void {
    fn.addEnvironment(ENV.callsConfig, Stack.of(this).toJsonString(this.callsConfig));
    fn.addEnvironment(ENV.signalQueueUrl, this.signalQueue.queueUrl);
    this.apiKeySecret.grantRead(fn);
    this.grantSignal(fn);
    if (this.minTasks === 0) {
      fn.addEnvironment(ENV.ecsCluster, this.cluster.clusterName);
      fn.addEnvironment(ENV.ecsService, this.service.serviceName);
      this.grantScaleFromZero(fn);
    }
  }

  /**
   * Lets a worker protect its own task from scale-in and deployments while it holds calls. The
   * worker PUTs `${ECS_AGENT_URI}/task-protection/v1/state` (adapters/ecs-task-protection.ts);
   * ECS sets `ECS_AGENT_URI` in every container itself, and the agent calls UpdateTaskProtection
   * and GetTaskProtection with the task role's credentials, so the role needs both ("IAM
   * permissions required for task scale-in protection", Amazon ECS developer guide). Only the
   * cluster's tasks.
   */
  grantTaskProtection(grantee: IGrantable): Grant {
    const grant = Grant.addToPrincipal({
      grantee,
      actions: ['ecs:GetTaskProtection', 'ecs:UpdateTaskProtection'],
      resourceArns: [this.cluster.arnForTasks('*')],
    });
    const cluster = Stack.of(this).getLogicalId(this.cluster.node.defaultChild as CfnElement);
    Validations.of(this.taskDefinition).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${cluster}>/*]`,
      reason:
        'Task scale-in protection is set by each task on itself; task ids are not known at synth, so the grant covers the tasks of this cluster only.',
    });
    return grant;
  }

  /** Lets the incoming-call handler signal a call to the workers. */
  grantSignal(grantee: IGrantable): Grant {
    return this.signalQueue.grantSendMessages(grantee);
  }

  /** Lets the incoming-call handler raise a service scaled to zero. */
  grantScaleFromZero(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ['ecs:DescribeServices', 'ecs:UpdateService'],
      resourceArns: [this.service.serviceArn],
    });
  }

  /** Average calls held per running task, as the workers report it (EMF). */
  metricActiveCallsPerTask(): Metric {
    return projectMetric(this, 'ActiveCalls', { statistic: 'Average' });
  }

  /**
   * Calls holding capacity across the account: every task reports the same counter, so the
   * Maximum is exact however many tasks run. Compare with `callCapacity`.
   */
  metricAccountActiveCalls(): Metric {
    return projectMetric(this, 'AccountActiveCalls', { statistic: 'Maximum' });
  }

  /** A call metric: outcomes, setup latency, tools, transfers, ends (optionally by one dimension). */
  metricCalls(name: CallMetricName, options?: ProjectMetricOptions): Metric {
    return projectMetric(this, name, options);
  }

  /**
   * Call parts (transcript lines, tool results, usage, events) the recorder gave up writing, over
   * every Reason (each point is also published under `Stack` alone). Above 0: a call record has a gap.
   */
  metricRecorderItemsDropped(options?: ProjectMetricOptions): Metric {
    return projectMetric(this, 'RecorderItemsDropped', options);
  }

  /** The service's CPU use in %, per minute. */
  metricCpuUtilization(): Metric {
    return this.service.metricCpuUtilization({ period: Duration.minutes(1) });
  }

  /** The service's memory use in %, per minute. */
  metricMemoryUtilization(): Metric {
    return this.service.metricMemoryUtilization({ period: Duration.minutes(1) });
  }

  /** Call signals that failed 5 times and wait in the signal DLQ. */
  metricSignalDeadLetters(): Metric {
    return this.signals.metricDeadLetterDepth();
  }

  /** Age in seconds of the oldest call signal: an accepted caller hears silence meanwhile. */
  metricSignalAge(): Metric {
    return this.signals.metricOldestMessageAge();
  }

  /** Running tasks (Container Insights), the minimum in each minute. */
  metricRunningTasks(): Metric {
    return new Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: {
        ClusterName: this.cluster.clusterName,
        ServiceName: this.service.serviceName,
      },
      statistic: 'Minimum',
      period: Duration.minutes(1),
    });
  }
}

/** Memory sizes (MiB) Fargate offers per CPU size. */
const FARGATE_MEMORY: Readonly<Record<number, { min: number; max: number; step: number }>> = {
  256: { min: 512, max: 2048, step: 512 },
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16_384, step: 1024 },
  4096: { min: 8192, max: 30_720, step: 1024 },
};

function fargateMemoryFits(cpu: number, memoryMiB: number): boolean {
  if (Token.isUnresolved(cpu) || Token.isUnresolved(memoryMiB)) return true;
  const sizes = FARGATE_MEMORY[cpu];
  if (!sizes) return true;
  if (cpu === 256) return [512, 1024, 2048].includes(memoryMiB);
  return memoryMiB >= sizes.min && memoryMiB <= sizes.max && memoryMiB % sizes.step === 0;
}

function fargateMemoryText(cpu: number): string {
  const sizes = FARGATE_MEMORY[cpu];
  if (!sizes) return 'see the Fargate task sizes';
  if (cpu === 256) return '512, 1024 or 2048';
  return `${sizes.min} to ${sizes.max} in steps of ${sizes.step}`;
}
