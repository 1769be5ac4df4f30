import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config';
import { PropsError } from '../../lib/constructs/validation';
import {
  WebhookEndpointRegistration,
  type WebhookEndpointRegistrationProps,
  WebhookSigningSecret,
} from '../../lib/constructs/webhook-endpoint-registration';
import { WebhookSecretRotation } from '../../lib/constructs/webhook-secret-rotation';
import { nagFindings, synthStack } from './app';
import { bareStack, expectContained } from './constructs';

function registrationIn(props: Partial<WebhookEndpointRegistrationProps> = {}) {
  const { app, stack } = bareStack();
  const webhookSecret = Secret.fromSecretNameV2(stack, 'WebhookSecret', 'webhook-secret');
  const apiKeySecret = Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key');
  const registration = new WebhookEndpointRegistration(stack, 'Registration', {
    webhookUrl: 'https://abc.lambda-url.eu-west-1.on.aws/',
    webhookSecret,
    apiKeySecret,
    eventTypes: ['batch.completed', 'response.completed'],
    ...props,
  });
  return { app, stack, registration, template: Template.fromStack(stack) };
}

describe('WebhookEndpointRegistration', () => {
  it('is one custom resource whose properties name the URL, event types and secret, never a value', () => {
    const { stack, registration, template } = registrationIn();
    template.resourceCountIs('Custom::OpenAiWebhookEndpoint', 1);
    template.hasResourceProperties('Custom::OpenAiWebhookEndpoint', {
      Url: 'https://abc.lambda-url.eu-west-1.on.aws/',
      Name: 'Bare webhooks',
      EventTypes: ['batch.completed', 'response.completed'],
      WebhookSecretId: 'webhook-secret',
      Retain: 'false',
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('registers the webhook endpoint'),
      Environment: {
        Variables: Match.objectLike({ OPENAI_API_KEY_SECRET_ID: 'api-key' }),
      },
    });
    // It may write the webhook secret and read the key; nothing else in Secrets Manager.
    const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
      (p) =>
        (p.Properties as { PolicyDocument: { Statement: { Action: unknown }[] } }).PolicyDocument
          .Statement,
    );
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions).toContain('secretsmanager:PutSecretValue');
    expect(actions).not.toContain('secretsmanager:CreateSecret');
    expect(registration.endpointId).toBeTruthy();
    expectContained(stack, registration, [
      stack.node.findChild('WebhookSecret'),
      stack.node.findChild('ApiKey'),
    ]);
  });

  it('is cdk-nag clean alone', () => {
    const { stack } = registrationIn();
    expect(nagFindings(stack)).toEqual([]);
  });

  it('keeps the endpoint on delete when retained, with the name given', () => {
    const { template } = registrationIn({ retainOnDelete: true, name: 'orders' });
    template.hasResourceProperties('Custom::OpenAiWebhookEndpoint', {
      Name: 'orders',
      Retain: 'true',
    });
  });

  it('refuses event types the SDK does not know, and realtime.call.incoming without calls', () => {
    expect(() => registrationIn({ eventTypes: ['batch.exploded'] })).toThrow(PropsError);
    expect(() => registrationIn({ eventTypes: ['realtime.call.incoming'] })).toThrow(
      /eventTypes: realtime.call.incoming needs calls on/,
    );
    expect(() =>
      registrationIn({ eventTypes: ['realtime.call.incoming'], callsEnabled: true }),
    ).not.toThrow();
    expect(() => registrationIn({ openAiBaseUrl: 'http://api.example' })).toThrow(
      /openAiBaseUrl must be an https:\/\/ URL/,
    );
    expect(() => registrationIn({ name: '' })).toThrow(/name must be 1 to 100 characters/);
  });
});

describe('WebhookSigningSecret', () => {
  it('holds a generated placeholder, never a value in the template, retained by default', () => {
    const { stack } = bareStack();
    const signing = new WebhookSigningSecret(stack, 'Signing', { secretName: 'openai/webhook' });
    const template = Template.fromStack(stack);
    template.hasResource('AWS::SecretsManager::Secret', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        Name: 'openai/webhook',
        GenerateSecretString: Match.anyValue(),
        SecretString: Match.absent(),
      }),
    });
    expectContained(stack, signing);
    expect(nagFindings(stack)).toEqual([]);
    expect(() => new WebhookSigningSecret(stack, 'Bad', { secretName: 'a b' })).toThrow(PropsError);
  });
});

describe('WebhookSecretRotation', () => {
  function rotationIn(every?: Duration) {
    const { stack } = bareStack();
    const webhookSecret = Secret.fromSecretNameV2(stack, 'WebhookSecret', 'webhook-secret');
    const apiKeySecret = Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key');
    const rotation = new WebhookSecretRotation(stack, 'Rotation', {
      webhookSecret,
      apiKeySecret,
      endpointId: 'whe_123',
      ...(every ? { every } : {}),
    });
    return { stack, rotation, template: Template.fromStack(stack) };
  }

  it('rotates through Secrets Manager, drops the old secret hourly, and alarms on failure', () => {
    const { stack, rotation, template } = rotationIn();
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
      RotateImmediatelyOnUpdate: false,
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 hour)',
      Targets: [Match.objectLike({ Input: '{"action":"expirePrevious"}' })],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'OpenAiWebhooks',
      MetricName: 'SecretRotationFailures',
      Threshold: 1,
      Dimensions: [{ Name: 'Stack', Value: 'Bare' }],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          WEBHOOK_ENDPOINT_ID: 'whe_123',
          WEBHOOK_SECRET_ID: 'webhook-secret',
        }),
      },
    });
    expectContained(stack, rotation, [
      stack.node.findChild('WebhookSecret'),
      stack.node.findChild('ApiKey'),
    ]);
    expect(nagFindings(stack)).toEqual([]);
  });

  it('refuses a schedule under a day or over a year', () => {
    expect(() => rotationIn(Duration.hours(12))).toThrow(
      /every must be between 1 day and 365 days/,
    );
    expect(() => rotationIn(Duration.days(400))).toThrow(PropsError);
  });
});

