import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretSource } from '#core/ports/webhooks';

export class SecretsManagerSource implements SecretSource {
  constructor(private readonly client: SecretsManagerClient) {}

  async getSecretString(secretId: string): Promise<string> {
    const result = await this.client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (result.SecretString === undefined) {
      throw new Error(`Secret ${secretId} has no string value.`);
    }
    return result.SecretString;
  }
}

/**
 * Caches a parsed secret across invocations. A stale value is refreshed in the background
 * (stale-while-revalidate) so the acknowledgement path does not wait for Secrets Manager, and a
 * caller can force one refresh, rate-limited, when a signature fails right after a rotation.
 */
export class CachedSecret<T> {
  private value: T | undefined;
  private loadedAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<T> | undefined;
  private lastForcedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly maxAgeMs: number,
    private readonly clock: () => number = Date.now,
    private readonly minForceIntervalMs = 30_000,
  ) {}

  async get(): Promise<T> {
    if (this.value === undefined) return this.refresh();
    if (this.clock() - this.loadedAt > this.maxAgeMs) {
      // Keep serving the cached value; a failed background refresh is retried next time.
      this.refresh().catch(() => undefined);
    }
    return this.value;
  }

  /** Reloads now unless that was done within the last `minForceIntervalMs`. True if reloaded. */
  async forceRefresh(): Promise<boolean> {
    const now = this.clock();
    if (now - this.lastForcedAt < this.minForceIntervalMs) return false;
    this.lastForcedAt = now;
    await this.refresh();
    return true;
  }

  private refresh(): Promise<T> {
    this.inflight ??= this.load()
      .then((value) => {
        this.value = value;
        this.loadedAt = this.clock();
        return value;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }
}
