import { Duration, Stack, Token } from 'aws-cdk-lib';
import {
  AlarmStatusWidget,
  Color,
  Dashboard,
  GraphWidget,
  type IAlarm,
  type IMetric,
  type IWidget,
  type Metric,
  TextWidget,
} from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import type { MetricDimension } from '#core/observability/metrics';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import type { CategoryFanout } from './category-fanout';
import type { EventStore } from './event-store';
import {
  CALL_END_REASONS,
  CALL_FAILURE_REASONS,
  CALL_REJECT_REASONS,
  INGRESS_REJECTION_REASONS,
  type ProjectMetricOptions,
} from './project-metrics';
import type { SidebandService } from './sideband-service';
import { PropsCheck } from './validation';
import type { WebhookIngress } from './webhook-ingress';

/** What one alarm status widget shows at most (a CloudWatch limit). */
const MAX_ALARMS_PER_WIDGET = 100;

export interface OperationsDashboardProps {
  /** The webhook endpoint: the health row's errors and the webhooks row. */
  readonly ingress: WebhookIngress;
  /** The category queues and consumers: DLQ depth, oldest message, and a row per category. */
  readonly fanout: CategoryFanout;
  /** The event table: throttled reads and writes in the health row. @default not shown */
  readonly store?: EventStore;
  /** The phone-call service: its rows and the capacity graph. @default a note that calls are off */
  readonly sideband?: SidebandService;
  /** Alarms shown in the status row under the health row (at most 100). @default no status row */
  readonly alarms?: readonly IAlarm[];
  /**
   * The dashboard's name: letters, digits, `-` and `_`, at most 255 characters.
   * @default `<stack name>-operations`
   */
  readonly dashboardName?: string;
}

const HEIGHT = 6;
const THIRD = 8;
const QUARTER = 6;

/**
 * One dashboard per stack, laid out for an operator: a health row first (is anything failing or
 * piling up?), then webhooks, then a row per category, then calls and the sideband service.
 * Every graph reads a metric directly: no metric math.
 */
