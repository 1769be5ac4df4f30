import * as path from 'node:path';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { describe, expect, it } from 'vitest';
import { UserHandler } from '../../lib/config';
import { OpenAiWebhooksStack } from '../../lib/openai-webhooks-stack';
import { nagFindings, synthStack } from './app';

const template = Template.fromStack(synthStack().stack);

describe('EventStore', () => {
  it('is on-demand, encrypted, with point-in-time recovery and TTL, and retained by default', () => {
    template.resourceCountIs('AWS::DynamoDB::GlobalTable', 1);
    template.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        Replicas: [
          Match.objectLike({
            PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          }),
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    });
  });

  it('follows a DESTROY removal policy when asked', () => {
    const t = Template.fromStack(synthStack({ removalPolicy: RemovalPolicy.DESTROY }).stack);
    t.hasResource('AWS::DynamoDB::GlobalTable', { DeletionPolicy: 'Delete' });
  });
});

describe('CategoryFanout', () => {
  it('creates a queue and a DLQ per category, all encrypted', () => {
    template.resourceCountIs('AWS::SQS::Queue', 12);
    const queues = template.findResources('AWS::SQS::Queue');
    for (const queue of Object.values(queues))
      expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
  });

  it('redrives to the DLQ after 5 receives by default, and per category when set', () => {
    template.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }) },
      6,
    );
    const t = Template.fromStack(
      synthStack({ categories: { batch: { maxReceiveCount: 9 } } }).stack,
    );
    t.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { RedrivePolicy: Match.objectLike({ maxReceiveCount: 9 }) },
      1,
    );
  });

  it('denies every non-TLS request on every queue', () => {
    const policies = template.findResources('AWS::SQS::QueuePolicy');
    expect(Object.keys(policies)).toHaveLength(12);
    for (const policy of Object.values(policies)) {
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });

  it('sets the visibility timeout to six times the consumer timeout', () => {
    template.resourcePropertiesCountIs('AWS::SQS::Queue', { VisibilityTimeout: 360 }, 6);
  });

  it('wires each consumer with partial batch failure reporting', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 6);
    template.allResourcesProperties('AWS::Lambda::EventSourceMapping', {
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: 10,
    });
  });

  it('runs consumers on nodejs22.x, ARM64, with their category', () => {
    for (const category of ['batch', 'fine_tuning', 'eval', 'response', 'realtime', 'other']) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Environment: { Variables: Match.objectLike({ CATEGORY: category }) },
      });
    }
  });

  it('invokes an existing Lambda as the user handler with a scoped grant', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const userStack = new Stack(app, 'User');
    const fn = new LambdaFunction(userStack, 'Mine', {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('exports.handler = async () => {}'),
    });
    const withUser = new OpenAiWebhooksStack(app, 'WithUser', {
      categories: { batch: { userHandler: UserHandler.fromFunction(fn) } },
    });
    const t = Template.fromStack(withUser);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ CATEGORY: 'batch', USER_HANDLER_FUNCTION: Match.anyValue() }),
      },
    });
    t.resourcePropertiesCountIs(
      'AWS::IAM::Policy',
      {
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Action: 'lambda:InvokeFunction' })]),
        },
      },
      1,
    );
  });

  it('bundles a user entry file into that category only', () => {
    const entry = path.resolve(import.meta.dirname, '../fixtures/user-handler.ts');
    const { stack } = synthStack({
      categories: { eval: { userHandler: UserHandler.fromEntry(entry, 'handle') } },
    });
    expect(stack.fanout.consumerOf('eval')).toBeDefined();
    expect(() =>
      synthStack({ categories: { eval: { userHandler: UserHandler.fromEntry('/nope.ts') } } }),
    ).toThrow(/does not exist/);
  });
});

describe('WebhookIngress', () => {
  it('is a public function URL (the signature is the authentication)', () => {
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
  });

  it('has reserved concurrency and its configuration in the environment', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      ReservedConcurrentExecutions: 50,
      MemorySize: 1024,
      Timeout: 10,
      Environment: {
        Variables: Match.objectLike({
          WEBHOOK_SECRET_ID: 'openai-webhooks/webhook-secret',
          WEBHOOK_TOLERANCE_SECONDS: '300',
          MAX_BODY_BYTES: '1048576',
          DEDUPE_TTL_SECONDS: String(7 * 24 * 3600),
          QUEUE_URLS: Match.anyValue(),
        }),
      },
    });
  });

  it('never puts a secret value in the environment', () => {
    const functions = template.findResources('AWS::Lambda::Function');
    for (const fn of Object.values(functions)) {
      expect(JSON.stringify(fn.Properties.Environment ?? {})).not.toMatch(/whsec_|sk-/);
    }
  });

  it('may only read and put event heads (the dedupe records) in DynamoDB', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('IngressHandlerRole') }] },
    });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[],
    );
    const dynamoActions = statements
      .flatMap((s) => [s.Action].flat())
      .filter((a) => a.startsWith('dynamodb:'));
    // Issue 12: read and put event heads (the dedupe records), nothing else.
    expect(dynamoActions.sort()).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
  });

  it('drops reserved concurrency when set to null', () => {
    const t = Template.fromStack(synthStack({ ingressReservedConcurrency: null }).stack);
    expect(JSON.stringify(t.toJSON())).not.toContain('ReservedConcurrentExecutions');
  });

  it('outputs the webhook URL and the table name', () => {
    template.hasOutput('WebhookUrl', {});
    template.hasOutput('TableName', {});
  });
});

