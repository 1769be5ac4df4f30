import { CfnParameter, Duration, type Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { EcsTaskProtection, TASK_PROTECTION_ENV } from '#adapters/ecs-task-protection';
import { EventStore } from '../../lib/constructs/event-store';
import {
  type CallMetricName,
  SidebandService,
  type SidebandServiceProps,
  TASK_PROTECTION_ENV_NAMES,
} from '../../lib/constructs/sideband-service';
import { PropsError } from '../../lib/constructs/validation';
import { nagFindings } from './app';
import { bareStack, callsFixture, expectContained } from './constructs';

type Options = Partial<Omit<SidebandServiceProps, 'store' | 'apiKeySecret'>>;

function sidebandIn(options: Options | ((stack: Stack) => Options) = {}) {
  const { app, stack } = bareStack();
  const store = new EventStore(stack, 'Store');
  const apiKeySecret = Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key');
  const { config, tool } = callsFixture(stack);
  const extra = typeof options === 'function' ? options(stack) : options;
  const sideband = new SidebandService(stack, 'Sideband', {
    store,
    apiKeySecret,
    callsConfig: config,
    toolFunctions: [tool],
    ...extra,
  });
  return { app, stack, store, tool, config, sideband, template: () => Template.fromStack(stack) };
}

function handlerIn(stack: Stack): LambdaFunction {
  return new LambdaFunction(stack, 'Incoming', {
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('exports.handler = async () => {}'),
  });
}

function actionsOf(template: Template, rolePattern: string): string[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: Match.stringLikeRegexp(rolePattern) }] },
  });
  return Object.values(policies).flatMap((p) =>
    (p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]).flatMap((s) =>
      [s.Action].flat(),
    ),
  );
}

