import { CfnParameter, Duration, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { QueueWithDeadLetters } from '../../lib/constructs/queue-with-dead-letters';
import { PropsError } from '../../lib/constructs/validation';
import { nagFindings } from './app';
import { bareStack, expectContained } from './constructs';

describe('QueueWithDeadLetters', () => {
  it('creates an encrypted, TLS-only queue and DLQ with the defaults', () => {
    const { app, stack } = bareStack();
    const queues = new QueueWithDeadLetters(stack, 'Work');
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::Queue', 2);
    template.allResourcesProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 30,
      MessageRetentionPeriod: 4 * 24 * 3600,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('DeadLetterQueue'), 'Arn'] },
        maxReceiveCount: 5,
      },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      MessageRetentionPeriod: 14 * 24 * 3600,
      RedrivePolicy: Match.absent(),
    });
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(2);
    for (const policy of policies) {
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
    expectContained(stack, queues);
    expect(nagFindings(app)).toEqual([]);
  });

  it('takes its timeouts, retentions and receive count from props', () => {
    const { stack } = bareStack();
    new QueueWithDeadLetters(stack, 'Work', {
      visibilityTimeout: Duration.minutes(6),
      maxReceiveCount: 9,
      dlqRetention: Duration.days(2),
      retention: Duration.hours(1),
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 360,
      MessageRetentionPeriod: 3600,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 9 }),
    });
    template.hasResourceProperties('AWS::SQS::Queue', { MessageRetentionPeriod: 2 * 24 * 3600 });
  });

  it('has depth, oldest-message and DLQ-depth metrics, each the worst value per minute', () => {
    const { stack } = bareStack();
    const queues = new QueueWithDeadLetters(stack, 'Work');
    for (const metric of [
      queues.metricDepth(),
      queues.metricOldestMessageAge(),
      queues.metricDeadLetterDepth(),
    ]) {
      expect(metric.statistic).toBe('Maximum');
      expect(metric.period.toSeconds()).toBe(60);
    }
    expect(queues.metricOldestMessageAge().metricName).toBe('ApproximateAgeOfOldestMessage');
    expect(stack.resolve(queues.metricDeadLetterDepth().dimensions)).toEqual({
      QueueName: { 'Fn::GetAtt': [expect.stringMatching(/DeadLetterQueue/), 'QueueName'] },
    });
  });

  it.each([
    [{ visibilityTimeout: Duration.hours(13) }, /visibilityTimeout must be at most 12 hours/],
    [{ maxReceiveCount: 0 }, /maxReceiveCount must be an integer from 1 to 1000; got 0/],
    [{ maxReceiveCount: 1.5 }, /maxReceiveCount must be an integer/],
    [{ dlqRetention: Duration.days(15) }, /dlqRetention must be between 1 minute and 14 days/],
    [{ retention: Duration.seconds(30) }, /retention must be between 1 minute and 14 days/],
  ])('rejects %o', (props, message) => {
    const { stack } = bareStack();
    expect(() => new QueueWithDeadLetters(stack, 'Work', props)).toThrow(PropsError);
    expect(() => new QueueWithDeadLetters(bareStack().stack, 'Work', props)).toThrow(message);
  });

  it('lists every problem at once, under its own id', () => {
    const { stack } = bareStack();
    expect(
      () =>
        new QueueWithDeadLetters(stack, 'Signals', {
          maxReceiveCount: 0,
          dlqRetention: Duration.days(30),
        }),
    ).toThrow(/QueueWithDeadLetters 'Signals'[\s\S]*maxReceiveCount[\s\S]*dlqRetention/);
  });

  it('lets unresolved tokens through', () => {
    const { stack } = bareStack();
    const receives = new CfnParameter(stack, 'Receives', { type: 'Number' });
    const seconds = new CfnParameter(stack, 'Seconds', { type: 'Number' });
    expect(
      () =>
        new QueueWithDeadLetters(stack, 'Work', {
          maxReceiveCount: receives.valueAsNumber,
          visibilityTimeout: Duration.seconds(seconds.valueAsNumber),
        }),
    ).not.toThrow();
    expect(Token.isUnresolved(receives.valueAsNumber)).toBe(true);
  });
});
