import { Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { METRICS } from '#core/observability/metrics';
import { CATEGORIES } from '#core/webhooks/categories';
import { ConfigError } from '../../lib/config';
import type { OpenAiWebhooksStackProps } from '../../lib/openai-webhooks-stack';
import { nagFindings, synthStack } from './app';

const CALLS: OpenAiWebhooksStackProps['calls'] = {
  sessions: { default: { model: 'gpt-realtime-2.1', voice: 'marin', instructions: 'Be brief.' } },
  transferTargets: { support: 'sip:support@example.com' },
};

type Resource = { Properties: Record<string, unknown> };

function alarmsOf(template: Template): Record<string, Resource> {
  return template.findResources('AWS::CloudWatch::Alarm') as Record<string, Resource>;
}

/** The dashboard body with every token replaced by a placeholder, parsed. */
function dashboardOf(template: Template): {
  widgets: { type: string; height: number; properties: Record<string, unknown> }[];
} {
  const [dashboard] = Object.values(
    template.findResources('AWS::CloudWatch::Dashboard') as Record<string, Resource>,
  );
  const body = dashboard?.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  const text = body['Fn::Join'][1]
    .map((part) => (typeof part === 'string' ? part : 'TOKEN'))
    .join('');
  return JSON.parse(text);
}

describe('alarms', () => {
  const { stack, app } = synthStack({ calls: CALLS, alarmEmail: 'oncall@example.com' });
  const template = Template.fromStack(stack);
  const alarms = alarmsOf(template);

  it('gives every dead-letter queue (categories and call signals) an alarm on its depth', () => {
    const dlqs = Object.keys(
      template.findResources('AWS::SQS::Queue', { Properties: { RedrivePolicy: Match.absent() } }),
    );
    expect(dlqs).toHaveLength(CATEGORIES.length + 1);
    for (const dlq of dlqs) {
      const alarm = Object.values(alarms).find(
        (a) =>
          a.Properties.MetricName === 'ApproximateNumberOfMessagesVisible' &&
          JSON.stringify(a.Properties.Dimensions).includes(dlq),
      );
      expect(alarm, `no depth alarm for ${dlq}`).toBeDefined();
      expect(alarm?.Properties.Threshold).toBe(1);
    }
  });

  it('sends every alarm, and its all-clear, to the topic', () => {
    const [topic] = Object.keys(template.findResources('AWS::SNS::Topic'));
    expect(Object.keys(alarms).length).toBeGreaterThanOrEqual(20);
    for (const [id, alarm] of Object.entries(alarms)) {
      expect(alarm.Properties.AlarmActions, id).toEqual([{ Ref: topic }]);
      expect(alarm.Properties.OKActions, id).toEqual([{ Ref: topic }]);
      expect(String(alarm.Properties.AlarmDescription).length, id).toBeGreaterThan(40);
    }
  });

  it('has the alarms an operator needs, with the default thresholds', () => {
    const byName = (suffix: string) =>
      Object.values(alarms).find((a) => a.Properties.AlarmName === `Test-${suffix}`)?.Properties;
    expect(byName('Ingress5xx')).toMatchObject({ MetricName: 'Url5xxCount', Threshold: 5 });
    expect(byName('SignatureFailures')).toMatchObject({
      Namespace: 'OpenAiWebhooks',
      MetricName: 'SignatureFailures',
      Dimensions: [{ Name: 'Stack', Value: 'Test' }],
      Threshold: 20,
      Period: 300,
    });
    expect(byName('OldestMessage-batch')).toMatchObject({
      MetricName: 'ApproximateAgeOfOldestMessage',
      Threshold: 900,
    });
    expect(byName('OldestMessage-signals')).toMatchObject({ Threshold: 60 });
    expect(byName('AcceptLatency')).toMatchObject({
      MetricName: 'AcceptLatency',
      ExtendedStatistic: 'p95',
      Threshold: 2000,
    });
    expect(byName('ActiveCallsNearCapacity')).toMatchObject({
      MetricName: 'AccountActiveCalls',
      Statistic: 'Maximum',
      Threshold: 80,
    });
    expect(byName('NoSidebandTask')).toMatchObject({
      Namespace: 'ECS/ContainerInsights',
      MetricName: 'RunningTaskCount',
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
      Threshold: 1,
    });
    expect(byName('TransfersFailing')).toMatchObject({
      MetricName: 'TransfersFailed',
      Period: 900,
      Threshold: 3,
    });
  });

  it('takes thresholds from props', () => {
    const t = Template.fromStack(
      synthStack({
        calls: { ...CALLS, maxConcurrentCalls: 10, service: { minTasks: 0 } },
        alarms: {
          acceptLatencyP95: Duration.millis(1500),
          activeCallsRatio: 0.5,
          signatureFailures: 3,
          oldestMessageAge: Duration.minutes(2),
          signalAge: Duration.minutes(3),
          transferFailures: 1,
        },
      }).stack,
    );
    const props = Object.values(alarmsOf(t)).map((a) => a.Properties);
    const threshold = (name: string) =>
      props.find((p) => p.AlarmName === `Test-${name}`)?.Threshold;
    expect(threshold('AcceptLatency')).toBe(1500);
    expect(threshold('ActiveCallsNearCapacity')).toBe(5);
    expect(threshold('SignatureFailures')).toBe(3);
    expect(threshold('OldestMessage-eval')).toBe(120);
    // Scaled to zero, a signal may wait for a task to start: signalAgeScaledToZero (5 min).
    expect(threshold('OldestMessage-signals')).toBe(300);
    expect(threshold('TransfersFailing')).toBe(1);
    // Scaled to zero, no running task is normal: no alarm for it.
    expect(threshold('NoSidebandTask')).toBeUndefined();
  });

  it('rejects out-of-range thresholds at synth', () => {
    expect(() => synthStack({ alarms: { activeCallsRatio: 1.5 } })).toThrow(ConfigError);
    expect(() => synthStack({ alarms: { ingress5xx: 0 } })).toThrow(/alarms.ingress5xx/);
    expect(() => synthStack({ alarms: { oldestMessageAge: Duration.seconds(10) } })).toThrow(
      /oldestMessageAge/,
    );
    expect(() => synthStack({ alarms: { signalAge: Duration.seconds(30) } })).toThrow(/signalAge/);
    expect(() => synthStack({ alarmEmail: 'not an address' })).toThrow(/alarmEmail/);
  });

  it('stays cdk-nag clean with calls, alarms and the dashboard', () => {
    expect(nagFindings(app)).toEqual([]);
  });
});

describe('dashboard', () => {
  const template = Template.fromStack(synthStack({ calls: CALLS }).stack);
  const { widgets } = dashboardOf(template);
  const titles = widgets.map((w) => String(w.properties.title ?? w.properties.markdown ?? ''));
  const metricsOf = (title: string) =>
    JSON.stringify(widgets.find((w) => w.properties.title === title)?.properties.metrics ?? []);

  it('opens with the health row: ingress errors, DLQ depth, oldest message, calls vs capacity', () => {
    expect(titles.slice(0, 4)).toEqual([
      'Ingress errors',
      'DLQ depth',
      'Oldest message age (s)',
      'Active calls vs capacity',
    ]);
    expect(widgets.slice(0, 4).map((w) => w.height)).toEqual([6, 6, 6, 6]);
    expect(metricsOf('Ingress errors')).toContain('Url5xxCount');
    expect(metricsOf('DLQ depth')).toContain('ApproximateNumberOfMessagesVisible');
    expect(metricsOf('Active calls vs capacity')).toContain('AccountActiveCalls');
    const capacity = widgets[3]?.properties.annotations as { horizontal: { value: number }[] };
    expect(capacity.horizontal[0]?.value).toBe(100);
    expect(widgets[4]?.type).toBe('alarm');
  });

  it('has the webhook widgets and a row per category', () => {
    expect(titles).toEqual(
      expect.arrayContaining(['Webhooks', 'Rejected, by reason', 'Accepted, by category']),
    );
    expect(metricsOf('Rejected, by reason')).toContain('invalid_signature');
    for (const category of CATEGORIES) {
      expect(titles).toContain(`### ${category}`);
      expect(titles).toContain(`${category}: events`);
      expect(metricsOf(`${category}: events`)).toContain('HydrationErrors');
      expect(titles).toContain(`${category}: processing time (ms)`);
      expect(titles).toContain(`${category}: queue`);
    }
  });

  it('has rows for calls (setup, outcomes, tools) and the sideband service (tasks, CPU, memory)', () => {
    for (const title of [
      'Call setup latency (ms)',
      'Call outcomes',
      'Tools',
      'Transfers · hand-offs',
      'Call ends, by reason',
      'Running tasks',
      'CPU (%)',
      'Memory (%)',
    ])
      expect(titles).toContain(title);
    expect(metricsOf('Call setup latency (ms)')).toContain('AttachLatency');
    expect(metricsOf('Running tasks')).toContain('RunningTaskCount');
  });

  it('reads only metrics the code emits, with the stack as the dimension', () => {
    const emitted = new Set(Object.keys(METRICS));
    const own = widgets.flatMap((w) =>
      ((w.properties.metrics as unknown[][] | undefined) ?? []).filter(
        (m) => m[0] === 'OpenAiWebhooks',
      ),
    );
    expect(own.length).toBeGreaterThan(50);
    for (const metric of own) {
      expect(emitted.has(String(metric[1])), String(metric[1])).toBe(true);
      expect(metric.slice(2).filter((_, i) => i % 2 === 0)).toContain('Stack');
    }
  });

  it('without calls, shows a note instead of call widgets', () => {
    const plain = dashboardOf(Template.fromStack(synthStack().stack));
    const text = JSON.stringify(plain);
    expect(text).toContain('Phone calls are off');
    expect(text).not.toContain('Call setup latency');
  });
});

describe('tracing and outputs', () => {
  it('turns X-Ray tracing on for every function when asked, and off by default', () => {
    const off = Template.fromStack(synthStack().stack);
    off.allResourcesProperties('AWS::Lambda::Function', { TracingConfig: Match.absent() });
    const on = Template.fromStack(synthStack({ tracing: true }).stack);
    on.allResourcesProperties('AWS::Lambda::Function', { TracingConfig: { Mode: 'Active' } });
    expect(nagFindings(synthStack({ tracing: true }).app)).toEqual([]);
  });

  it('gives every function its stack name for the metrics dimension', () => {
    const t = Template.fromStack(synthStack().stack);
    t.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ STACK_NAME: 'Test' }) },
    });
  });

  it('publishes the operator config (table and every queue) and the dashboard name', () => {
    const t = Template.fromStack(synthStack({ calls: CALLS }).stack);
    t.hasOutput('OperatorConfig', {});
    t.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'Test-operations' });
    t.hasOutput('DashboardName', { Value: { Ref: Match.anyValue() } });
    const output = JSON.stringify(t.findOutputs('OperatorConfig'));
    for (const name of [...CATEGORIES, 'signals', 'dlqUrl', 'tableName'])
      expect(output).toContain(name);
  });
});
