import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { appConfig } from '../../examples/app-config';
import { CallTool } from '../../lib/calls-config';
import { CallToolFunction } from '../../lib/constructs/call-tool-function';
import { OpenAiWebhooksStack } from '../../lib/openai-webhooks-stack';
import { nagFindings } from './app';

const bundlingSkipped = () => new App({ context: { 'aws:cdk:bundling-stacks': [] } });

describe('CallToolFunction', () => {
  it('alone: a nodejs22.x function of its own, timed out when the call stops waiting, invokable only as granted', () => {
    const app = bundlingSkipped();
    const stack = new Stack(app, 'Alone');
    const tool = new CallToolFunction(stack, 'Lookup', {
      entry: 'examples/tools/lookup-order.ts',
      toolName: 'lookup_order',
      timeout: Duration.millis(2500),
    });
    const worker = new Role(stack, 'Worker', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
    });
    tool.grantInvoke(worker);
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Handler: 'index.handler',
      Timeout: 3,
      MemorySize: 256,
      Description: Match.stringLikeRegexp('lookup_order'),
    });
    // The unqualified ARN only: no `:*` (every version and alias).
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('Worker') }],
      PolicyDocument: {
        Statement: [
          {
            Action: 'lambda:InvokeFunction',
            Effect: 'Allow',
            Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('LookupTool'), 'Arn'] },
          },
        ],
      },
    });
    expect(nagFindings(stack)).toEqual([]);
  });

  it('refuses a missing entry, a bad name and a timeout past 60 s, naming each', () => {
    const stack = new Stack(bundlingSkipped(), 'Bad');
    expect(
      () =>
        new CallToolFunction(stack, 'Bad', {
          entry: 'examples/tools/nope.ts',
          toolName: 'look up',
          timeout: Duration.seconds(90),
        }),
    ).toThrow(
      /entry must be an existing file[\s\S]*toolName must be[\s\S]*timeout must be between/,
    );
  });
});

describe('CallTool.fromEntry in the stack', () => {
  const app = bundlingSkipped();
  // The examples' app config: lookup_order and check_warranty, both CallTool.fromEntry.
  const stack = new OpenAiWebhooksStack(app, 'Examples', appConfig);
  const template = Template.fromStack(stack);

  it('builds one Lambda function per tool, and the sideband task role may invoke exactly those', () => {
    const tools = template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('phone-call tool') },
    });
    expect(Object.keys(tools)).toHaveLength(2);
    const toolIds = Object.keys(tools).sort();
    const invokes = Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap(
        (p) =>
          (
            p as {
              Properties: {
                PolicyDocument: { Statement: { Action: unknown; Resource: unknown }[] };
              };
            }
          ).Properties.PolicyDocument.Statement,
      )
      .filter((s) => s.Action === 'lambda:InvokeFunction');
    const resources = invokes
      .flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]))
      .map((r) => (r as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0])
      .sort();
    expect(resources).toEqual(toolIds);
  });

  it('names each tool function by its ARN in the calls config the workers and the incoming-call handler read', () => {
    const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as {
      Properties: { ContainerDefinitions: { Environment: { Name: string; Value: unknown }[] }[] };
    };
    const env = task.Properties.ContainerDefinitions[0]?.Environment ?? [];
    const callsConfig = JSON.stringify(env.find((e) => e.Name === 'CALLS_CONFIG')?.Value);
    expect(callsConfig).toMatch(/CallToollookuporder/);
    expect(callsConfig).toMatch(/CallToolcheckwarranty/);
  });

  it('has no unacknowledged cdk-nag finding', () => {
    expect(nagFindings(stack)).toEqual([]);
  });

  it('defaults the tool name to the file name with _ for -', () => {
    const tool = CallTool.fromEntry('examples/tools/lookup-order.ts', {
      description: 'x',
      parameters: { type: 'object' },
    });
    expect(tool.name).toBe('lookup_order');
  });
});
