import type { HydrationResult, Hydrator } from '#core/ports/webhooks';
import { hydratableType, pickFields } from '#core/webhooks/hydration';
import { OpenAiApiError, type OpenAiClient } from './openai-client';

/**
 * The `Hydrator` port over the OpenAI REST API. Retryable failures (429, 5xx, network) are thrown
 * after the client's own retries; client errors (such as 404) are final and come back `rejected`.
 */
export class OpenAiHydrator implements Hydrator {
  constructor(private readonly client: OpenAiClient) {}

  async hydrate(objectType: string, objectId: string): Promise<HydrationResult> {
    const spec = hydratableType(objectType);
    if (!spec) return { kind: 'unsupported' };
    try {
      const object = await this.client.request('GET', spec.path(objectId));
      return { kind: 'fetched', details: pickFields(object, spec.fields) };
    } catch (error) {
      if (error instanceof OpenAiApiError && !error.retryable) {
        return { kind: 'rejected', error: error.message };
      }
      throw error;
    }
  }
}
