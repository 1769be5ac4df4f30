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

// The dimension values the dashboard draws one line each for, from the unions the code gives out.
export {
  CALL_END_REASONS,
  CALL_FAILURE_REASONS,
  CALL_REJECT_REASONS,
  INGRESS_REJECTION_REASONS,
} from '#core/reasons';
