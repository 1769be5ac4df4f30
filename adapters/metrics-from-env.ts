import { ENV } from '#core/env';
import { emfPublisher, type MetricsPublisher, noMetrics } from '#core/observability/metrics';

/**
 * EMF on stdout, with the stack's name as the `Stack` dimension. `METRICS=off` silences it (local
 * mode hands the handlers a publisher of its own instead).
 */
export function metricsFromEnv(env: NodeJS.ProcessEnv, service: string): MetricsPublisher {
  if (env[ENV.metrics] === 'off') return noMetrics;
  return emfPublisher({
    stack: env[ENV.stackName] || 'local',
    clock: Date.now,
    write: (line) => process.stdout.write(`${line}\n`),
    properties: { service },
  });
}
