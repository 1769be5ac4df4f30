import { describe, expect, it } from 'vitest';
import { createLogger } from '#core/observability/logger';
import type { ConsumedEvent } from '#core/webhooks/process-event';
import { type BatchSummary, batchCompletedHandler } from '../../examples/handlers/batch-completed';
import {
  type ResponseSummary,
  responseCompletedHandler,
} from '../../examples/handlers/response-completed';

/**
 * The example handlers' own decisions, over their dependencies (the end-to-end run in local mode
 * is test/integration/example-handlers.test.ts).
 */
function event(type: string, id: string, object?: Partial<ConsumedEvent['object']>): ConsumedEvent {
  return {
    eventId: `evt_${id}`,
    webhookId: `wh_${id}`,
    type,
    category: type.startsWith('batch.') ? 'batch' : 'response',
    createdAt: 1,
    receivedAt: 1000,
    data: { id },
    attempt: 1,
    ...(object
      ? {
          object: {
            objectId: id,
            objectType: 'x',
            status: 'completed',
            statusEventId: `evt_${id}`,
            statusCreatedAt: 1,
            history: [],
            updatedAt: 1,
            version: 1,
            ...object,
          },
        }
      : {}),
  };
}

function logger() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    service: 'test',
    sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
  });
  return { log, lines };
}

describe('examples/handlers/batch-completed', () => {
  /** The handler as a stack without an OpenAI API key runs it, with what it records. */
  function withoutApiKey() {
    const recorded: BatchSummary[] = [];
    const handler = batchCompletedHandler({
      openAi: () => undefined,
      record: (s) => void recorded.push(s),
      log: logger().log,
    });
    return { handler, recorded };
  }

  it('acts on batch.completed only', async () => {
    const { handler, recorded } = withoutApiKey();
    await handler(event('batch.failed', 'batch_1', { details: { status: 'failed' } }));
    await handler(event('batch.expired', 'batch_2'));
    expect(recorded).toEqual([]);
  });

  it('records the file ids without metadata when the stack has no API key', async () => {
    const { handler, recorded } = withoutApiKey();
    await handler(
      event('batch.completed', 'batch_3', {
        details: { status: 'completed', output_file_id: 'file-o', error_file_id: null },
      }),
    );
    expect(recorded).toEqual([
      {
        eventId: 'evt_batch_3',
        batchId: 'batch_3',
        status: 'completed',
        outputFile: { id: 'file-o', error: 'no_api_key' },
        errorFile: null,
      },
    ]);
  });
});

describe('examples/handlers/response-completed', () => {
  it('says why there is no usage when the response was not hydrated', async () => {
    const recorded: ResponseSummary[] = [];
    const { log } = logger();
    const handler = responseCompletedHandler({ record: (s) => void recorded.push(s), log });
    await handler(event('response.completed', 'resp_1'));
    await handler(
      event('response.completed', 'resp_2', { hydrationError: 'GET /responses/resp_2: 404' }),
    );
    expect(recorded.map((s) => s.detailsMissing)).toEqual([
      'not hydrated',
      'GET /responses/resp_2: 404',
    ]);
  });

  it('warns when one response goes over its token budget', async () => {
    const recorded: ResponseSummary[] = [];
    const { log, lines } = logger();
    const handler = responseCompletedHandler({
      record: (s) => void recorded.push(s),
      log,
      tokenBudget: 500,
    });
    const usage = { input_tokens: 120, output_tokens: 480, total_tokens: 600 };
    await handler(
      event('response.completed', 'resp_3', { details: { status: 'completed', usage } }),
    );
    await handler(event('response.failed', 'resp_4', { details: { status: 'failed' } }));
    expect(recorded).toEqual([
      {
        eventId: 'evt_resp_3',
        responseId: 'resp_3',
        status: 'completed',
        inputTokens: 120,
        outputTokens: 480,
        totalTokens: 600,
      },
    ]);
    expect(lines).toMatchObject([
      { level: 'warn', message: 'response over its token budget', totalTokens: 600, budget: 500 },
    ]);
  });
});
