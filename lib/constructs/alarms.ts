import { Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { CATEGORIES } from '#core/webhooks/categories';
import { type AlarmThresholds, DEFAULTS } from '../config';
import type { CategoryFanout } from './category-fanout';
import type { EventStore } from './event-store';
import type { SidebandService } from './sideband-service';
import { PropsCheck } from './validation';
import type { WebhookIngress } from './webhook-ingress';

export interface AlarmsProps {
  /** The webhook endpoint: alarms on its 5xx answers and signature failures. */
  readonly ingress: WebhookIngress;
  /** The category queues: an alarm on each DLQ's depth and each queue's oldest message. */
  readonly fanout: CategoryFanout;
  /** The event table: alarms on throttled reads and writes. @default no table alarms */
  readonly store?: EventStore;
  /**
   * The phone-call service: alarms on its signal queue, accept latency, capacity, transfers and,
   * when it keeps at least one task, on none running. @default no call alarms
   */
  readonly sideband?: SidebandService;
  /** Alarm thresholds; each one left out takes its default (lib/config.ts `AlarmThresholds`). @default the defaults of each field */
  readonly thresholds?: AlarmThresholds;
  /** An e-mail address subscribed to the alarm topic. @default none */
  readonly alarmEmail?: string;
}

export interface AlarmSpec {
  /** What the alarm watches. */
  readonly metric: IMetric;
  /** The value at (or, with `below`, under) which the alarm fires. */
  readonly threshold: number;
  /** What it means and what to do: it is the alarm's description, read in the notification (at most 1024 characters). */
  readonly description: string;
  /** Periods in a row the metric must breach before the alarm fires. @default 1 */
  readonly evaluationPeriods?: number;
  /** Fire below the threshold instead. @default false: at or above the threshold */
  readonly below?: boolean;
  /** Treat a period without data as breaching. @default false: no data means nothing happened */
  readonly missingIsBreaching?: boolean;
}

/**
 * Every alarm of the stack, each with an action: the SNS topic (with an optional e-mail
 * subscription). README "Runbook" says what each one means and what to do.
 */
export class Alarms extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const given = definedOnly(props.thresholds);
    const t: Required<AlarmThresholds> = {
      ...DEFAULTS.alarms,
      ...given,
      signalAgeScaledToZero: given.signalAgeScaledToZero ?? scaledToZeroDefault(given.signalAge),
    };
    const check = new PropsCheck('Alarms', id);
    for (const name of ['ingress5xx', 'signatureFailures', 'transferFailures'] as const)
      check.integer(`thresholds.${name}`, t[name], 1, undefined, 'a count within the window');
    check
      .that(
        Token.isUnresolved(t.activeCallsRatio) ||
          (t.activeCallsRatio > 0 && t.activeCallsRatio <= 1),
        'thresholds.activeCallsRatio',
        `must be above 0 and at most 1; got ${t.activeCallsRatio}.`,
      )
      .duration('thresholds.oldestMessageAge', t.oldestMessageAge, {
        min: Duration.minutes(1),
        why: 'SQS reports the age once a minute',
      })
      .duration('thresholds.signalAge', t.signalAge, {
        min: Duration.minutes(1),
        why: 'SQS reports the age once a minute',
      })
      .duration('thresholds.signalAgeScaledToZero', t.signalAgeScaledToZero, {
        min: t.signalAge.isUnresolved() ? Duration.minutes(1) : t.signalAge,
        why: 'at least thresholds.signalAge',
      })
      .duration('thresholds.acceptLatencyP95', t.acceptLatencyP95, { min: Duration.millis(100) })
      .that(
        props.alarmEmail === undefined ||
          Token.isUnresolved(props.alarmEmail) ||
          /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail),
        'alarmEmail',
        `must be an e-mail address; got "${props.alarmEmail}".`,
      )
      .assert();

    this.topic = new Topic(this, 'Topic', {
      enforceSSL: true,
      displayName: 'OpenAI webhooks alarms',
    });
    Validations.of(this.topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry alarm names and states only, no event data; the AWS managed SNS key would block CloudWatch from publishing.',
    });
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));

    const { ingress, fanout } = props;
    const fiveMinutes = { period: Duration.minutes(5) };
    for (const category of CATEGORIES) {
      this.addAlarm(`DeadLetters-${category}`, {
        metric: fanout.metricDeadLetterDepth(category),
        threshold: 1,
        description: `${category} events failed ${fanout.maxReceiveCountOf(category)} times and wait in the DLQ. Read lastError (owh events list --status failed), fix the cause, then owh redrive ${category}.`,
      });
      this.addAlarm(`OldestMessage-${category}`, {
        metric: fanout.metricOldestMessageAge(category).with(fiveMinutes),
        threshold: t.oldestMessageAge.toSeconds(),
        description: `The oldest ${category} event has waited over ${t.oldestMessageAge.toHumanString()}: the consumer is failing, throttled or capped by maxConcurrency. Check its errors and throttles.`,
      });
    }
    this.addAlarm('Ingress5xx', {
      metric: ingress.metricResponses('5xx').with(fiveMinutes),
      threshold: t.ingress5xx,
      description:
        'The webhook URL answered 5xx (secret, table or queue unavailable); OpenAI is retrying. Check the ingress logs for the reason.',
    });
    this.addAlarm('IngressThrottles', {
      metric: ingress.metricThrottles().with(fiveMinutes),
      threshold: 1,
      description:
        'The ingress reached its reserved concurrency (ingressReservedConcurrency) or the account limit: deliveries got 429 and OpenAI is retrying them. If this is real traffic, raise ingressReservedConcurrency; if it is a flood, the cap is doing its job.',
    });
    if (props.store) {
      this.addAlarm('TableWriteThrottles', {
        metric: props.store.metricWriteThrottles().with(fiveMinutes),
        threshold: 1,
        description:
          'DynamoDB throttled writes to the event table: the ingress answers 503 (OpenAI retries) and consumers retry through their queues. An on-demand table throttles above twice its previous peak or on a hot partition (the listing index); check the table metrics and the ingress 5xx.',
      });
      this.addAlarm('TableReadThrottles', {
        metric: props.store.metricReadThrottles().with(fiveMinutes),
        threshold: 1,
        description:
          'DynamoDB throttled reads of the event table: consumers retry through their queues and owh listings slow down. Check the table metrics for a hot key.',
      });
    }
    this.addAlarm('SignatureFailures', {
      metric: ingress.metricWebhooks('SignatureFailures', fiveMinutes),
      threshold: t.signatureFailures,
      description:
        'Many webhooks failed verification: someone is probing the URL, or the secret was rotated in OpenAI without updating Secrets Manager. Compare SecretMatched and the rejected reasons.',
    });

    const sideband = props.sideband;
    if (sideband) {
      this.addAlarm('DeadLetters-signals', {
        metric: sideband.metricSignalDeadLetters(),
        threshold: 1,
        description:
          'Call signals failed 5 times: accepted calls may have had no sideband worker. Check the sideband service logs.',
      });
      // Scaled to zero, the first call after a quiet spell waits for a task to start: its signal
      // ages for minutes every time, so the alarm allows for a cold start.
      const signalAge = sideband.minTasks === 0 ? t.signalAgeScaledToZero : t.signalAge;
      this.addAlarm('OldestMessage-signals', {
        metric: sideband.metricSignalAge(),
        threshold: signalAge.toSeconds(),
        description: `A call signal has waited over ${signalAge.toHumanString()}: an accepted caller hears silence. No worker is taking signals (none running, all full, or failing)${sideband.minTasks === 0 ? '; the service scales to zero, so this allows for a task to start' : ''}.`,
      });
      this.addAlarm('AcceptLatency', {
        metric: sideband.metricCalls('AcceptLatency', { statistic: 'p95', ...fiveMinutes }),
        threshold: t.acceptLatencyP95.toMilliseconds(),
        description: `Calls take over ${t.acceptLatencyP95.toHumanString()} (p95) from webhook to accept: callers ring longer. Check the realtime consumer's duration and the OpenAI API's latency.`,
      });
      this.addAlarm('ActiveCallsNearCapacity', {
        metric: sideband.metricAccountActiveCalls(),
        threshold: Math.max(1, Math.ceil(sideband.callCapacity * t.activeCallsRatio)),
        description: `Active calls are at ${Math.round(t.activeCallsRatio * 100)} % of calls.maxConcurrentCalls (${sideband.callCapacity}); new callers will get 486 at 100 %. Raise the limit (and maxTasks) if this is real traffic.`,
      });
      // Issue 12: the recorder retries what DynamoDB throttles or hands back, cuts what is too
      // large, and counts only what it finally gave up. Any of that is a call record with a gap.
      this.addAlarm('RecorderItemsDropped', {
        metric: sideband.metricRecorderItemsDropped(fiveMinutes),
        threshold: 1,
        description:
          'The call recorder gave up writing call parts (transcript lines, tool results, usage or events) to DynamoDB: those call records have gaps. The worker\'s "recorded parts dropped" log lines give the reason (retries_exhausted or unwritten_at_close: the table throttled or was unreachable; rejected: DynamoDB refused the item). Check TableWriteThrottles and the sideband logs.',
      });
      this.addAlarm('TransfersFailing', {
        metric: sideband.metricCalls('TransfersFailed', { period: Duration.minutes(15) }),
        threshold: t.transferFailures,
        description:
          'Transfers are failing (REFER refused or never confirmed): check the transfer targets and the SIP trunk that should receive them.',
      });
      // The service keeps at least one task: then none running is an outage.
      if (sideband.minTasks >= 1) {
        this.addAlarm('NoSidebandTask', {
          metric: sideband.metricRunningTasks(),
          threshold: 1,
          below: true,
          evaluationPeriods: 2,
          // Container Insights reports nothing when the service is gone: that is an outage too.
          missingIsBreaching: true,
          description:
            'No sideband task is running: accepted calls get no greeting, tools or transcripts. Check the ECS service events (image pull, crash loop, capacity).',
        });
      }
    }
  }

  /** The SNS topic every alarm (and its all-clear) notifies. */
  get topicArn(): string {
    return this.topic.topicArn;
  }

  /** Creates an alarm notifying the topic. Names start with the stack's, so they sort together. */
  addAlarm(id: string, spec: AlarmSpec): Alarm {
    new PropsCheck('Alarms', this.node.id)
      .that(
        Token.isUnresolved(spec.threshold) || Number.isFinite(spec.threshold),
        `alarm ${id}: threshold`,
        `must be a finite number; got ${spec.threshold}.`,
      )
      .that(
        Token.isUnresolved(spec.description) ||
          (spec.description.length > 0 && spec.description.length <= 1024),
        `alarm ${id}: description`,
        'must say what the alarm means and what to do, in at most 1024 characters.',
      )
      .integer(`alarm ${id}: evaluationPeriods`, spec.evaluationPeriods, 1)
      .assert();
    const alarm = new Alarm(this, id, {
      alarmName: `${Stack.of(this).stackName}-${id}`,
      metric: spec.metric,
      threshold: spec.threshold,
      evaluationPeriods: spec.evaluationPeriods ?? 1,
      comparisonOperator: spec.below
        ? ComparisonOperator.LESS_THAN_THRESHOLD
        : ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: spec.missingIsBreaching
        ? TreatMissingData.BREACHING
        : TreatMissingData.NOT_BREACHING,
      alarmDescription: spec.description,
    });
    const action = new SnsAction(this.topic);
    alarm.addAlarmAction(action);
    // The all-clear too, so whoever was paged knows when it is over.
    alarm.addOkAction(action);
    this.alarms.push(alarm);
    return alarm;
  }
}

/** The default `signalAgeScaledToZero`: 5 minutes, or `signalAge` when that is longer. */
export function scaledToZeroDefault(signalAge: Duration | undefined): Duration {
  const fallback = DEFAULTS.alarms.signalAgeScaledToZero;
  if (!signalAge || signalAge.isUnresolved()) return fallback;
  return signalAge.toSeconds() > fallback.toSeconds() ? signalAge : fallback;
}

/** `{ a: undefined }` must not hide a default. */
function definedOnly(thresholds: AlarmThresholds | undefined): AlarmThresholds {
  return Object.fromEntries(Object.entries(thresholds ?? {}).filter(([, v]) => v !== undefined));
}
