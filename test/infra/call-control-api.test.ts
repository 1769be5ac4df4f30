import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { appConfig } from '../../examples/app-config';
import type { ApiAuth } from '../../lib/constructs/api-auth';
import { CallControlApi, type CallControlOptions } from '../../lib/constructs/call-control-api';
import { EventStore } from '../../lib/constructs/event-store';
import { SidebandService } from '../../lib/constructs/sideband-service';
import { PropsError } from '../../lib/constructs/validation';
import { OpenAiWebhooksStack } from '../../lib/openai-webhooks-stack';
import { nagFindings } from './app';
import { bareStack, callsFixture } from './constructs';

/** Construct tests of the call-control API (issue 16): routes, auth, grants, worker permissions. */

function apiIn(options: CallControlOptions = {}) {
  const { app, stack } = bareStack();
  const store = new EventStore(stack, 'Store');
  const apiKeySecret = Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key');
  const { config, tool } = callsFixture(stack);
  const sideband = new SidebandService(stack, 'Sideband', {
    store,
    apiKeySecret,
    callsConfig: config,
    toolFunctions: [tool],
  });
  const control = new CallControlApi(stack, 'CallControl', {
    store,
    sideband,
    callsConfig: config,
    ...options,
  });
  return { app, stack, control, template: () => Template.fromStack(stack) };
}

function ownFindings(app: Parameters<typeof nagFindings>[0]): string[] {
  return nagFindings(app).filter((f) => !f.includes('/LookupOrder/'));
}

function routes(template: Template) {
  return Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map(
    (r) => r.Properties as { RouteKey: string; AuthorizationType: string },
  );
}

describe('CallControlApi', () => {
  it('IAM by default: both routes SigV4, throttled, access-logged; cdk-nag clean', () => {
    const { app, template: t } = apiIn();
    const template = t();
    expect(
      routes(template)
        .map((r) => [r.RouteKey, r.AuthorizationType])
        .sort(),
    ).toEqual([
      ['GET /calls/{call_id}/commands/{id}', 'AWS_IAM'],
      ['POST /calls/{call_id}/commands', 'AWS_IAM'],
    ]);
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
      AccessLogSettings: { DestinationArn: Match.anyValue() },
    });
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
    expect(ownFindings(app)).toEqual([]);
  });

  it('grantCallControl allows execute-api:Invoke on both routes, and nothing else', () => {
    const { app, stack, control, template: t } = apiIn();
    const caller = new Role(stack, 'Caller', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    });
    expect(control.grantCallControl(caller)).toHaveLength(2);
    const template = t();
    const policies = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) =>
      id.startsWith('CallerDefaultPolicy'),
    );
    const text = JSON.stringify(policies);
    expect(text).toContain('execute-api:Invoke');
    expect(text).toContain('/POST/calls/*/commands');
    expect(text).toContain('/GET/calls/*/commands/*');
    expect(text).not.toContain('sqs:');
    expect(text).not.toContain('dynamodb:');
    expect(ownFindings(app)).toEqual([]);
  });

  it('bindCallControl gives a tool function the URL and the grant', () => {
    const { stack, control, template: t } = apiIn();
    const fn = new LambdaFunction(stack, 'UserTool', {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('exports.handler = async () => ({})'),
    });
    control.bindCallControl(fn);
    const template = t();
    const tool = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) =>
      id.startsWith('UserTool'),
    )?.[1] as { Properties: { Environment: { Variables: Record<string, unknown> } } };
    expect(Object.keys(tool.Properties.Environment.Variables)).toContain('CALL_CONTROL_URL');
  });

  it('the workers get the queue prefix and may create, read and delete only queues of it', () => {
    const { control, template: t } = apiIn();
    const template = t();
    expect(control.queuePrefix).toMatch(/^owh-ctl-[a-z0-9]{8}-$/);
    const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as {
      Properties: { ContainerDefinitions: { Environment: { Name: string; Value: unknown }[] }[] };
    };
    expect(task.Properties.ContainerDefinitions[0]?.Environment).toContainEqual({
      Name: 'CONTROL_QUEUE_PREFIX',
      Value: control.queuePrefix,
    });
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('sqs:CreateQueue');
    expect(policies).toContain(`:${control.queuePrefix}*`);
    // The function sends nudges only.
    const fnPolicy = Object.entries(template.findResources('AWS::IAM::Policy')).find(([id]) =>
      id.startsWith('CallControlHandler'),
    );
    expect(JSON.stringify(fnPolicy)).toContain('sqs:SendMessage');
    expect(JSON.stringify(fnPolicy)).not.toContain('sqs:CreateQueue');
  });

  it('JWT: both routes behind one JWT authorizer; nothing to grant', () => {
    const jwt: ApiAuth = {
      jwt: { issuer: 'https://issuer.example.com', audience: ['ops-console'], scopes: ['calls'] },
    };
    const { app, stack, control, template: t } = apiIn({ auth: jwt });
    const template = t();
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    expect(routes(template).map((r) => r.AuthorizationType)).toEqual(['JWT', 'JWT']);
    expect(
      control.grantCallControl(
        new Role(stack, 'R', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') }),
      ),
    ).toEqual([]);
    expect(ownFindings(app)).toEqual([]);
  });

  it('open: no auth, a loud warning, the finding acknowledged with a reason', () => {
    const { app, stack, template: t } = apiIn({ auth: 'open' });
    expect(routes(t()).map((r) => r.AuthorizationType)).toEqual(['NONE', 'NONE']);
    expect(
      Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('OPEN')).length,
    ).toBeGreaterThanOrEqual(1);
    expect(ownFindings(app)).toEqual([]);
  });

  it("metricCommands: the workers' EMF command metrics for this stack, by Action or Reason", () => {
    const { stack, control } = apiIn();
    const applied = control.metricCommands('CallCommandsApplied', {
      dimension: { name: 'Action', value: 'say' },
    });
    expect(applied.namespace).toBe('OpenAiWebhooks');
    expect(applied.metricName).toBe('CallCommandsApplied');
    expect(applied.statistic).toBe('Sum');
    expect(applied.dimensions).toEqual({ Stack: stack.stackName, Action: 'say' });
    const latency = control.metricCommands('CallCommandLatency');
    expect(latency.statistic).toBe('p95');
    expect(latency.dimensions).toEqual({ Stack: stack.stackName });
    expect(
      control.metricCommands('CallCommandsRefused', {
        dimension: { name: 'Reason', value: 'no_active_response' },
        statistic: 'Sum',
      }).dimensions,
    ).toEqual({ Stack: stack.stackName, Reason: 'no_active_response' });
  });

  it('validates its props', () => {
    expect(() => apiIn({ auth: 'public' as never })).toThrow(PropsError);
    expect(() => apiIn({ throttle: { rateLimit: 0, burstLimit: 10 } })).toThrow(
      /throttle.rateLimit/,
    );
  });
});

