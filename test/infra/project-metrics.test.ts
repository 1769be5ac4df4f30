import { Duration } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { METRICS_NAMESPACE } from '#core/observability/metrics';
import * as reasons from '#core/reasons';
import {
  CALL_END_REASONS,
  CALL_FAILURE_REASONS,
  CALL_REJECT_REASONS,
  INGRESS_REJECTION_REASONS,
  projectMetric,
} from '../../lib/constructs/project-metrics';
import { bareStack } from './constructs';

describe('projectMetric', () => {
  it('reads the project namespace with the stack as its dimension: Sum per minute for counts', () => {
    const { stack } = bareStack();
    const metric = projectMetric(stack, 'WebhooksReceived');
    expect(metric.namespace).toBe(METRICS_NAMESPACE);
    expect(metric.metricName).toBe('WebhooksReceived');
    expect(metric.dimensions).toEqual({ Stack: 'Bare' });
    expect(metric.statistic).toBe('Sum');
    expect(metric.period.toSeconds()).toBe(60);
    expect(metric.label).toBeUndefined();
  });

  it('uses p95 for durations, and takes a dimension, statistic, period and label', () => {
    const { stack } = bareStack();
    expect(projectMetric(stack, 'AckLatency').statistic).toBe('p95');
    const metric = projectMetric(stack, 'WebhooksRejected', {
      dimension: { name: 'Reason', value: 'invalid_signature' },
      statistic: 'Maximum',
      period: Duration.minutes(5),
      label: 'rejected',
    });
    expect(metric.dimensions).toEqual({ Stack: 'Bare', Reason: 'invalid_signature' });
    expect(metric.statistic).toBe('Maximum');
    expect(metric.period.toSeconds()).toBe(300);
    expect(metric.label).toBe('rejected');
  });

  it('leaves a period CloudWatch does not accept to CloudWatch’s own check', () => {
    const { stack } = bareStack();
    expect(() => projectMetric(stack, 'WebhooksReceived', { period: Duration.seconds(7) })).toThrow(
      /period/i,
    );
  });

  it('re-exports the reason lists of core/reasons.ts for the dashboard', () => {
    expect(INGRESS_REJECTION_REASONS).toBe(reasons.INGRESS_REJECTION_REASONS);
    expect(CALL_REJECT_REASONS).toBe(reasons.CALL_REJECT_REASONS);
    expect(CALL_FAILURE_REASONS).toBe(reasons.CALL_FAILURE_REASONS);
    expect(CALL_END_REASONS).toBe(reasons.CALL_END_REASONS);
    expect(INGRESS_REJECTION_REASONS).toContain('invalid_signature');
  });
});
