import type { ConsumedEvent, EventHandler } from 'openai-webhooks-cdk';
import { createLogger, type Logger, parseLogLevel } from '#core/observability/logger';

/**
 * A `response` category handler: when a background response completes, record what it cost
 * (its token usage) and warn when one response used more than a budget.
 *
 * The app config loads it with `UserHandler.fromEntry('examples/handlers/response-completed.ts')`.
 * It makes no API call of its own: hydration (on by default for `response`) has already fetched
 * the response, and its `status`, `usage` and `error` are in `event.object.details`. With
 * hydration off, or when it failed (`event.object.hydrationError`), the summary says so.
 *
 * "Record" is one structured log line, `response summary`: replace it with your own side effect,
 * keyed by `event.eventId` (the same event can arrive more than once).
 */

export interface ResponseSummary {
  readonly eventId: string;
  readonly responseId: string;
  /** As hydrated (`completed`), or the event's own status when there are no details. */
  readonly status: string;
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly totalTokens?: number;
  /** Why there is no usage: hydration off or failed. */
  readonly detailsMissing?: string;
}

export interface ResponseCompletedDeps {
  readonly record: (summary: ResponseSummary) => void | Promise<void>;
  readonly log: Logger;
  /** Total tokens above which one response logs a warning. @default 100_000 */
  readonly tokenBudget?: number;
}

export function responseCompletedHandler(deps: ResponseCompletedDeps): EventHandler {
  const budget = deps.tokenBudget ?? 100_000;
  return async (event: ConsumedEvent) => {
    if (event.type !== 'response.completed') return;
    const responseId = typeof event.data.id === 'string' ? event.data.id : undefined;
    if (!responseId) {
      deps.log.warn('response.completed without a response id', { eventId: event.eventId });
      return;
    }
    const details = event.object?.details;
    // The Responses API's `usage` (openai-node resources/responses `ResponseUsage`).
    const usage =
      typeof details?.usage === 'object' && details.usage !== null
        ? (details.usage as Record<string, unknown>)
        : undefined;
    const tokens = (key: string) => (typeof usage?.[key] === 'number' ? usage[key] : undefined);
    const summary: ResponseSummary = {
      eventId: event.eventId,
      responseId,
      status:
        typeof details?.status === 'string'
          ? details.status
          : (event.object?.status ?? 'completed'),
      ...(usage
        ? {
            inputTokens: tokens('input_tokens'),
            outputTokens: tokens('output_tokens'),
            totalTokens: tokens('total_tokens'),
          }
        : {
            detailsMissing: event.object?.hydrationError ?? 'not hydrated',
          }),
    };
    await deps.record(summary);
    if ((summary.totalTokens ?? 0) > budget)
      deps.log.warn('response over its token budget', {
        responseId,
        totalTokens: summary.totalTokens,
        budget,
      });
  };
}

const log = createLogger({
  service: 'response-completed',
  level: parseLogLevel(process.env.LOG_LEVEL),
});

/** The export the app config names. */
export const handler: EventHandler = responseCompletedHandler({
  record: (summary) => log.info('response summary', { ...summary }),
  log,
});
