import { CfnParameter, Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { CategoryFanout } from '../../lib/constructs/category-fanout';
import { EventStore } from '../../lib/constructs/event-store';
import { PropsError } from '../../lib/constructs/validation';
import { WebhookIngress, type WebhookIngressProps } from '../../lib/constructs/webhook-ingress';
import { nagFindings } from './app';
import { bareStack, expectContained } from './constructs';

type Options = Omit<WebhookIngressProps, 'store' | 'fanout' | 'webhookSecret'>;

function ingressIn(options: Options = {}) {
  const { app, stack } = bareStack();
  const store = new EventStore(stack, 'Store');
  const fanout = new CategoryFanout(stack, 'Fanout', { store });
  const webhookSecret = Secret.fromSecretNameV2(stack, 'Secret', 'webhook-secret');
  const ingress = new WebhookIngress(stack, 'Ingress', {
    store,
    fanout,
    webhookSecret,
    ...options,
  });
  return { app, stack, store, fanout, ingress, template: Template.fromStack(stack) };
}

function ingressFunction(template: Template): Record<string, unknown> {
  const [fn] = Object.values(
    template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('verifies, deduplicates') },
    }),
  );
  return fn?.Properties as Record<string, unknown>;
}

describe('WebhookIngress', () => {
  it('is a public function URL with the defaults: 1024 MiB, 10 s, 50 reserved', () => {
    const { app, stack, store, fanout, ingress, template } = ingressIn();
    template.resourceCountIs('AWS::Lambda::Url', 1);
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    const fn = ingressFunction(template);
    expect(fn).toMatchObject({
      MemorySize: 1024,
      Timeout: 10,
      ReservedConcurrentExecutions: 50,
      Environment: {
        Variables: {
          WEBHOOK_SECRET_ID: 'webhook-secret',
          WEBHOOK_TOLERANCE_SECONDS: '300',
          MAX_BODY_BYTES: '1048576',
          DEDUPE_TTL_SECONDS: String(7 * 24 * 3600),
          LOG_LEVEL: 'info',
        },
      },
    });
    expect(stack.resolve(ingress.webhookUrl)).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^IngressHandlerFunctionFunctionUrl/), 'FunctionUrl'],
    });
    // The URL output is the stack's to add, not the construct's.
    expect(template.findOutputs('*')).toEqual({});
    expectContained(stack, ingress, [store, fanout]);
    expect(nagFindings(app)).toEqual([]);
  });

  it('may read and put event heads, send to every category queue and read its secret', () => {
    const { template } = ingressIn();
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('IngressHandlerRole') }] },
    });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[],
    );
    const actions = statements.flatMap((s) => [s.Action].flat());
    // Issue 12: it reads and puts event heads (the dedupe records), written after queueing.
    expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
    ]);
    // The claim check: the ingress may only put bodies into the payload bucket.
    expect(actions.filter((a) => a.startsWith('s3:'))).toEqual(['s3:PutObject']);
    expect(actions.filter((a) => a === 'sqs:SendMessage')).toHaveLength(6);
    expect(actions).toContain('secretsmanager:GetSecretValue');
  });

  it('takes its settings from props; null drops the reserved concurrency', () => {
    const { template } = ingressIn({
      signatureTolerance: Duration.minutes(1),
      maxBodyBytes: 4096,
      dedupeRetention: Duration.days(3),
      reservedConcurrency: null,
      memorySize: 256,
      timeout: Duration.seconds(5),
      logging: { logLevel: 'warn', tracing: true },
    });
    expect(ingressFunction(template)).toMatchObject({
      MemorySize: 256,
      Timeout: 5,
      TracingConfig: { Mode: 'Active' },
      Environment: {
        Variables: {
          WEBHOOK_TOLERANCE_SECONDS: '60',
          MAX_BODY_BYTES: '4096',
          DEDUPE_TTL_SECONDS: String(3 * 24 * 3600),
          LOG_LEVEL: 'warn',
        },
      },
    });
    expect(ingressFunction(template).ReservedConcurrentExecutions).toBeUndefined();
  });

  it('has URL response, EMF, error and latency metrics', () => {
    const { ingress } = ingressIn();
    expect(ingress.metricResponses('4xx').metricName).toBe('Url4xxCount');
    expect(ingress.metricResponses('5xx').metricName).toBe('Url5xxCount');
    expect(ingress.metricWebhooks('WebhooksReceived').namespace).toBe('OpenAiWebhooks');
    expect(ingress.metricErrors().metricName).toBe('Errors');
    expect(ingress.metricLatency().statistic).toBe('p99');
  });

  it.each<[Options, RegExp]>([
    [
      { signatureTolerance: Duration.millis(500) },
      /signatureTolerance must be between 1 second and 1 hour/,
    ],
    [
      { signatureTolerance: Duration.hours(2) },
      /signatureTolerance must be between 1 second and 1 hour/,
    ],
    [
      { maxBodyBytes: 100 },
      /maxBodyBytes must be an integer from 1024 to 1048576 \(the SQS message limit\)/,
    ],
    [{ maxBodyBytes: 2 * 1024 * 1024 }, /maxBodyBytes must be an integer from 1024 to 1048576/],
    [
      { dedupeRetention: Duration.hours(48) },
      /dedupeRetention must be at least 3 days \(OpenAI retries a delivery for up to 72 hours\)/,
    ],
    [
      { reservedConcurrency: 0 },
      /reservedConcurrency must be an integer of at least 1 \(or null for none/,
    ],
    [{ memorySize: 64 }, /memorySize must be an integer from 128 to 10240/],
    [{ timeout: Duration.minutes(20) }, /timeout must be between 1 second and 15 minutes/],
    [{ logging: { logRemovalPolicy: 'gone' as never } }, /logging.logRemovalPolicy must be one of/],
  ])('rejects %o', (options, message) => {
    expect(() => ingressIn(options)).toThrow(PropsError);
    expect(() => ingressIn(options)).toThrow(message);
    expect(() => ingressIn(options)).toThrow(/^WebhookIngress 'Ingress' has invalid props/);
  });

  it('lets unresolved tokens through', () => {
    const { stack } = bareStack();
    const bytes = new CfnParameter(stack, 'MaxBody', { type: 'Number' });
    const store = new EventStore(stack, 'Store');
    const fanout = new CategoryFanout(stack, 'Fanout', { store });
    expect(
      () =>
        new WebhookIngress(stack, 'Ingress', {
          store,
          fanout,
          webhookSecret: Secret.fromSecretNameV2(stack, 'Secret', 'webhook-secret'),
          maxBodyBytes: bytes.valueAsNumber,
        }),
    ).not.toThrow();
  });
});
