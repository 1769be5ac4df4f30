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
import { Operation } from 'aws-cdk-lib/aws-dynamodb';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { MetricDimension } from '#core/observability/metrics';
import { TABLE_SCHEMA } from '#core/table-schema';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import type { CallControlApi } from './call-control-api';
import type { CategoryFanout } from './category-fanout';
import type { EventStore } from './event-store';
import {
  CALL_END_REASONS,
  CALL_FAILURE_REASONS,
  CALL_REJECT_REASONS,
  INGRESS_REJECTION_REASONS,
  type ProjectMetricOptions,
  projectMetric,
} from './project-metrics';
import type { CallMetricName, SidebandService } from './sideband-service';
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
  /** Live call control (issue 16): a row of command outcomes and latency. @default not shown */
  readonly callControl?: CallControlApi;
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
    const graph: Graph = (title, left, options = {}) =>
      new GraphWidget({
        title,
        left,
        width: options.width ?? QUARTER,
        height: HEIGHT,
        ...(options.right ? { right: options.right } : {}),
        ...(options.stacked ? { stacked: true } : {}),
        ...(options.capacity !== undefined
          ? {
              leftAnnotations: [
                {
                  value: options.capacity,
                  label: options.capacityLabel ?? 'capacity',
                  color: Color.RED,
                },
              ],
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

    this.addLimitRow(props, graph);

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
    if (props.callControl) this.addCallControlRow(props.callControl, graph);
  }

  /** The dashboard's name (the stack's `DashboardName` output). */
  get dashboardName(): string {
    return this.dashboard.dashboardName;
  }

  /**
   * Operating limits (issue 12 §3): the ingress at its reserved concurrency, DynamoDB throttling,
   * verified events kept with a `malformed` flag, and call-recorder items dropped for good. Their
   * alarms are in `Alarms` (IngressThrottles, TableWriteThrottles, TableReadThrottles,
   * RecorderItemsDropped). DynamoDB's `WriteThrottleEvents` with `TableName` alone leaves the
   * indexes out; an index's needs `GlobalSecondaryIndexName` too, and `ThrottledRequests` counts
   * a request once per `Operation` ("CloudWatch throttling metrics", Amazon DynamoDB developer
   * guide: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TroubleshootingThrottling-cloudwatch.html).
   */
  private addLimitRow(props: OperationsDashboardProps, graph: Graph): void {
    const { ingress, store, sideband } = props;
    const fn = ingress.fn;
    // The reserved concurrency as synthesized (`ingressReservedConcurrency`), for the red line.
    const reserved = (fn.node.defaultChild as CfnFunction | undefined)
      ?.reservedConcurrentExecutions;
    const widgets: IWidget[] = [
      graph(
        'Ingress concurrency · throttles',
        [
          fn
            .metric('ConcurrentExecutions', { statistic: 'Maximum', period: Duration.minutes(1) })
            .with({ label: 'concurrent executions (max)' }),
        ],
        {
          right: [ingress.metricThrottles().with({ label: 'throttled: 429, OpenAI retries' })],
          ...(typeof reserved === 'number' && !Token.isUnresolved(reserved)
            ? { capacity: reserved, capacityLabel: 'reserved concurrency' }
            : {}),
        },
      ),
    ];
    if (store) {
      const table = store.table;
      const index = TABLE_SCHEMA.eventsByCategoryIndex.name;
      widgets.push(
        graph(
          'DynamoDB throttles',
          [
            store.metricWriteThrottles().with({ label: 'write throttle events' }),
            store.metricReadThrottles().with({ label: 'read throttle events' }),
            table
              .metric('WriteThrottleEvents', {
                statistic: 'Sum',
                period: Duration.minutes(1),
                dimensionsMap: { TableName: table.tableName, GlobalSecondaryIndexName: index },
              })
              .with({ label: `index ${index}: write throttle events` }),
          ],
          {
            // Per operation, plain metrics (no metric math): the writes of the webhook and call
            // paths, and the reads of the consumers and listings.
            right: [
              Operation.PUT_ITEM,
              Operation.UPDATE_ITEM,
              Operation.TRANSACT_WRITE_ITEMS,
              Operation.BATCH_WRITE_ITEM,
              Operation.GET_ITEM,
              Operation.QUERY,
            ].map((operation) =>
              table.metricThrottledRequestsForOperation(operation, {
                statistic: 'Sum',
                period: Duration.minutes(1),
                label: `throttled ${operation}`,
              }),
            ),
          },
        ),
      );
    }
    widgets.push(
      graph('Malformed envelopes (kept)', [
        projectMetric(ingress, 'WebhooksMalformed', {
          label: 'verified, stored with a malformed flag',
        }),
      ]),
    );
    if (sideband) {
      widgets.push(
        graph('Call recorder: items dropped', [
          // The total over every Reason (each point is also published under [Stack] alone).
          sideband.metricRecorderItemsDropped({ label: 'dropped after retries' }),
        ]),
      );
    }
    this.dashboard.addWidgets(
      new TextWidget({ markdown: '### Operating limits', width: 24, height: 1 }),
      ...widgets,
    );
  }

  /** Live call control (issue 16): what the API received, what the workers did, and how fast. */
  private addCallControlRow(api: CallControlApi, graph: Graph): void {
    const command = (name: Parameters<CallControlApi['metricCommands']>[0], label: string) =>
      api.metricCommands(name, { label });
    this.dashboard.addWidgets(
      new TextWidget({ markdown: '### Call control', width: 24, height: 1 }),
      graph(
        'Call commands',
        [
          api.metricRequests().with({ label: 'API requests' }),
          command('CallCommandsApplied', 'applied'),
          command('CallCommandsRefused', 'refused'),
          command('CallCommandsFailed', 'failed'),
          api.metricClientErrors().with({ label: 'API 4xx' }),
          api.metricServerErrors().with({ label: 'API 5xx' }),
        ],
        { width: 12 },
      ),
      graph(
        'Command latency (ms)',
        [
          api.metricCommands('CallCommandLatency', {
            statistic: 'p50',
            label: 'accept → applied p50',
          }),
          api.metricCommands('CallCommandLatency', {
            statistic: 'p99',
            label: 'accept → applied p99',
          }),
          api.metricLatency().with({ label: 'API p99' }),
        ],
        { width: 12 },
      ),
    );
  }

  private addCallRows(sideband: SidebandService, graph: Graph): void {
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
    // The worker under faults (issue 11): ownership fencing, reattaches, tool outputs.
    const worker = (name: CallMetricName, label: string) => sideband.metricCalls(name, { label });
    this.dashboard.addWidgets(
      new TextWidget({ markdown: '### Call ownership and faults', width: 24, height: 1 }),
      graph(
        'Call ownership',
        [
          worker('LeasesLost', 'leases lost (fenced after a stall)'),
          worker('Reattaches', 'reattaches (unexpected clean close)'),
          worker('AttachRetries', 'attach retries'),
        ],
        { width: THIRD },
      ),
      graph(
        'Tool calls under faults',
        [
          worker('ToolCallsSkipped', 'skipped (caller interrupted)'),
          worker('ToolOutputsTruncated', 'outputs truncated'),
          worker('ToolOutputsHandedOver', 'outputs handed over'),
        ],
        { width: THIRD },
      ),
      graph(
        'The caller: silences and barge-ins',
        [
          worker('IdleTimeouts', 'server idle timeouts (caller silent)'),
          worker('CallerBargeIns', 'answers talked over (barge-ins)'),
        ],
        { width: THIRD },
      ),
    );
  }
}

type Graph = (
  title: string,
  left: IMetric[],
  options?: {
    width?: number;
    right?: IMetric[];
    stacked?: boolean;
    capacity?: number;
    capacityLabel?: string;
  },
) => GraphWidget;

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
