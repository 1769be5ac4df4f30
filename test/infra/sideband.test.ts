import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Vpc } from 'aws-cdk-lib/aws-ec2';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import type { CallsProps } from '../../lib/calls-config';
import {
  OpenAiWebhooksStack,
  type OpenAiWebhooksStackProps,
} from '../../lib/openai-webhooks-stack';
import { nagFindings } from './app';

const SESSION = {
  model: 'gpt-realtime-2.1',
  instructions: 'Be brief.',
  voice: 'marin' as const,
  greeting: 'Hello!',
  tools: ['lookup_order'],
};

function callsApp(calls: Partial<CallsProps> = {}, extra: OpenAiWebhooksStackProps = {}) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const tools = new Stack(app, 'Tools');
  const fn = new LambdaFunction(tools, 'LookupOrder', {
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('exports.handler = async () => ({})'),
  });
  const stack = new OpenAiWebhooksStack(app, 'Calls', {
    ...extra,
    calls: {
      sessions: { default: SESSION },
      tools: [
        {
          name: 'lookup_order',
          description: 'Find an order.',
          parameters: { type: 'object', properties: { id: { type: 'string' } } },
          function: fn,
          timeout: Duration.seconds(3),
        },
      ],
      transferTargets: { support: 'sip:support@example.com' },
      ...calls,
    },
  });
  return { app, stack, template: Template.fromStack(stack) };
}

describe('SidebandService', () => {
  const { template, app, stack } = callsApp();

  it('runs on Fargate ARM64, 0.25 vCPU / 512 MiB, with a 120 s stop timeout and a health check', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [
        Match.objectLike({
          StopTimeout: 120,
          HealthCheck: Match.objectLike({ Command: Match.arrayWith(['CMD', 'node']) }),
          Environment: Match.arrayWith([
            Match.objectLike({ Name: 'CALLS_CONFIG' }),
            Match.objectLike({ Name: 'OPENAI_API_KEY_SECRET_ID' }),
          ]),
        }),
      ],
    });
  });

  it('keeps one task warm, deploys with 100 % minimum healthy and the circuit breaker, in public subnets with no inbound', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      // No DesiredCount: a deploy must not reset the running task count (auto scaling owns it).
      DesiredCount: Match.absent(),
      LaunchType: 'FARGATE',
      DeploymentConfiguration: Match.objectLike({
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      }),
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }),
      },
    });
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    const groups = template.findResources('AWS::EC2::SecurityGroup', {
      Properties: { GroupDescription: Match.stringLikeRegexp('Sideband') },
    });
    for (const group of Object.values(groups))
      expect(group.Properties.SecurityGroupIngress).toBeUndefined();
  });

  it('scales on active calls per task and on CPU, between the min and max', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 1,
      MaxCapacity: 10,
    });
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalingPolicy', 2);
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 60,
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      }),
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 120,
        CustomizedMetricSpecification: Match.objectLike({
          MetricName: 'ActiveCalls',
          Namespace: 'OpenAiWebhooks',
          Statistic: 'Average',
        }),
      }),
    });
  });

  it('has a signal queue with a DLQ, and an alarm on it', () => {
    template.resourceCountIs('AWS::SQS::Queue', 14);
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.some((a) => String(a.Properties.AlarmDescription).includes('Call signals'))).toBe(
      true,
    );
  });

  it('lets the task role protect its own tasks from scale-in, and nothing else of ECS', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('SidebandTaskTaskRole') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['ecs:GetTaskProtection', 'ecs:UpdateTaskProtection'],
            Resource: {
              'Fn::Join': [
                '',
                Match.arrayWith([
                  Match.stringLikeRegexp(':task/$'),
                  { Ref: Match.stringLikeRegexp('SidebandCluster') },
                  '/*',
                ]),
              ],
            },
          }),
        ]),
      },
    });
  });

  it('gives the realtime consumer, which answers calls, a 10 s timeout and a 60 s visibility timeout', () => {
    const realtime = template.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: Match.objectLike({ CATEGORY: 'realtime' }) } },
    });
    expect(Object.values(realtime).map((f) => f.Properties.Timeout)).toEqual([10]);
    template.resourcePropertiesCountIs('AWS::SQS::Queue', { VisibilityTimeout: 60 }, 1);
    template.resourcePropertiesCountIs('AWS::SQS::Queue', { VisibilityTimeout: 360 }, 5);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: Match.stringLikeRegexp('FanoutRealtimeConsumer') },
      MaximumBatchingWindowInSeconds: Match.absent(),
    });
  });

  it('gives the task role least privilege: its queue, the table, the API key, and the tool functions', () => {
    const roles = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('SidebandTaskTaskRole') }] },
    });
    const actions = Object.values(roles).flatMap((p) =>
      (p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]).flatMap((s) =>
        [s.Action].flat(),
      ),
    );
    expect(actions).toEqual(
      expect.arrayContaining([
        'sqs:ReceiveMessage',
        'sqs:SendMessage',
        'dynamodb:PutItem',
        'secretsmanager:GetSecretValue',
        'lambda:InvokeFunction',
      ]),
    );
    expect(actions.some((a) => a.endsWith(':*') || a === '*')).toBe(false);
  });

  it('wires the incoming-call handler: calls config, signal queue, API key', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          CATEGORY: 'realtime',
          CALLS_CONFIG: Match.anyValue(),
          SIGNAL_QUEUE_URL: Match.anyValue(),
        }),
      },
    });
  });

  it('builds the image from containers/sideband without Docker at synth', () => {
    const assembly = app.synth();
    const manifest = JSON.parse(
      readFileSync(path.join(assembly.directory, 'Calls.assets.json'), 'utf8'),
    ) as { dockerImages: Record<string, { source: { dockerFile?: string; platform?: string } }> };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]?.source).toMatchObject({
      dockerFile: 'containers/sideband/Dockerfile',
      platform: 'linux/arm64',
    });
  });

  it('has zero unacknowledged cdk-nag findings', () => {
    expect(nagFindings(stack)).toEqual([]);
  });
});

