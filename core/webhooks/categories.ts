/**
 * Event categories. Each one gets its own queue, DLQ and consumer. `other` catches every type we
 * do not know yet (safety.*, live.*, agent.*, types OpenAI has not invented), so a new event type
 * is stored and never rejected.
 */
export const CATEGORIES = [
  'batch',
  'fine_tuning',
  'eval',
  'response',
  'realtime',
  'other',
] as const;
export type Category = (typeof CATEGORIES)[number];

const ROUTED_PREFIXES: ReadonlySet<string> = new Set(CATEGORIES.filter((c) => c !== 'other'));

/** Routes on the first segment of `type`: `fine_tuning.job.succeeded` → `fine_tuning`. */
export function categoryOf(type: string): Category {
  const dot = type.indexOf('.');
  const prefix = dot === -1 ? type : type.slice(0, dot);
  return ROUTED_PREFIXES.has(prefix) ? (prefix as Category) : 'other';
}

export function isCategory(value: string): value is Category {
  return (CATEGORIES as readonly string[]).includes(value);
}
