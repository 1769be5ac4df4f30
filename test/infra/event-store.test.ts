import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { EventStore } from '../../lib/constructs/event-store';
import { PropsError } from '../../lib/constructs/validation';
import { nagFindings } from './app';
import { bareStack, expectContained } from './constructs';

function inlineFunction(scope: Construct, id: string): LambdaFunction {
  return new LambdaFunction(scope, id, {
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('exports.handler = async () => {}'),
  });
}

function statementsOf(template: Template, rolePattern: string): { Action: string | string[] }[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: Match.stringLikeRegexp(rolePattern) }] },
  });
  return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('EventStore', () => {
  it('creates one on-demand, encrypted table with point-in-time recovery, TTL and the category index, retained by default', () => {
    const { stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::DynamoDB::GlobalTable', 1);
    template.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        GlobalSecondaryIndexes: [Match.objectLike({ IndexName: 'eventsByCategory' })],
        Replicas: [
          Match.objectLike({
            PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          }),
        ],
      }),
    });
    expect(stack.resolve(store.tableName)).toEqual({ Ref: expect.stringMatching(/^StoreTable/) });
    expectContained(stack, store);
  });

  it('follows the removal policy it is given', () => {
    const { stack } = bareStack();
    new EventStore(stack, 'Store', { removalPolicy: RemovalPolicy.DESTROY });
    Template.fromStack(stack).hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Delete',
    });
  });

  it('turns deletion protection on with RETAIN, and off otherwise', () => {
    const protection = (removalPolicy?: RemovalPolicy) => {
      const { stack } = bareStack();
      new EventStore(stack, 'Store', removalPolicy ? { removalPolicy } : {});
      const [table] = Object.values(
        Template.fromStack(stack).findResources('AWS::DynamoDB::GlobalTable'),
      );
      return table?.Properties.Replicas[0].DeletionProtectionEnabled;
    };
    expect(protection()).toBe(true);
    expect(protection(RemovalPolicy.RETAIN)).toBe(true);
    expect(protection(RemovalPolicy.DESTROY)).toBe(false);
    expect(protection(RemovalPolicy.SNAPSHOT)).toBe(false);
  });

  it('keeps claim-checked bodies in an encrypted, TLS-only, private bucket that expires them with the events', () => {
    const { app, stack } = bareStack();
    const store = new EventStore(stack, 'Store', { eventRetention: Duration.days(30) });
    // The writer may only put, the reader only get, objects under payloads/.
    const writer = inlineFunction(stack, 'Writer');
    const reader = inlineFunction(stack, 'Reader');
    store.bindPayloadWriter(writer);
    store.bindPayloadReader(reader);
    store.acknowledgePayloadGrant(writer);
    store.acknowledgePayloadGrant(reader);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
          ],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        LifecycleConfiguration: { Rules: [{ ExpirationInDays: 30, Status: 'Enabled' }] },
      }),
    });
    // enforceSSL: a bucket policy denying requests without TLS.
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
    const bound = template;
    const actions = (role: string) => statementsOf(bound, role).flatMap((s) => [s.Action].flat());
    expect(actions('^WriterServiceRole')).toEqual(['s3:PutObject']);
    expect(actions('^ReaderServiceRole')).toEqual(['s3:GetObject']);
    bound.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: { PAYLOAD_BUCKET: { Ref: Match.stringLikeRegexp('^StorePayloads') } },
      },
    });
    // Nothing about the bucket or its grants (the inline test functions have findings of their own).
    expect(nagFindings(app).filter((f) => f.includes('/Store/') || f.includes('IAM5'))).toEqual([]);
  });

  it('removes the bucket with the table on DESTROY', () => {
    const { stack } = bareStack();
    new EventStore(stack, 'Store', { removalPolicy: RemovalPolicy.DESTROY });
    Template.fromStack(stack).hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete' });
  });

  it('binds a function read/write with TABLE_NAME, and the ingress to GetItem and PutItem only', () => {
    const { stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    const consumer = inlineFunction(stack, 'Consumer');
    const ingress = inlineFunction(stack, 'Ingress');
    store.bindReadWrite(consumer);
    store.bindWebhookLedger(ingress);
    const template = Template.fromStack(stack);
    for (const id of ['Consumer', 'Ingress']) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Role: { 'Fn::GetAtt': [Match.stringLikeRegexp(`^${id}ServiceRole`), 'Arn'] },
        Environment: { Variables: { TABLE_NAME: { Ref: Match.stringLikeRegexp('^StoreTable') } } },
      });
    }
    const consumerActions = statementsOf(template, '^ConsumerServiceRole').flatMap((s) =>
      [s.Action].flat(),
    );
    expect(consumerActions).toEqual(
      expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:DeleteItem']),
    );
    const ingressActions = statementsOf(template, '^IngressServiceRole').flatMap((s) =>
      [s.Action].flat(),
    );
    // Issue 12: the ingress reads and puts event heads (written once, never updated), which
    // live as long as the events: it gets the retention too.
    expect(ingressActions.sort()).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Role: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IngressServiceRole'), 'Arn'] },
      Environment: { Variables: { EVENT_TTL_SECONDS: String(90 * 24 * 3600) } },
    });
  });

  it('grants read, and read/write, to any grantee', () => {
    const { stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    const reader = new Role(stack, 'Reader', {
      assumedBy: new ServicePrincipal('ecs.amazonaws.com'),
    });
    const writer = new Role(stack, 'Writer', {
      assumedBy: new ServicePrincipal('ecs.amazonaws.com'),
    });
    store.grantReadData(reader);
    store.grantReadWriteData(writer);
    const template = Template.fromStack(stack);
    const readerActions = statementsOf(template, '^Reader').flatMap((s) => [s.Action].flat());
    expect(readerActions).toContain('dynamodb:GetItem');
    expect(readerActions).not.toContain('dynamodb:PutItem');
    const writerActions = statementsOf(template, '^Writer').flatMap((s) => [s.Action].flat());
    expect(writerActions).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:PutItem']));
  });

  it('acknowledges the index wildcard of its grants on the grantee, with a reason', () => {
    const { app, stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    const fn = inlineFunction(stack, 'Consumer');
    store.bindReadWrite(fn);
    store.acknowledgeIndexGrant(fn);
    const acknowledged = fn.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.keys(m.data as Record<string, unknown>));
    expect(acknowledged).toEqual([
      expect.stringMatching(/AwsSolutions-IAM5\[Resource::<StoreTable.*\.Arn>\/index\/\*\]$/),
    ]);
    expect(
      nagFindings(app).filter(
        (f) => f.includes('IAM5') && f.includes('Consumer/ServiceRole/DefaultPolicy'),
      ),
    ).toEqual([]);
  });

  it('has metrics for throttles and system errors', () => {
    const { stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    expect(store.metricThrottledRequests()).toBeDefined();
    expect(store.metricSystemErrors()).toBeDefined();
  });

  it('rejects a removal policy it does not know, naming itself and the prop', () => {
    const { stack } = bareStack();
    expect(() => new EventStore(stack, 'Store', { removalPolicy: 'keep' as never })).toThrow(
      PropsError,
    );
    expect(
      () => new EventStore(bareStack().stack, 'Store', { removalPolicy: 'keep' as never }),
    ).toThrow(/EventStore 'Store' has invalid props:\n- removalPolicy must be one of/);
  });
});
