import { Duration, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { CATEGORIES } from '#core/webhooks/categories';
import type { AlarmThresholds } from '../../lib/config';
import { Alarms, type AlarmsProps } from '../../lib/constructs/alarms';
import { SidebandService } from '../../lib/constructs/sideband-service';
import { PropsError } from '../../lib/constructs/validation';
import { nagFindings } from './app';
import { bareStack, callsFixture, expectContained, webhookParts } from './constructs';

type Resource = { Properties: Record<string, unknown> };

function alarmsIn(
  options: Omit<AlarmsProps, 'ingress' | 'fanout'> & { calls?: { minTasks: number } } = {},
) {
  const { app, stack } = bareStack();
  const parts = webhookParts(stack, { maxReceiveCount: 3 });
  const { calls, ...props } = options;
  const sideband = calls ? sidebandOf(stack, parts.store, calls.minTasks) : undefined;
  const alarms = new Alarms(stack, 'Alarms', {
    ingress: parts.ingress,
    fanout: parts.fanout,
    ...(sideband ? { sideband } : {}),
    ...props,
  });
  // Synthesized on first use, so a test can still add to the tree before.
  let synthesized: Template | undefined;
  const template = () => {
    synthesized ??= Template.fromStack(stack);
    return synthesized;
  };
  const byName = (suffix: string) =>
    Object.values(
      template().findResources('AWS::CloudWatch::Alarm') as Record<string, Resource>,
    ).find((a) => a.Properties.AlarmName === `Bare-${suffix}`)?.Properties;
  return { app, stack, alarms, parts, sideband, template, byName };
}

function sidebandOf(
  stack: Stack,
  store: ReturnType<typeof webhookParts>['store'],
  minTasks: number,
) {
  const { config, tool } = callsFixture(stack);
  return new SidebandService(stack, 'Sideband', {
    store,
    apiKeySecret: Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key'),
    callsConfig: config,
    toolFunctions: [tool],
    minTasks,
  });
}

describe('Alarms', () => {
  it('alarms on every DLQ, every queue age and the ingress, all to its topic, with the defaults', () => {
    const { app, stack, alarms, parts, template: synth, byName } = alarmsIn();
    const template = synth();
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 2 * CATEGORIES.length + 3);
    expect(alarms.alarms).toHaveLength(2 * CATEGORIES.length + 3);
    const [topic] = Object.keys(template.findResources('AWS::SNS::Topic'));
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: topic }]);
    }
    expect(byName('DeadLetters-batch')).toMatchObject({ Threshold: 1 });
    expect(String(byName('DeadLetters-batch')?.AlarmDescription)).toContain('failed 3 times');
    expect(byName('OldestMessage-eval')).toMatchObject({ Threshold: 900, Period: 300 });
    expect(byName('Ingress5xx')).toMatchObject({ MetricName: 'Url5xxCount', Threshold: 5 });
    expect(byName('SignatureFailures')).toMatchObject({ Threshold: 20 });
    expect(byName('IngressThrottles')).toMatchObject({ MetricName: 'Throttles', Threshold: 1 });
    // Without the store, no table alarms.
    expect(byName('TableWriteThrottles')).toBeUndefined();
    expect(byName('AcceptLatency')).toBeUndefined();
    expect(stack.resolve(alarms.topicArn)).toEqual({ Ref: topic });
    expectContained(stack, alarms, [parts.store, parts.fanout, parts.ingress]);
    expect(nagFindings(app)).toEqual([]);
  });

  it('adds the call alarms with a sideband, and NoSidebandTask only when it keeps a task', () => {
    const warm = alarmsIn({ calls: { minTasks: 1 } });
    expect(warm.alarms.alarms).toHaveLength(2 * CATEGORIES.length + 3 + 7);
    expect(warm.byName('OldestMessage-signals')).toMatchObject({ Threshold: 60 });
    expect(warm.byName('AcceptLatency')).toMatchObject({
      Threshold: 2000,
      ExtendedStatistic: 'p95',
    });
    expect(warm.byName('ActiveCallsNearCapacity')).toMatchObject({ Threshold: 80 });
    expect(warm.byName('TransfersFailing')).toMatchObject({ Threshold: 3, Period: 900 });
    expect(warm.byName('NoSidebandTask')).toMatchObject({
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
      EvaluationPeriods: 2,
    });
    const cold = alarmsIn({ calls: { minTasks: 0 } });
    expect(cold.byName('NoSidebandTask')).toBeUndefined();
    expect(cold.alarms.alarms).toHaveLength(2 * CATEGORIES.length + 3 + 6);
  });

  it("alarms on any call part the recorder dropped, with calls only, on the worker's metric", () => {
    const { byName, stack } = alarmsIn({ calls: { minTasks: 0 } });
    expect(byName('RecorderItemsDropped')).toMatchObject({
      Namespace: 'OpenAiWebhooks',
      MetricName: 'RecorderItemsDropped',
      // The stack-wide total, as the worker publishes it beside the one by Reason.
      Dimensions: [{ Name: 'Stack', Value: stack.stackName }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(String(byName('RecorderItemsDropped')?.AlarmDescription)).toContain(
      'recorded parts dropped',
    );
    // Without calls there is no recorder, and no alarm.
    expect(alarmsIn().byName('RecorderItemsDropped')).toBeUndefined();
  });

  it('scaled to zero, lets a signal wait for a task to start before alarming', () => {
    const cold = alarmsIn({ calls: { minTasks: 0 } });
    expect(cold.byName('OldestMessage-signals')).toMatchObject({
      Threshold: 300,
      EvaluationPeriods: 1,
    });
    expect(String(cold.byName('OldestMessage-signals')?.AlarmDescription)).toContain(
      'scales to zero',
    );
    const chosen = alarmsIn({
      calls: { minTasks: 0 },
      thresholds: { signalAgeScaledToZero: Duration.minutes(8) },
    });
    expect(chosen.byName('OldestMessage-signals')?.Threshold).toBe(480);
    // A signalAge longer than the default stands for both.
    const long = alarmsIn({
      calls: { minTasks: 0 },
      thresholds: { signalAge: Duration.minutes(7) },
    });
    expect(long.byName('OldestMessage-signals')?.Threshold).toBe(420);
    // Warm, the tight threshold stays.
    const warm = alarmsIn({ calls: { minTasks: 2 } });
    expect(warm.byName('OldestMessage-signals')?.Threshold).toBe(60);
  });

  it('takes thresholds (any subset) and an e-mail subscription from props', () => {
    const { template, byName } = alarmsIn({
      calls: { minTasks: 1 },
      thresholds: {
        ingress5xx: 2,
        signatureFailures: 7,
        oldestMessageAge: Duration.minutes(2),
        signalAge: Duration.minutes(3),
        acceptLatencyP95: Duration.millis(1500),
        activeCallsRatio: 0.5,
        transferFailures: undefined,
      },
      alarmEmail: 'oncall@example.com',
    });
    expect(byName('Ingress5xx')?.Threshold).toBe(2);
    expect(byName('SignatureFailures')?.Threshold).toBe(7);
    expect(byName('OldestMessage-batch')?.Threshold).toBe(120);
    expect(byName('OldestMessage-signals')?.Threshold).toBe(180);
    expect(byName('AcceptLatency')?.Threshold).toBe(1500);
    expect(byName('ActiveCallsNearCapacity')?.Threshold).toBe(50);
    // An undefined field keeps its default.
    expect(byName('TransfersFailing')?.Threshold).toBe(3);
    template().hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
  });

  it('adds an alarm of your own that notifies the topic', () => {
    const { alarms, template } = alarmsIn();
    const alarm = alarms.addAlarm('Custom', {
      metric: alarms.alarms[0]?.metric ?? (undefined as never),
      threshold: 4,
      description: 'A custom alarm for this test; it means nothing and needs no action.',
      evaluationPeriods: 3,
    });
    expect(alarm.node.path).toBe('Bare/Alarms/Custom');
    const props = template().findResources('AWS::CloudWatch::Alarm', {
      Properties: { AlarmName: 'Bare-Custom' },
    });
    expect(Object.values(props)[0]?.Properties).toMatchObject({
      Threshold: 4,
      EvaluationPeriods: 3,
    });
  });

  it.each<[AlarmThresholds | { alarmEmail: string }, RegExp]>([
    [
      { ingress5xx: 0 },
      /thresholds.ingress5xx must be an integer of at least 1 \(a count within the window\); got 0/,
    ],
    [{ signatureFailures: 2.5 }, /thresholds.signatureFailures must be an integer/],
    [{ transferFailures: -1 }, /thresholds.transferFailures must be an integer/],
    [
      { activeCallsRatio: 1.5 },
      /thresholds.activeCallsRatio must be above 0 and at most 1; got 1.5/,
    ],
    [{ activeCallsRatio: 0 }, /thresholds.activeCallsRatio must be above 0/],
    [
      { oldestMessageAge: Duration.seconds(10) },
      /thresholds.oldestMessageAge must be at least 1 minute \(SQS reports the age once a minute\)/,
    ],
    [{ signalAge: Duration.seconds(30) }, /thresholds.signalAge must be at least 1 minute/],
    [
      { signalAge: Duration.minutes(10), signalAgeScaledToZero: Duration.minutes(5) },
      /thresholds.signalAgeScaledToZero must be at least 10 minutes \(at least thresholds.signalAge\)/,
    ],
    [
      { acceptLatencyP95: Duration.millis(50) },
      /thresholds.acceptLatencyP95 must be at least 100 millis/,
    ],
    [
      { alarmEmail: 'not an address' },
      /alarmEmail must be an e-mail address; got "not an address"/,
    ],
  ])('rejects %o', (given, message) => {
    const props = 'alarmEmail' in given ? { alarmEmail: given.alarmEmail } : { thresholds: given };
    expect(() => alarmsIn(props)).toThrow(PropsError);
    expect(() => alarmsIn(props)).toThrow(message);
    expect(() => alarmsIn(props)).toThrow(/^Alarms 'Alarms' has invalid props/);
  });

  it('rejects an alarm of your own without a finite threshold, a description or a period', () => {
    const { alarms } = alarmsIn();
    const metric = alarms.alarms[0]?.metric ?? (undefined as never);
    const description = 'A custom alarm for this test; it means nothing and needs no action.';
    expect(() => alarms.addAlarm('A', { metric, threshold: Number.NaN, description })).toThrow(
      /alarm A: threshold must be a finite number/,
    );
    expect(() => alarms.addAlarm('B', { metric, threshold: 1, description: '' })).toThrow(
      /alarm B: description must say what the alarm means/,
    );
    expect(() =>
      alarms.addAlarm('C', { metric, threshold: 1, description, evaluationPeriods: 0 }),
    ).toThrow(/alarm C: evaluationPeriods must be an integer of at least 1/);
  });
});
