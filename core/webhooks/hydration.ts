/**
 * Which objects hydration can fetch, and what it keeps of them. Webhooks carry only an id;
 * hydration fetches the object by that id (through the `Hydrator` port) and keeps its useful
 * fields. This table is the one list of hydratable types: the consumer asks it per event, and the
 * stack's config derives from it which categories may turn hydration on.
 *
 * Eval runs are not hydrated: the API addresses them as /evals/{eval_id}/runs/{run_id}, and the
 * webhook carries only the run id.
 */
import type { Category } from './categories';

export interface HydratableType {
  /** The category whose events carry this object type. */
  readonly category: Category;
  /** The API path that returns the object by id alone. */
  readonly path: (id: string) => string;
  /** The fields kept on the object state. */
  readonly fields: readonly string[];
}

const HYDRATABLE: Readonly<Record<string, HydratableType>> = {
  batch: {
    category: 'batch',
    path: (id) => `/batches/${encodeURIComponent(id)}`,
    fields: ['status', 'request_counts', 'output_file_id', 'error_file_id', 'errors'],
  },
  'fine_tuning.job': {
    category: 'fine_tuning',
    path: (id) => `/fine_tuning/jobs/${encodeURIComponent(id)}`,
    fields: ['status', 'fine_tuned_model', 'trained_tokens', 'error'],
  },
  response: {
    category: 'response',
    path: (id) => `/responses/${encodeURIComponent(id)}`,
    fields: ['status', 'usage', 'error'],
  },
};

/** The spec of a hydratable object type; own keys only, so `__proto__` selects nothing. */
export function hydratableType(objectType: string): HydratableType | undefined {
  return Object.hasOwn(HYDRATABLE, objectType) ? HYDRATABLE[objectType] : undefined;
}

export function isHydratable(objectType: string): boolean {
  return hydratableType(objectType) !== undefined;
}

/** Categories whose objects the OpenAI API can return by id alone. */
export const HYDRATABLE_CATEGORIES: ReadonlySet<Category> = new Set(
  Object.values(HYDRATABLE).map((type) => type.category),
);

export function pickFields(object: unknown, fields: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  if (typeof object !== 'object' || object === null) return picked;
  for (const field of fields) {
    const value = (object as Record<string, unknown>)[field];
    if (value !== undefined) picked[field] = value;
  }
  return picked;
}