describe('SidebandService', () => {
  it('runs ARM64 Fargate tasks with the defaults, in a new VPC with public subnets and no NAT', () => {
    const { app, stack, store, tool, sideband, template: t } = sidebandIn();
    const template = t();
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::FlowLog', 1);
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [
        Match.objectLike({
          StopTimeout: 120,
          Environment: Match.arrayWith([
            Match.objectLike({ Name: 'CALLS_CONFIG' }),
            { Name: 'OPENAI_BASE_URL', Value: 'https://api.openai.com/v1' },
            { Name: 'OPENAI_API_KEY_SECRET_ID', Value: 'api-key' },
            { Name: 'LOG_LEVEL', Value: 'info' },
            { Name: 'STACK_NAME', Value: 'Bare' },
          ]),
        }),
      ],
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: Match.absent(),
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }),
      },
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 1,
      MaxCapacity: 10,
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({ TargetValue: 120 }),
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 60,
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      }),
    });
    template.resourceCountIs('AWS::SQS::Queue', 2);
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 30,
      MessageRetentionPeriod: 3600,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }),
    });
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    expect(sideband).toMatchObject({ minTasks: 1, callCapacity: 100, callsPerTask: 200 });
    expectContained(stack, sideband, [store, tool]);
    const own = nagFindings(app).filter((f) => f.includes('/Sideband/'));
    expect(own).toEqual([]);
  });

  it('gives the task role its queue, the table, the API key and exactly the tool functions', () => {
    const { template } = sidebandIn();
    const actions = actionsOf(template(), 'SidebandTaskTaskRole');
    expect(actions).toEqual(
      expect.arrayContaining([
        'sqs:ReceiveMessage',
        'sqs:SendMessage',
        'dynamodb:PutItem',
        'secretsmanager:GetSecretValue',
        'lambda:InvokeFunction',
        'ecs:GetTaskProtection',
        'ecs:UpdateTaskProtection',
      ]),
    );
    expect(actions.some((a) => a.endsWith(':*') || a === '*')).toBe(false);
  });

  it('never sets DesiredCount, so a deploy keeps the running task count; a CPU target of choice', () => {
    for (const minTasks of [0, 1, 3]) {
      const { template } = sidebandIn({ minTasks, cpuTargetPercent: 45 });
      const t = template();
      for (const service of Object.values(t.findResources('AWS::ECS::Service')))
        expect(service.Properties).not.toHaveProperty('DesiredCount');
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
        MinCapacity: minTasks,
      });
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        TargetTrackingScalingPolicyConfiguration: Match.objectLike({ TargetValue: 45 }),
      });
    }
  });

  it('binds the incoming-call handler: config, signal queue, API key; no scale-from-zero at minTasks 1', () => {
    const { stack, sideband, template } = sidebandIn();
    sideband.bindIncomingCallHandler(handlerIn(stack));
    const t = template();
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          CALLS_CONFIG: Match.anyValue(),
          SIGNAL_QUEUE_URL: { Ref: Match.stringLikeRegexp('SidebandSignalsQueue') },
        },
      },
    });
    const actions = actionsOf(t, '^IncomingServiceRole');
    expect(actions).toEqual(
      expect.arrayContaining(['secretsmanager:GetSecretValue', 'sqs:SendMessage']),
    );
    expect(actions).not.toContain('ecs:UpdateService');
  });

  it('scaled to zero, lets the incoming-call handler raise the service', () => {
    const { stack, sideband, template } = sidebandIn({ minTasks: 0 });
    sideband.bindIncomingCallHandler(handlerIn(stack));
    const t = template();
    t.hasResourceProperties('AWS::ECS::Service', { DesiredCount: Match.absent() });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          ECS_CLUSTER: Match.anyValue(),
          ECS_SERVICE: Match.anyValue(),
        }),
      },
    });
    expect(actionsOf(t, '^IncomingServiceRole')).toEqual(
      expect.arrayContaining(['ecs:DescribeServices', 'ecs:UpdateService']),
    );
    expect(sideband.minTasks).toBe(0);
  });

  it('uses the private subnets of a given VPC, without public IPs, and adds nothing to it', () => {
    const { template } = sidebandIn((stack) => ({
      vpc: new Vpc(stack, 'Network', { maxAzs: 2, natGateways: 1 }),
      cpu: 1024,
      memoryMiB: 4096,
      maxTasks: 3,
      openAiBaseUrl: 'https://proxy.example.com/v1',
      logging: { logLevel: 'debug' },
    }));
    const t = template();
    t.resourceCountIs('AWS::EC2::VPC', 1);
    t.resourceCountIs('AWS::EC2::FlowLog', 0);
    t.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }),
      },
    });
    t.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '1024',
      Memory: '4096',
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: 'OPENAI_BASE_URL', Value: 'https://proxy.example.com/v1' },
            { Name: 'LOG_LEVEL', Value: 'debug' },
          ]),
        }),
      ],
    });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MaxCapacity: 3 });
  });

  it('has the call, capacity, signal and service metrics', () => {
    const { sideband } = sidebandIn();
    expect(sideband.metricActiveCallsPerTask().statistic).toBe('Average');
    expect(sideband.metricAccountActiveCalls().statistic).toBe('Maximum');
    expect(sideband.metricCalls('CallsAccepted').namespace).toBe('OpenAiWebhooks');
    expect(sideband.metricSignalAge().metricName).toBe('ApproximateAgeOfOldestMessage');
    expect(sideband.metricSignalDeadLetters().metricName).toBe(
      'ApproximateNumberOfMessagesVisible',
    );
    expect(sideband.metricRunningTasks().metricName).toBe('RunningTaskCount');
    expect(sideband.metricCpuUtilization().metricName).toBe('CPUUtilization');
    expect(sideband.metricMemoryUtilization().metricName).toBe('MemoryUtilization');
  });

  it("covers the worker's fault and recorder metrics: metricCalls for each, metricRecorderItemsDropped", () => {
    const { sideband } = sidebandIn();
    const names: CallMetricName[] = [
      'LeasesLost',
      'Reattaches',
      'AttachRetries',
      'ToolCallsSkipped',
      'ToolOutputsTruncated',
      'ToolOutputsHandedOver',
      'IdleTimeouts',
      'CallerBargeIns',
      'RecorderItemsDropped',
    ];
    for (const name of names) {
      const metric = sideband.metricCalls(name, { label: name });
      expect(metric.metricName).toBe(name);
      expect(metric.namespace).toBe('OpenAiWebhooks');
      expect(metric.statistic).toBe('Sum');
      expect(metric.label).toBe(name);
    }
    const dropped = sideband.metricRecorderItemsDropped({ period: Duration.minutes(5) });
    expect(dropped.metricName).toBe('RecorderItemsDropped');
    expect(dropped.statistic).toBe('Sum');
    expect(dropped.period.toMinutes()).toBe(5);
    // The total over every Reason: the Stack dimension alone.
    expect(Object.keys(dropped.dimensions ?? {})).toEqual(['Stack']);
  });

  describe('the task-protection budget', () => {
    type EnvEntry = { Name: string; Value: unknown };
    const workerEnv = (template: Template): EnvEntry[] => {
      const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as {
        Properties: { ContainerDefinitions: { Environment: EnvEntry[] }[] };
      };
      return task.Properties.ContainerDefinitions[0]?.Environment ?? [];
    };
    const budgetEnv = (template: Template) =>
      workerEnv(template).filter((e) => e.Name.startsWith('TASK_PROTECTION_'));

    it("names the variables the worker's EcsTaskProtection.fromEnv reads", () => {
      expect(TASK_PROTECTION_ENV_NAMES).toEqual(TASK_PROTECTION_ENV);
    });

    it("is left to the worker's defaults when not given: no variable is set", () => {
      expect(budgetEnv(sidebandIn().template())).toEqual([]);
      expect(budgetEnv(sidebandIn({ taskProtection: {} }).template())).toEqual([]);
    });

    it('sets only the values given, and the worker reads them back', () => {
      expect(budgetEnv(sidebandIn({ taskProtection: { restMinutes: 0 } }).template())).toEqual([
        { Name: 'TASK_PROTECTION_REST_MINUTES', Value: '0' },
      ]);
      const both = budgetEnv(
        sidebandIn({ taskProtection: { maxProtectedMinutes: 240, restMinutes: 30 } }).template(),
      );
      expect(both).toEqual([
        { Name: 'TASK_PROTECTION_MAX_MINUTES', Value: '240' },
        { Name: 'TASK_PROTECTION_REST_MINUTES', Value: '30' },
      ]);
      // What the worker does with that environment at start: a valid budget, no throw.
      const env = Object.fromEntries(both.map((e) => [e.Name, String(e.Value)]));
      expect(
        EcsTaskProtection.fromEnv({ ...env, ECS_AGENT_URI: 'http://169.254.170.2/api/x' }),
      ).toBeInstanceOf(EcsTaskProtection);
    });

    it.each<[string, Options, RegExp]>([
      [
        'maxProtectedMinutes 0',
        { taskProtection: { maxProtectedMinutes: 0 } },
        /taskProtection.maxProtectedMinutes must be an integer from 1 to 2880; got 0/,
      ],
      [
        "maxProtectedMinutes 2881 (past ECS's 48 hours)",
        { taskProtection: { maxProtectedMinutes: 2881 } },
        /taskProtection.maxProtectedMinutes must be an integer from 1 to 2880; got 2881/,
      ],
      [
        'restMinutes -1',
        { taskProtection: { restMinutes: -1 } },
        /taskProtection.restMinutes must be an integer from 0 to 2880; got -1/,
      ],
      [
        'restMinutes 1.5',
        { taskProtection: { restMinutes: 1.5 } },
        /taskProtection.restMinutes must be an integer from 0 to 2880; got 1.5/,
      ],
    ])('rejects %s', (_name, options, message) => {
      expect(() => sidebandIn(options)).toThrow(PropsError);
      expect(() => sidebandIn(options)).toThrow(message);
    });
  });

  it.each<[string, Options | ((stack: Stack) => Options), RegExp]>([
    ['minTasks -1', { minTasks: -1 }, /minTasks must be an integer of at least 0/],
    ['maxTasks 0', { maxTasks: 0 }, /maxTasks must be an integer of at least 1/],
    [
      'maxTasks < minTasks',
      { minTasks: 3, maxTasks: 2 },
      /maxTasks must be an integer of at least 3 \(at least 1 and at least minTasks\)/,
    ],
    ['cpu 300', { cpu: 300 }, /cpu must be one of 256, 512, 1024, 2048, 4096; got 300/],
    ['memoryMiB 256', { memoryMiB: 256 }, /memoryMiB must be an integer of at least 512/],
    [
      'cpuTargetPercent 95',
      { cpuTargetPercent: 95 },
      /cpuTargetPercent must be an integer from 10 to 90; got 95/,
    ],
    [
      'cpu/memory mismatch',
      { cpu: 1024, memoryMiB: 512 },
      /memoryMiB 512 is not a size Fargate offers with cpu 1024 \(2048 to 8192 in steps of 1024\)/,
    ],
    [
      'vpcSubnets without vpc',
      { vpcSubnets: { subnetType: SubnetType.PUBLIC } },
      /vpcSubnets needs vpc/,
    ],
    [
      'dlqRetention 15 days',
      { dlqRetention: Duration.days(15) },
      /dlqRetention must be between 1 minute and 14 days/,
    ],
    [
      'http base URL',
      { openAiBaseUrl: 'http://api.openai.com/v1' },
      /openAiBaseUrl must be an https:\/\/ URL/,
    ],
    [
      'bad log level',
      { logging: { logLevel: 'verbose' as never } },
      /logging.logLevel must be one of/,
    ],
    [
      'no tool functions',
      { toolFunctions: [] },
      /callsConfig.tools.lookup_order.functionName is none of toolFunctions/,
    ],
    [
      'an extra tool function',
      (stack) => ({
        toolFunctions: [stack.node.findChild('LookupOrder') as LambdaFunction, handlerIn(stack)],
      }),
      /toolFunctions\[1\] backs no tool in callsConfig.tools/,
    ],
  ])('rejects %s', (_name, options, message) => {
    expect(() => sidebandIn(options)).toThrow(PropsError);
    expect(() => sidebandIn(options)).toThrow(message);
    expect(() => sidebandIn(options)).toThrow(/^SidebandService 'Sideband' has invalid props/);
  });

  it('rejects an invalid or oversized calls config', () => {
    const { stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    const apiKeySecret = Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key');
    const { config, tool } = callsFixture(stack);
    const make = (id: string, callsConfig: SidebandServiceProps['callsConfig']) =>
      new SidebandService(stack, id, { store, apiKeySecret, callsConfig, toolFunctions: [tool] });
    expect(() => make('A', { ...config, policy: { ...config.policy, rejectStatus: 200 } })).toThrow(
      /callsConfig: calls.rejectStatus must be a SIP status/,
    );
    expect(() => make('B', { ...config, transferTargets: { x: 'https://example.com' } })).toThrow(
      /callsConfig: calls.transferTargets.x must be a sip: or tel: URI/,
    );
    expect(() =>
      make('D', { ...config, policy: { ...config.policy, callers: { deny: ['sip:+1900*'] } } }),
    ).toThrow(/callsConfig: calls.callers.deny\[0\] "sip:\+1900\*" must be an E.164 number/);
    expect(() =>
      make('E', { ...config, policy: { ...config.policy, deny: ['+1900*'] } as never }),
    ).toThrow(/callsConfig: calls.deny is no longer supported/);
    const long = {
      ...config,
      policy: {
        ...config.policy,
        sessions: {
          default: { ...config.policy.sessions.default, instructions: 'Be helpful. '.repeat(300) },
        },
      },
    };
    expect(() => make('C', long)).toThrow(
      /callsConfig: calls config is about \d+ bytes[\s\S]*4 KB/,
    );
  });

  it('lets unresolved tokens through', () => {
    expect(() =>
      sidebandIn((stack) => ({
        maxTasks: new CfnParameter(stack, 'MaxTasks', { type: 'Number' }).valueAsNumber,
        memoryMiB: new CfnParameter(stack, 'Memory', { type: 'Number' }).valueAsNumber,
      })),
    ).not.toThrow();
  });
});
