import { describe, expect, it } from 'vitest';
import {
  count,
  emfPublisher,
  emfRecords,
  METRICS,
  type MetricPoint,
} from '#core/observability/metrics';
import { ingressMetrics } from '#core/webhooks/receive-webhook';

const T = 1_800_000_000_000;

describe('EMF encoding', () => {
  it('publishes a metric with no dimension at [Stack] only', () => {
    expect(
      emfRecords('Prod', [count('CallsIncoming')], T, { service: 'consumer-realtime' }),
    ).toEqual([
      {
        service: 'consumer-realtime',
        _aws: {
          Timestamp: T,
          CloudWatchMetrics: [
            {
              Namespace: 'OpenAiWebhooks',
              Dimensions: [['Stack']],
              Metrics: [{ Name: 'CallsIncoming', Unit: 'Count' }],
            },
          ],
        },
        Stack: 'Prod',
        CallsIncoming: 1,
      },
    ]);
  });

  it('publishes a dimensioned metric at [Stack] and [Stack, dimension], so totals need no math', () => {
    const [record] = emfRecords(
      'Prod',
      [count('WebhooksReceived'), count('WebhooksAccepted', { name: 'Category', value: 'batch' })],
      T,
    );
    expect(record).toMatchObject({
      _aws: {
        CloudWatchMetrics: [
          { Dimensions: [['Stack']], Metrics: [{ Name: 'WebhooksReceived', Unit: 'Count' }] },
          {
            Dimensions: [['Stack'], ['Stack', 'Category']],
            Metrics: [{ Name: 'WebhooksAccepted', Unit: 'Count' }],
          },
        ],
      },
      Stack: 'Prod',
      Category: 'batch',
      WebhooksReceived: 1,
      WebhooksAccepted: 1,
    });
  });

  it('uses each metric unit from the catalogue', () => {
    const [record] = emfRecords('S', [{ name: 'CallDuration', value: 61.5 }], T);
    const aws = record?._aws as { CloudWatchMetrics: { Metrics: unknown[] }[] } | undefined;
    expect(aws?.CloudWatchMetrics[0]?.Metrics).toEqual([{ Name: 'CallDuration', Unit: 'Seconds' }]);
    expect(record?.CallDuration).toBe(61.5);
  });

  it('splits points whose dimension values or names would collide into separate records', () => {
    const points: MetricPoint[] = [
      count('ToolCalls', { name: 'Tool', value: 'lookup_order' }),
      count('ToolCalls', { name: 'Tool', value: 'end_call' }),
      count('ToolErrors', { name: 'Tool', value: 'end_call' }),
    ];
    const records = emfRecords('S', points, T);
    expect(records.map((r) => [r.Tool, r.ToolCalls, r.ToolErrors])).toEqual([
      ['lookup_order', 1, undefined],
      ['end_call', 1, 1],
    ]);
  });

  it('prints one JSON line per record and nothing for no points', () => {
    const lines: string[] = [];
    const publish = emfPublisher({ stack: 'S', clock: () => T, write: (l) => lines.push(l) });
    publish([]);
    expect(lines).toEqual([]);
    publish([count('Handoffs')]);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ Stack: 'S', Handoffs: 1 });
  });

  it('documents every metric with a CloudWatch unit', () => {
    for (const [name, spec] of Object.entries(METRICS)) {
      expect(['Count', 'Milliseconds', 'Seconds', 'None'], name).toContain(spec.unit);
      expect(spec.about.length, name).toBeGreaterThan(5);
    }
  });
});

describe('ingress metrics per outcome', () => {
  const names = (points: MetricPoint[]) =>
    points.map((p) => (p.dimension ? `${p.name}{${p.dimension.value}}` : p.name));

  it('an accepted webhook: received, verified, secret, category and ack latency', () => {
    expect(
      names(
        ingressMetrics(
          { status: 200, verified: true, secretLabel: 'previous', category: 'batch' },
          4,
        ),
      ),
    ).toEqual([
      'WebhooksReceived',
      'WebhooksVerified',
      'SecretMatched{previous}',
      'WebhooksAccepted{batch}',
      'AckLatency',
    ]);
  });

  it('a bad signature is a rejection and a signature failure, never verified', () => {
    expect(
      names(ingressMetrics({ status: 401, code: 'invalid_signature', verified: false }, 1)),
    ).toEqual(['WebhooksReceived', 'WebhooksRejected{invalid_signature}', 'SignatureFailures']);
  });

  it('a duplicate and a queue failure', () => {
    expect(
      names(
        ingressMetrics(
          {
            status: 200,
            verified: true,
            secretLabel: 'current',
            category: 'eval',
            duplicate: true,
          },
          1,
        ),
      ),
    ).toEqual([
      'WebhooksReceived',
      'WebhooksVerified',
      'SecretMatched{current}',
      'WebhooksDuplicate',
    ]);
    expect(
      names(
        ingressMetrics(
          { status: 503, code: 'queue_unavailable', verified: true, secretLabel: 'current' },
          1,
        ),
      ),
    ).toEqual([
      'WebhooksReceived',
      'WebhooksVerified',
      'SecretMatched{current}',
      'WebhooksFailed{queue_unavailable}',
    ]);
  });
});
