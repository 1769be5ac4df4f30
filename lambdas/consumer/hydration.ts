import type { OpenAiClient } from '../shared/adapters/openai-client';
import { OpenAiApiError } from '../shared/adapters/openai-client';

/**
 * Webhooks carry only an id; hydration fetches the object and keeps its useful fields.
 * Eval runs are not hydrated: the API addresses them as /evals/{eval_id}/runs/{run_id}, and the
 * webhook carries only the run id.
 */
const HYDRATABLE: Readonly<
  Record<string, { path: (id: string) => string; fields: readonly string[] }>
> = {
  batch: {
    path: (id) => `/batches/${encodeURIComponent(id)}`,
    fields: ['status', 'request_counts', 'output_file_id', 'error_file_id'],
  },
  'fine_tuning.job': {
    path: (id) => `/fine_tuning/jobs/${encodeURIComponent(id)}`,
    fields: ['status', 'fine_tuned_model', 'trained_tokens', 'error'],
  },
  response: {
    path: (id) => `/responses/${encodeURIComponent(id)}`,
    fields: ['status', 'usage', 'error'],
  },
};

export type HydrationResult =
  | { readonly kind: 'fetched'; readonly details: Record<string, unknown> }
  | { readonly kind: 'unsupported' }
  /** The API answered with a client error (such as 404) that retrying will not fix. */
  | { readonly kind: 'rejected'; readonly error: string };

export interface Hydrator {
  hydrate(objectType: string, objectId: string): Promise<HydrationResult>;
}

export function isHydratable(objectType: string): boolean {
  return objectType in HYDRATABLE;
}

export function pickFields(object: unknown, fields: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  if (typeof object !== 'object' || object === null) return picked;
  for (const field of fields) {
    const value = (object as Record<string, unknown>)[field];
    if (value !== undefined) picked[field] = value;
  }
  return picked;
}

/** Retryable failures (429, 5xx, network) are thrown after the client's own retries. */
export class OpenAiHydrator implements Hydrator {
  constructor(private readonly client: OpenAiClient) {}

  async hydrate(objectType: string, objectId: string): Promise<HydrationResult> {
    const spec = HYDRATABLE[objectType];
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