describe('Alarms', () => {
  it('gives every DLQ an alarm, and every alarm an action', () => {
    const dlqs = Object.keys(
      template.findResources('AWS::SQS::Queue', { Properties: { RedrivePolicy: Match.absent() } }),
    );
    expect(dlqs).toHaveLength(6);
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    for (const dlq of dlqs) {
      const alarm = alarms.find((a) => JSON.stringify(a.Properties.Dimensions ?? []).includes(dlq));
      expect(alarm, `no alarm for ${dlq}`).toBeDefined();
    }
    for (const alarm of alarms) expect(alarm.Properties.AlarmActions).toHaveLength(1);
  });

  it('subscribes the alarm e-mail when given', () => {
    const t = Template.fromStack(synthStack({ alarmEmail: 'oncall@example.com' }).stack);
    t.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
  });
});

describe('the whole app', () => {
  it('has no resource without a purpose: every Lambda has a log group with retention', () => {
    const functions = template.findResources('AWS::Lambda::Function');
    expect(Object.keys(functions)).toHaveLength(7);
    template.resourceCountIs('AWS::Logs::LogGroup', 7);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('is environment-agnostic', () => {
    const { stack } = synthStack();
    expect(Stack.of(stack).environment).toBe('aws://unknown-account/unknown-region');
  });

  it('throws at synth on contradictory props', () => {
    expect(() => synthStack({ dedupeRetention: Duration.hours(1) })).toThrow(/72 hours/);
  });

  it('has zero unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(nagFindings(synthStack().app)).toEqual([]);
    expect(
      nagFindings(synthStack({ alarmEmail: 'a@example.com', openAiApiKeySecretName: null }).app),
    ).toEqual([]);
  });

  it('gives every acknowledgement a reason', () => {
    const { app } = synthStack();
    const acknowledgements = app.node
      .findAll()
      .flatMap((c) =>
        c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY),
      )
      .flatMap((m) => Object.entries(m.data as Record<string, unknown>));
    expect(acknowledgements.length).toBeGreaterThan(0);
    for (const [id, reason] of acknowledgements) {
      expect(id).toMatch(/AwsSolutions-/);
      expect(typeof reason === 'string' && reason.length > 40, `${id} needs a reason`).toBe(true);
    }
  });

  it('the nag check itself can fail (a bare queue is reported)', () => {
    const app = new App();
    new Queue(new Stack(app, 'Bare'), 'Q');
    expect(nagFindings(app)).toEqual(
      expect.arrayContaining([expect.stringContaining('AwsSolutions-SQS4')]),
    );
  });
});

describe('OpenAiWebhooksStack: alarm subscriber', () => {
  const warnings = (stack: Stack) =>
    stack.node
      .findAll()
      .flatMap((c) => c.node.metadata)
      .filter((m) => m.type === 'aws:cdk:warning')
      .map((m) => String(m.data));

  it('warns at synth when no alarmEmail is set, and not when one is', () => {
    expect(warnings(synthStack().stack).join('\n')).toMatch(/No alarmEmail is set/);
    expect(warnings(synthStack({ alarmEmail: 'ops@example.com' }).stack).join('\n')).not.toMatch(
      /No alarmEmail is set/,
    );
  });

  it('alarms on ingress throttles and table throttles, and graphs them', () => {
    const t = Template.fromStack(synthStack().stack);
    const names = Object.values(t.findResources('AWS::CloudWatch::Alarm')).map(
      (a) => a.Properties.AlarmName as string,
    );
    expect(names).toEqual(
      expect.arrayContaining([
        'Test-IngressThrottles',
        'Test-TableWriteThrottles',
        'Test-TableReadThrottles',
      ]),
    );
    const [dashboard] = Object.values(t.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties.DashboardBody);
    for (const metric of ['Throttles', 'WriteThrottleEvents', 'ReadThrottleEvents'])
      expect(body).toContain(metric);
  });
});
