/**
 * A CloudWatch embedded-metric-format record: one JSON log line that CloudWatch turns into
 * metrics (from Lambda's stdout, and from ECS through the awslogs driver's PutLogEvents).
 */
export interface EmfMetric {
  readonly name: string;
  readonly value: number;
  readonly unit?: 'Count' | 'Milliseconds' | 'Percent' | 'None';
}

export function emfRecord(
  namespace: string,
  dimensions: Readonly<Record<string, string>>,
  metrics: readonly EmfMetric[],
  timestamp: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const record: Record<string, unknown> = {
    ...extra,
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [
        {
          Namespace: namespace,
          Dimensions: [Object.keys(dimensions)],
          Metrics: metrics.map((m) => ({ Name: m.name, Unit: m.unit ?? 'Count' })),
        },
      ],
    },
    ...dimensions,
  };
  for (const metric of metrics) record[metric.name] = metric.value;
  return record;
}