describe('call props', () => {
  it('scale-to-zero lets the incoming-call handler raise the service', () => {
    const { template } = callsApp({ service: { minTasks: 0 } });
    template.hasResourceProperties('AWS::ECS::Service', { DesiredCount: Match.absent() });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 0,
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          ECS_CLUSTER: Match.anyValue(),
          ECS_SERVICE: Match.anyValue(),
        }),
      },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: ['ecs:DescribeServices', 'ecs:UpdateService'] }),
        ]),
      },
    });
  });

  it('uses the private subnets of an existing VPC, without public IPs', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const network = new Stack(app, 'Network');
    const vpc = new Vpc(network, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const stack = new OpenAiWebhooksStack(app, 'Private', {
      calls: { sessions: { default: { ...SESSION, tools: [] } }, service: { vpc } },
    });
    Template.fromStack(stack).hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }),
      },
    });
  });

  it.each([
    [{ sessions: { default: { ...SESSION, voice: 'robot' as never } } }, /voice/],
    [
      {
        sessions: {
          default: { ...SESSION, turnDetection: { type: 'server_vad', threshold: 0.5 } as never },
        },
      },
      /threshold is rejected/,
    ],
    [{ sessions: { default: { ...SESSION, tools: ['nope'] } } }, /uses tool "nope"/],
    [{ transferTargets: { x: 'https://example.com' } }, /sip: or tel:/],
    [{ wrapUpAfter: Duration.minutes(61) }, /60-minute/],
    [{ rejectStatus: 200 }, /rejectStatus/],
    [{ service: { minTasks: 3, maxTasks: 2 } }, /maxTasks/],
    [{ service: { cpu: 300 } }, /Fargate size/],
    [
      { service: { taskProtection: { maxProtectedMinutes: 0 } } },
      /calls.service.taskProtection.maxProtectedMinutes must be an integer from 1 to 2880; got 0/,
    ],
    [
      { service: { taskProtection: { restMinute: 5 } as never } },
      /Unknown prop "calls.service.taskProtection.restMinute": did you mean "calls.service.taskProtection.restMinutes"\?/,
    ],
  ])('throws at synth on bad call props %#', (calls, message) => {
    expect(() => callsApp(calls as Partial<CallsProps>)).toThrow(message);
  });

  it('passes calls.service.taskProtection to the workers, only the values given', () => {
    const { template: given } = callsApp({
      service: { taskProtection: { maxProtectedMinutes: 120 } },
    });
    given.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([{ Name: 'TASK_PROTECTION_MAX_MINUTES', Value: '120' }]),
        }),
      ],
    });
    const names = JSON.stringify(given.findResources('AWS::ECS::TaskDefinition'));
    expect(names).not.toContain('TASK_PROTECTION_REST_MINUTES');
    const { template: none } = callsApp();
    expect(JSON.stringify(none.findResources('AWS::ECS::TaskDefinition'))).not.toContain(
      'TASK_PROTECTION_',
    );
  });

  it('refuses a calls config too large for the Lambda environment (4 KB)', () => {
    expect(() =>
      callsApp({ sessions: { default: { ...SESSION, instructions: 'Be helpful. '.repeat(300) } } }),
    ).toThrow(/4 KB/);
  });

  it('needs the OpenAI API key secret', () => {
    expect(() => callsApp({}, { openAiApiKeySecretName: null })).toThrow(
      /calls needs openAiApiKeySecretName/,
    );
  });
});
