import * as path from 'node:path';
import { CfnParameter, Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { CATEGORIES } from '#core/webhooks/categories';
import { UserHandler } from '../../lib/config';
import { CategoryFanout, type CategoryFanoutProps } from '../../lib/constructs/category-fanout';
import { EventStore } from '../../lib/constructs/event-store';
import { PropsError } from '../../lib/constructs/validation';
import { nagFindings } from './app';
import { bareStack, expectContained } from './constructs';

const USER_ENTRY = path.resolve(import.meta.dirname, '../fixtures/user-handler.ts');

function fanoutIn(props: Partial<CategoryFanoutProps> = {}) {
  const { app, stack } = bareStack();
  const store = new EventStore(stack, 'Store');
  const fanout = new CategoryFanout(stack, 'Fanout', { store, ...props });
  return { app, stack, store, fanout, template: Template.fromStack(stack) };
}

type Variables = Record<string, unknown>;
function variablesOf(template: Template, category: string): Variables {
  const fn = Object.values(template.findResources('AWS::Lambda::Function')).find(
    (f) => f.Properties.Environment?.Variables?.CATEGORY === category,
  );
  return fn?.Properties.Environment.Variables as Variables;
}

describe('CategoryFanout', () => {
  it('creates a queue, a DLQ and a consumer per category, with the defaults', () => {
    const { app, stack, store, fanout, template } = fanoutIn();
    template.resourceCountIs('AWS::SQS::Queue', 2 * CATEGORIES.length);
    template.resourceCountIs('AWS::Lambda::Function', CATEGORIES.length);
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', CATEGORIES.length);
    template.allResourcesProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumBatchingWindowInSeconds: Match.absent(),
      ScalingConfig: Match.absent(),
    });
    template.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { VisibilityTimeout: 360, RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }) },
      CATEGORIES.length,
    );
    template.allResourcesProperties('AWS::Lambda::Function', { MemorySize: 512, Timeout: 60 });
    for (const category of CATEGORIES) {
      expect(Object.keys(variablesOf(template, category))).toEqual([
        'NODE_OPTIONS',
        'STACK_NAME',
        'CATEGORY',
        'HYDRATE',
        'EVENT_TTL_SECONDS',
        'MAX_RECEIVE_COUNT',
        'LOG_LEVEL',
        'OPENAI_BASE_URL',
        'TABLE_NAME',
        'PAYLOAD_BUCKET',
      ]);
      // Without an API key, nothing hydrates.
      expect(variablesOf(template, category)).toMatchObject({
        HYDRATE: 'false',
        EVENT_TTL_SECONDS: String(90 * 24 * 3600),
        // The redrive policy's count: the consumer logs and counts its last failed attempt.
        MAX_RECEIVE_COUNT: '5',
        OPENAI_BASE_URL: 'https://api.openai.com/v1',
      });
      expect(fanout.maxReceiveCountOf(category)).toBe(5);
    }
    expectContained(stack, fanout, [store]);
    expect(nagFindings(app)).toEqual([]);
  });

  it('hydrates where the API can fetch the object when given a key, and only those read it', () => {
    const { stack } = bareStack();
    const store = new EventStore(stack, 'Store');
    const key = Secret.fromSecretNameV2(stack, 'Key', 'api-key');
    new CategoryFanout(stack, 'Fanout', { store, openAiApiKey: key });
    const template = Template.fromStack(stack);
    for (const category of CATEGORIES) {
      const hydrate = ['batch', 'fine_tuning', 'response'].includes(category);
      expect(variablesOf(template, category)).toMatchObject({
        HYDRATE: String(hydrate),
        OPENAI_API_KEY_SECRET_ID: 'api-key',
      });
    }
    template.resourcePropertiesCountIs(
      'AWS::IAM::Policy',
      {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
            }),
          ]),
        },
      },
      3,
    );
  });

  it('applies per-category options and the fan-out-wide ones', () => {
    const { template, fanout } = fanoutIn({
      maxReceiveCount: 7,
      eventRetention: Duration.days(10),
      dlqRetention: Duration.days(3),
      openAiBaseUrl: 'https://proxy.example.com/v1',
      categories: {
        batch: {
          batchSize: 50,
          maxBatchingWindow: Duration.seconds(20),
          maxConcurrency: 4,
          timeout: Duration.seconds(30),
          memorySize: 1024,
          maxReceiveCount: 2,
        },
      },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 50,
      MaximumBatchingWindowInSeconds: 20,
      ScalingConfig: { MaximumConcurrency: 4 },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 180,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 2 }),
    });
    template.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { RedrivePolicy: Match.objectLike({ maxReceiveCount: 7 }) },
      CATEGORIES.length - 1,
    );
    template.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { MessageRetentionPeriod: 3 * 24 * 3600 },
      CATEGORIES.length,
    );
    template.hasResourceProperties('AWS::Lambda::Function', { MemorySize: 1024, Timeout: 30 });
    expect(variablesOf(template, 'eval')).toMatchObject({
      EVENT_TTL_SECONDS: String(10 * 24 * 3600),
      OPENAI_BASE_URL: 'https://proxy.example.com/v1',
    });
    expect(fanout.maxReceiveCountOf('batch')).toBe(2);
    expect(fanout.maxReceiveCountOf('eval')).toBe(7);
    // Each consumer knows its own queue's count, the per-category one included.
    expect(variablesOf(template, 'batch')).toMatchObject({ MAX_RECEIVE_COUNT: '2' });
    expect(variablesOf(template, 'eval')).toMatchObject({ MAX_RECEIVE_COUNT: '7' });
  });

  it('invokes an existing Lambda as a user handler, on its unqualified ARN', () => {
    const { stack } = bareStack();
    const mine = new LambdaFunction(stack, 'Mine', {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('exports.handler = async () => {}'),
    });
    const store = new EventStore(stack, 'Store');
    new CategoryFanout(stack, 'Fanout', {
      store,
      categories: { batch: { userHandler: UserHandler.fromFunction(mine) } },
    });
    const template = Template.fromStack(stack);
    expect(variablesOf(template, 'batch')).toMatchObject({
      USER_HANDLER_FUNCTION: { 'Fn::GetAtt': [expect.stringMatching(/^Mine/), 'Arn'] },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'lambda:InvokeFunction',
            Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Mine'), 'Arn'] },
          }),
        ]),
      },
    });
  });

  it('bundles a user entry file into its category only', () => {
    const { fanout } = fanoutIn({
      categories: { eval: { userHandler: UserHandler.fromEntry(USER_ENTRY, 'handle') } },
    });
    expect(fanout.consumerOf('eval')).toBeDefined();
  });

  it('exposes each category consumer, queue and DLQ, queue URLs and publish and metric methods', () => {
    const { stack, fanout } = fanoutIn();
    expect(fanout.consumerOf('realtime').node.path).toBe('Bare/Fanout/Realtime/Consumer/Function');
    expect(fanout.queueOf('fine_tuning').node.path).toBe('Bare/Fanout/FineTuning/Queues/Queue');
    expect(fanout.deadLetterQueueOf('other').node.path).toBe(
      'Bare/Fanout/Other/Queues/DeadLetterQueue',
    );
    const urls = stack.resolve(fanout.queueUrlsJson());
    expect(JSON.stringify(urls)).toContain('FanoutBatchQueues');
    expect(fanout.metricConsumer('EventsProcessed', 'batch').dimensions).toEqual({
      Stack: 'Bare',
      Category: 'batch',
    });
    expect(fanout.metricConsumerErrors('eval').metricName).toBe('Errors');
    expect(fanout.metricQueueDepth('eval').metricName).toBe('ApproximateNumberOfMessagesVisible');
  });

  it.each<[Partial<CategoryFanoutProps>, RegExp]>([
    [{ categories: { nonsense: {} } as never }, /categories.nonsense is not a category/],
    [
      { categories: { batch: { batchSize: 0 } } },
      /categories.batch.batchSize must be an integer from 1 to 10000/,
    ],
    [
      { categories: { batch: { batchSize: 50 } } },
      /categories.batch.batchSize above 10 needs a maxBatchingWindow/,
    ],
    [
      { categories: { batch: { maxBatchingWindow: Duration.minutes(6) } } },
      /categories.batch.maxBatchingWindow must be at most 5 minutes/,
    ],
    [
      { categories: { eval: { maxConcurrency: 1 } } },
      /categories.eval.maxConcurrency must be an integer from 2 to 1000/,
    ],
    [
      { categories: { eval: { timeout: Duration.seconds(2) } } },
      /categories.eval.timeout must be between 5 seconds and 15 minutes/,
    ],
    [
      { categories: { eval: { memorySize: 100 } } },
      /categories.eval.memorySize must be an integer from 128 to 10240/,
    ],
    [
      { categories: { eval: { maxReceiveCount: 0 } } },
      /categories.eval.maxReceiveCount must be an integer from 1 to 1000/,
    ],
    [
      { categories: { eval: { hydrate: true } } },
      /categories.eval.hydrate cannot be on: the OpenAI API cannot fetch eval objects/,
    ],
    [{ categories: { batch: { hydrate: true } } }, /categories.batch.hydrate needs openAiApiKey/],
    [
      { categories: { eval: { userHandler: UserHandler.fromEntry('/nope.ts') } } },
      /categories.eval.userHandler \/nope.ts does not exist/,
    ],
    [
      { categories: { eval: { userHandler: UserHandler.fromEntry(USER_ENTRY, 'x; evil()') } } },
      /categories.eval.userHandler export name "x; evil\(\)" is not a JavaScript identifier/,
    ],
    [{ maxReceiveCount: 1001 }, /maxReceiveCount must be an integer from 1 to 1000/],
    [{ eventRetention: Duration.hours(1) }, /eventRetention must be at least 1 day/],
    [
      { dlqRetention: Duration.days(15) },
      /dlqRetention must be between 1 minute and 14 days \(the SQS maximum\)/,
    ],
    [{ openAiBaseUrl: 'http://api.openai.com/v1' }, /openAiBaseUrl must be an https:\/\/ URL/],
    [{ logging: { logLevel: 'trace' as never } }, /logging.logLevel must be one of/],
    [
      { incomingCalls: true, categories: { realtime: { timeout: Duration.seconds(11) } } },
      /categories.realtime.timeout must be at most 10 seconds \(the realtime consumer answers phone calls/,
    ],
    [
      {
        incomingCalls: true,
        categories: { realtime: { maxBatchingWindow: Duration.seconds(1) } },
      },
      /categories.realtime.maxBatchingWindow must be 0 with incomingCalls/,
    ],
  ])('rejects %o', (props, message) => {
    expect(() => fanoutIn(props)).toThrow(PropsError);
    expect(() => fanoutIn(props)).toThrow(message);
    expect(() => fanoutIn(props)).toThrow(/^CategoryFanout 'Fanout' has invalid props/);
  });

  it('answering calls, gives the realtime consumer a 10 s timeout and redelivery within 60 s', () => {
    const { template } = fanoutIn({ incomingCalls: true });
    const realtime = Object.values(template.findResources('AWS::Lambda::Function')).filter(
      (f) => f.Properties.Environment?.Variables?.CATEGORY === 'realtime',
    );
    expect(realtime.map((f) => f.Properties.Timeout)).toEqual([10]);
    template.resourcePropertiesCountIs('AWS::SQS::Queue', { VisibilityTimeout: 60 }, 1);
    template.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { VisibilityTimeout: 360 },
      CATEGORIES.length - 1,
    );
    template.allResourcesProperties('AWS::Lambda::EventSourceMapping', {
      MaximumBatchingWindowInSeconds: Match.absent(),
    });
    // A shorter timeout of choice; other categories may batch as they like.
    const chosen = fanoutIn({
      incomingCalls: true,
      categories: {
        realtime: { timeout: Duration.seconds(6) },
        batch: { maxBatchingWindow: Duration.seconds(5) },
      },
    });
    chosen.template.resourcePropertiesCountIs('AWS::SQS::Queue', { VisibilityTimeout: 36 }, 1);
    // Without calls, the realtime consumer is like the others.
    fanoutIn({
      categories: { realtime: { timeout: Duration.seconds(30) } },
    }).template.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 180 });
  });

  it('lets unresolved tokens through', () => {
    const { stack } = bareStack();
    const size = new CfnParameter(stack, 'BatchSize', { type: 'Number' });
    const store = new EventStore(stack, 'Store');
    expect(
      () =>
        new CategoryFanout(stack, 'Fanout', {
          store,
          categories: { batch: { batchSize: size.valueAsNumber } },
        }),
    ).not.toThrow();
  });
});
