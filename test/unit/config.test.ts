import { Duration } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, resolveConfig } from '../../lib/config';

describe('resolveConfig', () => {
  it('states every default', () => {
    const config = resolveConfig();
    expect(config.webhookSecretName).toBe(DEFAULTS.webhookSecretName);
    expect(config.maxBodyBytes).toBe(1024 * 1024);
    expect(config.signatureTolerance.toSeconds()).toBe(300);
    expect(config.dedupeRetention.toHours()).toBe(168);
    expect(config.categories.batch).toMatchObject({
      batchSize: 10,
      maxReceiveCount: 5,
      hydrate: true,
    });
    expect(config.categories.eval.hydrate).toBe(false);
    expect(config.categories.other.hydrate).toBe(false);
  });

  it('turns hydration off when there is no API key secret', () => {
    expect(resolveConfig({ openAiApiKeySecretName: null }).categories.batch.hydrate).toBe(false);
  });

  it.each([
    [{ dedupeRetention: Duration.hours(48) }, /at least 72 hours/],
    [{ maxBodyBytes: 2 * 1024 * 1024 }, /maxBodyBytes/],
    [{ signatureTolerance: Duration.hours(2) }, /signatureTolerance/],
    [{ maxReceiveCount: 0 }, /maxReceiveCount/],
    [{ ingressReservedConcurrency: 0 }, /ingressReservedConcurrency/],
    [
      { openAiApiKeySecretName: null, categories: { batch: { hydrate: true } } },
      /batch.hydrate needs openAiApiKeySecretName/,
    ],
    [{ categories: { eval: { hydrate: true } } }, /cannot fetch eval objects/],
    [{ categories: { batch: { batchSize: 50 } } }, /needs a maxBatchingWindow/],
    [{ categories: { batch: { timeout: Duration.seconds(1) } } }, /timeout/],
    [{ categories: { nonsense: {} } as never }, /Unknown category "nonsense"/],
    [{ openAiBaseUrl: 'http://api.openai.com/v1' }, /https/],
    [{ dlqRetention: Duration.days(30) }, /dlqRetention/],
  ])('rejects contradictory or out-of-range props %#', (props, message) => {
    expect(() => resolveConfig(props)).toThrow(message);
  });

  it('reports every problem at once', () => {
    expect(() => resolveConfig({ maxReceiveCount: 0, maxBodyBytes: 1 })).toThrow(
      /maxBodyBytes[\s\S]*maxReceiveCount/,
    );
  });
});
