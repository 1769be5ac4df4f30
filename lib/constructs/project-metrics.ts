import { Duration, Stack } from 'aws-cdk-lib';
import { Metric, type MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import type { IConstruct } from 'constructs';
import {
  METRICS,
  METRICS_NAMESPACE,
  type MetricDimension,
  type MetricName,
} from '#core/observability/metrics';

export interface ProjectMetricOptions {
  /** One extra dimension (`Category`, `Reason`, …); without it, the stack-wide total. */
  readonly dimension?: { readonly name: MetricDimension; readonly value: string };
  /** @default Sum for counts, p95 for durations */
  readonly statistic?: string;
  /** @default one minute */
  readonly period?: Duration;
  readonly label?: string;
}

/**
 * One of the project's own EMF metrics (core/observability/metrics.ts), for this stack: the
 * `Stack` dimension is the stack's name, which every function and the worker get as STACK_NAME.
 */
export function projectMetric(
  scope: IConstruct,
  name: MetricName,
  options: ProjectMetricOptions = {},
): Metric {
  const unit = METRICS[name].unit;
  const metricOptions: MetricOptions = {
    statistic: options.statistic ?? (unit === 'Count' ? 'Sum' : 'p95'),
    period: options.period ?? Duration.minutes(1),
    ...(options.label ? { label: options.label } : {}),
  };
  return new Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: {
      Stack: Stack.of(scope).stackName,
      ...(options.dimension ? { [options.dimension.name]: options.dimension.value } : {}),
    },
    ...metricOptions,
  });
}

/** The `Reason` values the ingress rejects with (4xx error codes), one dashboard line each. */
export const INGRESS_REJECTION_REASONS = [
  'invalid_signature',
  'timestamp_out_of_tolerance',
  'missing_header',
  'malformed_header',
  'invalid_encoding',
  'invalid_json',
  'invalid_envelope',
  'body_too_large',
  'method_not_allowed',
  'delivery_in_progress',
] as const;

/** The `Reason` values of CallsRejected and CallsFailed. */
export const CALL_REJECT_REASONS = ['busy', 'denied', 'not_allowed', 'invalid_session'] as const;
export const CALL_FAILURE_REASONS = ['accept_failed', 'gone_before_accept'] as const;

/** The common `EndReason` values (others, such as `closed_<code>`, appear in the console). */
export const CALL_END_REASONS = [
  'caller_hung_up',
  'hung_up_by_agent',
  'transferred',
  'session_expired',
  'keepalive_timeout',
  'normal_closure',
  'gone',
  'attach_failed',
] as const;