describe('the stack with call control', () => {
  const SESSION = {
    model: 'gpt-realtime-2.1',
    instructions: 'Be brief.',
    voice: 'marin' as const,
    greeting: 'Hello!',
  };

  it('composes the API with callControl: {}, cdk-nag clean, with the URL as an output', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new OpenAiWebhooksStack(app, 'Controlled', {
      calls: { sessions: { default: SESSION } },
      callControl: {},
    });
    const template = Template.fromStack(stack);
    template.hasOutput('CallControlUrl', Match.anyValue());
    expect(stack.callControl?.auth).toBe('iam');
    expect(nagFindings(app)).toEqual([]);
    // The operations dashboard has a call-control row: the workers' command metrics and latency.
    const body = JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'));
    expect(body).toContain('### Call control');
    for (const name of [
      'CallCommandsApplied',
      'CallCommandsRefused',
      'CallCommandsFailed',
      'CallCommandLatency',
    ])
      expect(body).toContain(name);
    expect(body).toContain('accept → applied p99');
  });

  it('has no call-control row on the dashboard without callControl', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new OpenAiWebhooksStack(app, 'Uncontrolled', {
      calls: { sessions: { default: SESSION } },
    });
    const body = JSON.stringify(
      Template.fromStack(stack).findResources('AWS::CloudWatch::Dashboard'),
    );
    expect(body).toContain('### Phone calls');
    expect(body).not.toContain('Call control');
    expect(body).not.toContain('CallCommandsApplied');
  });

  it("the examples' app config (the calls template that cfn-lint reads) has call control, a WebRTC endpoint behind IAM, and the webhook endpoint registered and rotated", () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new OpenAiWebhooksStack(app, 'Examples', appConfig);
    const template = Template.fromStack(stack);
    expect(
      routes(template)
        .map((r) => [r.RouteKey, r.AuthorizationType])
        .sort(),
    ).toEqual([
      ['GET /calls/{call_id}/commands/{id}', 'AWS_IAM'],
      ['POST /calls/{call_id}/attach', 'AWS_IAM'],
      ['POST /calls/{call_id}/commands', 'AWS_IAM'],
      ['POST /session', 'AWS_IAM'],
    ]);
    expect(stack.webhookEndpoint).toBeDefined();
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.hasOutput('CallControlUrl', Match.anyValue());
    expect(nagFindings(app)).toEqual([]);
  });

  it('refuses callControl without calls', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(() => new OpenAiWebhooksStack(app, 'NoCalls', { callControl: {} })).toThrow(
      /callControl needs calls/,
    );
  });
});