describe('the stack with webhookEndpoint', () => {
  const withEndpoint = synthStack({
    webhookEndpoint: { register: true, rotation: { every: Duration.days(7) } },
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const template = Template.fromStack(withEndpoint.stack);

  it('registers the ingress URL, outputs the endpoint id, and sends the rotation alarm to the topic', () => {
    const [resource] = Object.entries(template.findResources('Custom::OpenAiWebhookEndpoint'));
    expect(resource).toBeDefined();
    const [logicalId, body] = resource ?? ['', {}];
    const props = (body as { Properties: Record<string, unknown> }).Properties;
    expect(JSON.stringify(props.Url)).toContain('FunctionUrl');
    expect(props.EventTypes).not.toContain('realtime.call.incoming');
    expect(props.EventTypes).toContain('batch.completed');
    template.hasOutput('WebhookEndpointId', { Value: { Ref: logicalId } });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'SecretRotationFailures',
      AlarmActions: [Match.objectLike({ Ref: Match.stringLikeRegexp('AlarmsTopic') })],
    });
    // The stack made the webhook secret, and the ingress reads that one.
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
  });

  it('is cdk-nag clean', () => {
    expect(nagFindings(withEndpoint.stack)).toEqual([]);
  });

  it('shows the last rotation steps and their outcomes on the dashboard, beside which secret signed', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
    expect(body).toContain('Webhook secret: last rotation steps');
    expect(body).toContain('webhook secret rotation');
    expect(body).toContain('SecretRotations');
    expect(body).toContain('SecretRotationFailures');
    expect(body).toContain('SecretMatched');
    // Without rotation, no rotation widgets.
    const plain = Template.fromStack(synthStack({}).stack);
    const [plainDashboard] = Object.values(plain.findResources('AWS::CloudWatch::Dashboard'));
    expect(JSON.stringify(plainDashboard?.Properties?.DashboardBody)).not.toContain(
      'Webhook secret: last rotation steps',
    );
  });

  it('never puts a secret in the template or an output', () => {
    const json = template.toJSON() as { Outputs?: Record<string, { Value: unknown }> };
    const text = JSON.stringify(json);
    // Booleans, not the template: a failure must not print a 200 kB document.
    expect(text.includes('whsec_')).toBe(false);
    expect(text.includes('"SecretString"')).toBe(false);
    expect(text.includes('signing_secret')).toBe(false);
    for (const output of Object.values(json.Outputs ?? {}))
      expect(/SecretString|secretsmanager:/.test(JSON.stringify(output.Value))).toBe(false);
    // The custom resource answers with NoEcho and no Data: nothing may read an attribute of it.
    const [logicalId] = Object.keys(template.findResources('Custom::OpenAiWebhookEndpoint'));
    expect(text.includes(`"Fn::GetAtt":["${logicalId}"`)).toBe(false);
  });

  it('adopts an existing secret when asked, and refuses registration without an API key', () => {
    const adopted = Template.fromStack(
      synthStack({ webhookEndpoint: { register: true, adoptExistingSecret: true } }).stack,
    );
    adopted.resourceCountIs('AWS::SecretsManager::Secret', 0);
    adopted.resourceCountIs('Custom::OpenAiWebhookEndpoint', 1);
    expect(() =>
      synthStack({ webhookEndpoint: { register: true }, openAiApiKeySecretName: null }),
    ).toThrow(/webhookEndpoint.register needs openAiApiKeySecretName/);
  });

  it('checks the event types at synth: realtime.call.incoming only with calls, known types only', () => {
    expect(() =>
      synthStack({ webhookEndpoint: { register: true, eventTypes: ['realtime.call.incoming'] } }),
    ).toThrow(ConfigError);
    expect(() =>
      synthStack({
        webhookEndpoint: {
          register: true,
          eventTypes: ['batch.exploded' as 'batch.completed'],
          regsiter: true,
        } as never,
      }),
    ).toThrow(
      /did you mean "webhookEndpoint.register"[\s\S]*"batch.exploded" is not an event type/,
    );
  });

  it('subscribes realtime.call.incoming by default when calls are on', () => {
    const { stack } = synthStack({
      webhookEndpoint: { register: true },
      calls: {
        sessions: {
          default: { model: 'gpt-realtime-2.1', instructions: 'Be brief.', voice: 'marin' },
        },
      },
    });
    const [resource] = Object.values(
      Template.fromStack(stack).findResources('Custom::OpenAiWebhookEndpoint'),
    );
    expect((resource as { Properties: { EventTypes: string[] } }).Properties.EventTypes).toContain(
      'realtime.call.incoming',
    );
  });
});
