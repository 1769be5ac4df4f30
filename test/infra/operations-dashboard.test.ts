import { Template } from 'aws-cdk-lib/assertions';
import { Alarm } from 'aws-cdk-lib/aws-cloudwatch';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { CATEGORIES } from '#core/webhooks/categories';
import {
  OperationsDashboard,
  type OperationsDashboardProps,
} from '../../lib/constructs/operations-dashboard';
import { SidebandService } from '../../lib/constructs/sideband-service';
import { PropsError } from '../../lib/constructs/validation';
import { bareStack, callsFixture, expectContained, webhookParts } from './constructs';

type Resource = { Properties: Record<string, unknown> };
type Options = Omit<OperationsDashboardProps, 'ingress' | 'fanout' | 'alarms'> & {
  alarmCount?: number;
  calls?: boolean;
};

function dashboardIn(options: Options = {}) {
  const { stack } = bareStack();
  const parts = webhookParts(stack);
  const { alarmCount, calls, ...props } = options;
  const alarms = Array.from(
    { length: alarmCount ?? 0 },
    (_, i) =>
      new Alarm(stack, `Alarm${i}`, {
        metric: parts.ingress.metricErrors(),
        threshold: 1,
        evaluationPeriods: 1,
      }),
  );
  let sideband: SidebandService | undefined;
  if (calls) {
    const { config, tool } = callsFixture(stack);
    sideband = new SidebandService(stack, 'Sideband', {
      store: parts.store,
      apiKeySecret: Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key'),
      callsConfig: config,
      toolFunctions: [tool],
    });
  }
  const dashboard = new OperationsDashboard(stack, 'Operations', {
    ingress: parts.ingress,
    fanout: parts.fanout,
    ...(sideband ? { sideband } : {}),
    ...(alarmCount !== undefined ? { alarms } : {}),
    ...props,
  });
  const template = Template.fromStack(stack);
  const [resource] = Object.values(
    template.findResources('AWS::CloudWatch::Dashboard') as Record<string, Resource>,
  );
  const body = resource?.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  const widgets = JSON.parse(
    body['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : 'TOKEN')).join(''),
  ).widgets as { type: string; properties: Record<string, unknown> }[];
  const titles = widgets.map((w) => String(w.properties.title ?? w.properties.markdown ?? ''));
  return { stack, parts, alarms, dashboard, template, widgets, titles };
}

describe('OperationsDashboard', () => {
  it('creates one dashboard named after the stack: health, webhooks, a row per category, and a calls-off note', () => {
    const { stack, parts, dashboard, template, widgets, titles } = dashboardIn();
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
      DashboardName: 'Bare-operations',
    });
    expect(stack.resolve(dashboard.dashboardName)).toEqual({
      Ref: expect.stringMatching(/^OperationsDashboard/),
    });
    expect(titles.slice(0, 3)).toEqual(['Ingress errors', 'DLQ depth', 'Oldest message age (s)']);
    expect(titles[3]).toContain('Phone calls are off');
    // Without alarms, no status row.
    expect(widgets.some((w) => w.type === 'alarm')).toBe(false);
    for (const category of CATEGORIES) expect(titles).toContain(`${category}: events`);
    expect(titles).not.toContain('Call setup latency (ms)');
    expectContained(stack, dashboard, [parts.store, parts.fanout, parts.ingress]);
  });

  it('shows the alarms in a status row under the health row', () => {
    const { widgets } = dashboardIn({ alarmCount: 3 });
    expect(widgets[4]?.type).toBe('alarm');
    expect(widgets[4]?.properties.alarms).toHaveLength(3);
  });

  it('has the call and sideband rows with a sideband, and takes a name', () => {
    const { titles, template } = dashboardIn({ calls: true, dashboardName: 'my-ops' });
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'my-ops' });
    expect(titles[3]).toBe('Active calls vs capacity');
    for (const title of ['Call setup latency (ms)', 'Call outcomes', 'Running tasks', 'CPU (%)'])
      expect(titles).toContain(title);
  });

  it.each<[Options, RegExp]>([
    [
      { dashboardName: 'has spaces!' },
      /dashboardName must be 1 to 255 letters, digits, - or _; got "has spaces!"/,
    ],
    [{ dashboardName: 'x'.repeat(256) }, /dashboardName must be 1 to 255/],
    [
      { alarmCount: 101 },
      /alarms must hold at most 100 alarms \(an alarm status widget's limit\); got 101/,
    ],
  ])('rejects %#', (options, message) => {
    expect(() => dashboardIn(options)).toThrow(PropsError);
    expect(() => dashboardIn(options)).toThrow(message);
    expect(() => dashboardIn(options)).toThrow(
      /^OperationsDashboard 'Operations' has invalid props/,
    );
  });
});
