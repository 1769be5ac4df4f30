import { emfRecord } from '../../../lambdas/shared/core/emf';

export const METRICS_NAMESPACE = 'OpenAiWebhooks';

export type WorkerMetric =
  | 'TransfersFailed'
  | 'TransfersConfirmed'
  | 'Handoffs'
  | 'SweeperReattaches'
  | 'SessionCapHits';

/**
 * Counts a worker event as CloudWatch EMF on stdout (extracted from the awslogs stream). The
 * `Service` dimension is the stack's sideband service, the same one scaling reads.
 */
export function countMetric(
  name: WorkerMetric,
  service: string | undefined,
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  now = Date.now(),
): void {
  write(
    JSON.stringify(
      emfRecord(METRICS_NAMESPACE, { Service: service ?? 'local' }, [{ name, value: 1 }], now),
    ),
  );
}