export class OperationsDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const name = props.dashboardName ?? `${Stack.of(this).stackName}-operations`;
    new PropsCheck('OperationsDashboard', id)
      .that(
        Token.isUnresolved(name) || /^[\w-]{1,255}$/.test(name),
        'dashboardName',
        `must be 1 to 255 letters, digits, - or _; got "${name}".`,
      )
      .that(
        (props.alarms?.length ?? 0) <= MAX_ALARMS_PER_WIDGET,
        'alarms',
        `must hold at most ${MAX_ALARMS_PER_WIDGET} alarms (an alarm status widget's limit); got ${props.alarms?.length}.`,
      )
      .assert();
    const { ingress, fanout, sideband } = props;
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: name,
      defaultInterval: Duration.hours(3),
    });
    const graph = (
      title: string,
      left: IMetric[],
      options: { width?: number; right?: IMetric[]; stacked?: boolean; capacity?: number } = {},
    ) =>
      new GraphWidget({
        title,
        left,
        width: options.width ?? QUARTER,
        height: HEIGHT,
        ...(options.right ? { right: options.right } : {}),
        ...(options.stacked ? { stacked: true } : {}),
        ...(options.capacity !== undefined
          ? {
              leftAnnotations: [{ value: options.capacity, label: 'capacity', color: Color.RED }],
            }
          : {}),
      });
    const perCategory = (metric: (category: Category) => Metric) =>
      CATEGORIES.map((category) => metric(category).with({ label: category }));

    // Health: is anything failing, piling up or full?
    const health: IWidget[] = [
      graph('Ingress errors', [
        ingress.metricResponses('5xx').with({ label: '5xx answers' }),
        ingress.metricErrors().with({ label: 'invocation errors' }),
        ingress.metricWebhooks('SignatureFailures', { label: 'signature failures' }),
        ingress.metricThrottles().with({ label: 'throttled (reserved concurrency)' }),
        ...(props.store
          ? [
              props.store.metricWriteThrottles().with({ label: 'table write throttles' }),
              props.store.metricReadThrottles().with({ label: 'table read throttles' }),
            ]
          : []),
      ]),
      graph('DLQ depth', [
        ...perCategory((c) => fanout.metricDeadLetterDepth(c)),
        ...(sideband ? [sideband.metricSignalDeadLetters().with({ label: 'signals' })] : []),
      ]),
      graph(
        'Oldest message age (s)',
        perCategory((c) => fanout.metricOldestMessageAge(c)),
      ),
      sideband
        ? graph(
            'Active calls vs capacity',
            [sideband.metricAccountActiveCalls().with({ label: 'active calls' })],
            { capacity: sideband.callCapacity },
          )
        : new TextWidget({
            markdown: '**Phone calls are off.** Set `calls` in the stack props to enable them.',
            width: QUARTER,
            height: HEIGHT,
          }),
    ];
    this.dashboard.addWidgets(...health);
    if (props.alarms && props.alarms.length > 0) {
      this.dashboard.addWidgets(
        new AlarmStatusWidget({
          title: 'Alarms',
          alarms: [...props.alarms],
          width: 24,
          height: 3,
        }),
      );
    }

    // Webhooks at the door.
    this.dashboard.addWidgets(
      graph('Webhooks', [
        ingress.metricWebhooks('WebhooksReceived', { label: 'received' }),
        ingress.metricWebhooks('WebhooksVerified', { label: 'verified' }),
        ingress.metricWebhooks('WebhooksDuplicate', { label: 'duplicates' }),
        ingress.metricWebhooks('WebhooksFailed', { label: '5xx (retried)' }),
      ]),
      graph(
        'Rejected, by reason',
        eachValue(
          (o) => ingress.metricWebhooks('WebhooksRejected', o),
          'Reason',
          INGRESS_REJECTION_REASONS,
        ),
        { stacked: true },
      ),
      graph(
        'Accepted, by category',
        eachValue((o) => ingress.metricWebhooks('WebhooksAccepted', o), 'Category', CATEGORIES),
        { stacked: true },
      ),
      graph(
        'Secret matched · ack latency',
        eachValue(
          (o) => ingress.metricWebhooks('SecretMatched', o),
          'Secret',
          ['current', 'previous'],
          'secret: ',
        ),
        {
          right: [
            ingress.metricWebhooks('AckLatency', { statistic: 'p50', label: 'ack p50 (ms)' }),
            ingress.metricWebhooks('AckLatency', { statistic: 'p99', label: 'ack p99 (ms)' }),
          ],
        },
      ),
    );

    // One row per category.
    for (const category of CATEGORIES) {
      this.dashboard.addWidgets(
        new TextWidget({ markdown: `### ${category}`, width: 24, height: 1 }),
        graph(`${category}: events`, [
          fanout.metricConsumer('EventsProcessed', category, { label: 'processed' }),
          fanout.metricConsumer('EventsSkipped', category, { label: 'skipped (already done)' }),
          fanout.metricConsumer('ProcessingFailures', category, { label: 'failures' }),
          fanout.metricConsumer('HydrationErrors', category, { label: 'hydration errors' }),
        ]),
        graph(`${category}: processing time (ms)`, [
          fanout.metricConsumer('ProcessingTime', category, { statistic: 'p50', label: 'p50' }),
          fanout.metricConsumer('ProcessingTime', category, { statistic: 'p99', label: 'p99' }),
          fanout.metricConsumer('EventLatency', category, {
            statistic: 'p99',
            label: 'accepted → processed p99',
          }),
        ]),
        graph(`${category}: queue`, [fanout.metricQueueDepth(category).with({ label: 'depth' })], {
          right: [fanout.metricOldestMessageAge(category).with({ label: 'oldest (s)' })],
        }),
        graph(`${category}: DLQ and errors`, [
          fanout.metricDeadLetterDepth(category).with({ label: 'DLQ depth' }),
          fanout.metricConsumerErrors(category).with({ label: 'Lambda errors' }),
        ]),
      );
    }

    if (sideband) this.addCallRows(sideband, graph);
  }

  /** The dashboard's name (the stack's `DashboardName` output). */
  get dashboardName(): string {
    return this.dashboard.dashboardName;
  }

  private addCallRows(
    sideband: SidebandService,
    graph: (
      title: string,
      left: IMetric[],
      options?: { width?: number; right?: IMetric[]; stacked?: boolean; capacity?: number },
    ) => GraphWidget,
  ): void {
    const calls = (
      name: Parameters<SidebandService['metricCalls']>[0],
      label: string,
      statistic?: string,
    ) => sideband.metricCalls(name, { label, ...(statistic ? { statistic } : {}) });
    const byReason = (
      name: 'CallsRejected' | 'CallsFailed' | 'CallsEnded',
      dimension: 'Reason' | 'EndReason',
      reasons: readonly string[],
      prefix = '',
    ) => eachValue((o) => sideband.metricCalls(name, o), dimension, reasons, prefix);

    this.dashboard.addWidgets(
      new TextWidget({ markdown: '### Phone calls', width: 24, height: 1 }),
      graph('Call setup latency (ms)', [
        calls('AcceptLatency', 'webhook → accept p50', 'p50'),
        calls('AcceptLatency', 'webhook → accept p95', 'p95'),
        calls('AttachLatency', 'accept → attached p50', 'p50'),
        calls('AttachLatency', 'accept → attached p95', 'p95'),
      ]),
      graph('Call outcomes', [
        calls('CallsIncoming', 'incoming'),
        calls('CallsAccepted', 'accepted'),
        calls('CallsMissed', 'missed'),
        ...byReason('CallsRejected', 'Reason', CALL_REJECT_REASONS, 'rejected: '),
        ...byReason('CallsFailed', 'Reason', CALL_FAILURE_REASONS, 'failed: '),
      ]),
      graph('Tools', [calls('ToolCalls', 'tool calls'), calls('ToolErrors', 'tool errors')], {
        right: [
          calls('ToolLatency', 'latency p50 (ms)', 'p50'),
          calls('ToolLatency', 'latency p95 (ms)', 'p95'),
        ],
      }),
      graph('Transfers · hand-offs', [
        calls('TransfersConfirmed', 'transfers confirmed'),
        calls('TransfersFailed', 'transfers failed'),
        calls('Handoffs', 'hand-offs (deploys)'),
        calls('SweeperReattaches', 'sweeper re-attaches'),
        calls('SessionCapHits', 'session-cap wrap-ups'),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Call ends, by reason', byReason('CallsEnded', 'EndReason', CALL_END_REASONS), {
        width: THIRD,
        stacked: true,
      }),
      graph(
        'Call duration (s)',
        [calls('CallDuration', 'p50', 'p50'), calls('CallDuration', 'p95', 'p95')],
        { width: THIRD },
      ),
      graph(
        'Active calls per task',
        [sideband.metricActiveCallsPerTask().with({ label: 'average per task' })],
        { width: THIRD, capacity: sideband.callsPerTask },
      ),
    );
    this.dashboard.addWidgets(
      new TextWidget({ markdown: '### Sideband service', width: 24, height: 1 }),
      graph('Running tasks', [sideband.metricRunningTasks().with({ label: 'running' })], {
        width: THIRD,
      }),
      graph('CPU (%)', [sideband.metricCpuUtilization().with({ label: 'CPU' })], { width: THIRD }),
      graph('Memory (%)', [sideband.metricMemoryUtilization().with({ label: 'memory' })], {
        width: THIRD,
      }),
    );
  }
}

/** One line per value of a dimension (a reason, a category, a secret). */
function eachValue(
  metric: (options: ProjectMetricOptions) => Metric,
  dimension: MetricDimension,
  values: readonly string[],
  prefix = '',
): Metric[] {
  return values.map((value) =>
    metric({ dimension: { name: dimension, value }, label: `${prefix}${value}` }),
  );
}
