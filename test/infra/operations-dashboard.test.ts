import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Alarm } from 'aws-cdk-lib/aws-cloudwatch';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { METRICS, METRICS_NAMESPACE } from '#core/observability/metrics';
import { CATEGORIES } from '#core/webhooks/categories';
import {
  OperationsDashboard,
  type OperationsDashboardProps,
} from '../../lib/constructs/operations-dashboard';
import { SidebandService } from '../../lib/constructs/sideband-service';
import { PropsError } from '../../lib/constructs/validation';
import { bareStack, callsFixture, expectContained, webhookParts } from './constructs';

type Resource = { Properties: Record<string, unknown> };
type Options = Omit<OperationsDashboardProps, 'ingress' | 'fanout' | 'alarms' | 'store'> & {
  alarmCount?: number;
  calls?: boolean;
  /** Pass the event table (the stack does). */
  withStore?: boolean;
};
type Widget = { type: string; properties: Record<string, unknown> };
/** A graph line: namespace, metric name, dimension name/value pairs, then its options. */
type MetricLine = (string | Record<string, unknown>)[];

function dashboardIn(options: Options = {}) {
  const { stack } = bareStack();
  const parts = webhookParts(stack);
  const { alarmCount, calls, withStore, ...props } = options;
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
    ...(withStore ? { store: parts.store } : {}),
    ...(alarmCount !== undefined ? { alarms } : {}),
    ...props,
  });
  const template = Template.fromStack(stack);
  const [resource] = Object.values(
    template.findResources('AWS::CloudWatch::Dashboard') as Record<string, Resource>,
  );
  const body = resource?.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  // A reference becomes `REF:<logical id>`, so a line can be traced to the resource it reads.
  const widgets = JSON.parse(
    body['Fn::Join'][1]
      .map((part) => {
        if (typeof part === 'string') return part;
        const ref = (part as { Ref?: unknown }).Ref;
        return typeof ref === 'string' ? `REF:${ref}` : 'TOKEN';
      })
      .join(''),
  ).widgets as Widget[];
  const titles = widgets.map((w) => String(w.properties.title ?? w.properties.markdown ?? ''));
  const widget = (title: string): Widget => {
    const found = widgets.find((w) => w.properties.title === title);
    if (!found) throw new Error(`no widget "${title}" in ${titles.join(' | ')}`);
    return found;
  };
  /**
   * The lines of a graph, without their options: [namespace, name, ...dimension pairs], the
   * pairs sorted by dimension name (their order in the body carries no meaning).
   */
  const lines = (title: string): string[][] =>
    ((widget(title).properties.metrics ?? []) as MetricLine[]).map((line) => {
      const [namespace = '', name = '', ...rest] = line.filter(
        (x): x is string => typeof x === 'string',
      );
      const pairs: [string, string][] = [];
      for (let i = 0; i + 1 < rest.length; i += 2) pairs.push([rest[i] ?? '', rest[i + 1] ?? '']);
      pairs.sort(([a], [b]) => a.localeCompare(b));
      return [namespace, name, ...pairs.flat()];
    });
  const ref = (construct: IConstruct) =>
    `REF:${stack.getLogicalId(construct.node.defaultChild as CfnElement)}`;
  return { stack, parts, alarms, dashboard, template, widgets, titles, widget, lines, ref };
}

/** A project metric's line: our namespace, its name, the stack-wide total (the `Stack` dimension). */
const own = (name: string) => ['OpenAiWebhooks', name, 'Stack', 'Bare'];

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

  it('has an operating-limits row: the ingress at its reserved concurrency, DynamoDB throttles, malformed envelopes kept', () => {
    const { titles, lines, widget, ref, parts, template } = dashboardIn({ withStore: true });
    const row = titles.indexOf('### Operating limits');
    expect(row).toBeGreaterThan(3);
    expect(titles.slice(row + 1, row + 4)).toEqual([
      'Ingress concurrency · throttles',
      'DynamoDB throttles',
      'Malformed envelopes (kept)',
    ]);
    // Without calls there is no call recorder to graph.
    expect(titles).not.toContain('Call recorder: items dropped');

    const fn = ref(parts.ingress.fn);
    expect(lines('Ingress concurrency · throttles')).toEqual([
      ['AWS/Lambda', 'ConcurrentExecutions', 'FunctionName', fn],
      ['AWS/Lambda', 'Throttles', 'FunctionName', fn],
    ]);
    const ingressGraph = widget('Ingress concurrency · throttles').properties;
    // Throttles on the right axis; a red line at the reserved concurrency the function has.
    expect((ingressGraph.metrics as MetricLine[])[1]?.at(-1)).toMatchObject({
      yAxis: 'right',
      stat: 'Sum',
    });
    const resources = template.toJSON().Resources as Record<string, Resource>;
    const reserved = resources[fn.slice('REF:'.length)]?.Properties.ReservedConcurrentExecutions;
    expect(reserved).toEqual(expect.any(Number));
    expect(ingressGraph.annotations).toEqual({
      horizontal: [expect.objectContaining({ value: reserved, label: 'reserved concurrency' })],
    });

    const table = ref(parts.store.table);
    expect(lines('DynamoDB throttles')).toEqual([
      ['AWS/DynamoDB', 'WriteThrottleEvents', 'TableName', table],
      ['AWS/DynamoDB', 'ReadThrottleEvents', 'TableName', table],
      [
        'AWS/DynamoDB',
        'WriteThrottleEvents',
        'GlobalSecondaryIndexName',
        'eventsByCategory',
        'TableName',
        table,
      ],
      ...['PutItem', 'UpdateItem', 'TransactWriteItems', 'BatchWriteItem', 'GetItem', 'Query'].map(
        (op) => ['AWS/DynamoDB', 'ThrottledRequests', 'Operation', op, 'TableName', table],
      ),
    ]);
    expect(lines('Malformed envelopes (kept)')).toEqual([own('WebhooksMalformed')]);
  });

  it('leaves the table graph out without a table', () => {
    const { titles } = dashboardIn();
    expect(titles).toContain('Ingress concurrency · throttles');
    expect(titles).not.toContain('DynamoDB throttles');
  });

  it("graphs every worker metric of issue 11 and the call recorder's dropped items, each as the worker emits it", () => {
    const { titles, lines } = dashboardIn({ calls: true });
    expect(lines('Call recorder: items dropped')).toEqual([own('RecorderItemsDropped')]);
    const row = titles.indexOf('### Call ownership and faults');
    expect(titles.slice(row + 1)).toEqual([
      'Call ownership',
      'Tool calls under faults',
      'The caller: silences and barge-ins',
    ]);
    expect(lines('Call ownership')).toEqual(['LeasesLost', 'Reattaches', 'AttachRetries'].map(own));
    expect(lines('Tool calls under faults')).toEqual(
      ['ToolCallsSkipped', 'ToolOutputsTruncated', 'ToolOutputsHandedOver'].map(own),
    );
    expect(lines('The caller: silences and barge-ins')).toEqual(
      ['IdleTimeouts', 'CallerBargeIns'].map(own),
    );
    // Every one is in the catalogue the worker emits from, as a count, in the one namespace.
    expect(METRICS_NAMESPACE).toBe('OpenAiWebhooks');
    for (const name of [
      'LeasesLost',
      'Reattaches',
      'AttachRetries',
      'ToolCallsSkipped',
      'ToolOutputsTruncated',
      'ToolOutputsHandedOver',
      'IdleTimeouts',
      'CallerBargeIns',
    ] as const)
      expect(METRICS[name].unit).toBe('Count');
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
