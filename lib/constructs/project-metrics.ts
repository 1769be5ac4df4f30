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
  /** One extra dimension (`Category`, `Reason`, …). @default none: the stack-wide total */
  readonly dimension?: { readonly name: MetricDimension; readonly value: string };
  /** The statistic (`Sum`, `Average`, `Maximum`, `p50`, …). @default Sum for counts, p95 for durations */
  readonly statistic?: string;
  /** The period each value aggregates (1, 5, 10 or 30 s, or a multiple of 60 s). @default Duration.minutes(1) */
  readonly period?: Duration;
  /** The metric's label in graphs. @default the metric's name */
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

// The dimension values the dashboard draws one line each for, from the unions the code gives out.
export {
  CALL_END_REASONS,
  CALL_FAILURE_REASONS,
  CALL_REJECT_REASONS,
  INGRESS_REJECTION_REASONS,
} from '#core/reasons';
