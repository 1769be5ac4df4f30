import { Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
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
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { CallsConfig } from '#core/calls/calls-config';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import type { EventStore } from './event-store';
import { grantInvokeUnqualified } from './grants';
import { PROJECT_ROOT } from './node-function';
import { type ProjectMetricOptions, projectMetric } from './project-metrics';
import { QueueWithDeadLetters } from './queue-with-dead-letters';

export interface SidebandServiceProps {
  readonly store: EventStore;
  readonly apiKeySecret: ISecret;
  readonly callsConfig: CallsConfig;
  readonly toolFunctions: readonly IFunction[];
  readonly openAiBaseUrl: string;
  readonly minTasks: number;
  readonly maxTasks: number;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly vpc?: IVpc;
  readonly vpcSubnets?: SubnetSelection;
  readonly dlqRetention: Duration;
  readonly logRetention: RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly logLevel: string;
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
  | 'CallDuration'
  | 'SessionCapHits'
  | 'Handoffs'
  | 'SweeperReattaches'
>;
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

  constructor(scope: Construct, id: string, props: SidebandServiceProps) {
    super(scope, id);
    const signals = new QueueWithDeadLetters(this, 'Signals', {
      visibilityTimeout: Duration.seconds(30),
      maxReceiveCount: 5,
      dlqRetention: props.dlqRetention,
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
        retention: props.logRetention,
        removalPolicy: props.logRemovalPolicy,
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
      cpu: props.cpu,
      memoryLimitMiB: props.memoryMiB,
      runtimePlatform: {
        cpuArchitecture: CpuArchitecture.ARM64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    const logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: props.logRemovalPolicy,
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
        [ENV.tableName]: props.store.table.tableName,
        [ENV.signalQueueUrl]: this.signalQueue.queueUrl,
        [ENV.callsConfig]: Stack.of(this).toJsonString(props.callsConfig),
        [ENV.openAiBaseUrl]: props.openAiBaseUrl,
        [ENV.openAiKeySecretId]: props.apiKeySecret.secretName,
        [ENV.logLevel]: props.logLevel,
        [ENV.stackName]: Stack.of(this).stackName,
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
    this.service = new FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: props.minTasks,
      assignPublicIp: publicSubnets,
      vpcSubnets: subnets,
      securityGroups: [securityGroup],
      // Keep every running task until its replacement is healthy: calls must not drop on deploy.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
    });

    const scaling = this.service.autoScaleTaskCount({
      minCapacity: props.minTasks,
      maxCapacity: props.maxTasks,
    });
    // Scale out before a task is full: at 60 % of its call capacity on average.
    scaling.scaleToTrackCustomMetric('ActiveCallsPerTask', {
      metric: this.metricActiveCallsPerTask(),
      targetValue: Math.max(1, Math.floor(props.callsConfig.maxCallsPerTask * 0.6)),
      scaleOutCooldown: Duration.seconds(30),
      scaleInCooldown: Duration.minutes(5),
    });

    const role = this.taskDefinition.taskRole;
    this.signalQueue.grantConsumeMessages(role);
    // Hand-offs and the sweeper send signals too.
    this.signalQueue.grantSendMessages(role);
    props.store.table.grantReadWriteData(role);
    props.store.acknowledgeIndexGrant(this.taskDefinition);
    props.apiKeySecret.grantRead(role);
    for (const fn of props.toolFunctions) grantInvokeUnqualified(fn, role);
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role pulls the image from ECR: ecr:GetAuthorizationToken only accepts Resource "*".',
    });
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

  metricCpuUtilization(): Metric {
    return this.service.metricCpuUtilization({ period: Duration.minutes(1) });
  }

  metricMemoryUtilization(): Metric {
    return this.service.metricMemoryUtilization({ period: Duration.minutes(1) });
  }

  metricSignalDeadLetters(): Metric {
    return this.signals.metricDeadLetterDepth();
  }

  /** Age in seconds of the oldest call signal: an accepted caller hears silence meanwhile. */
  metricSignalAge(): Metric {
    return this.signals.metricOldestMessageAge();
  }

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
