import type { ConsumedEvent, EventHandler } from 'openai-webhooks-cdk';
import { OpenAiApiError, type OpenAiClient } from '#adapters/openai-client';
import { openAiFromEnv } from '#adapters/openai-from-env';
import { createLogger, type Logger, parseLogLevel } from '#core/observability/logger';

/**
 * A `batch` category handler: when a batch completes, fetch the metadata of its output (and
 * error) file from the OpenAI Files API and record a summary of the batch.
 *
 * The app config loads it with `UserHandler.fromEntry('examples/handlers/batch-completed.ts')`:
 * deployed it is bundled into the batch consumer Lambda; locally (`npm start`) the same export
 * runs in the local consumer. Either way it talks to the OpenAI API the stack is configured with
 * (`OPENAI_BASE_URL`: the real API, or the local simulator) with the key from Secrets Manager
 * (`OPENAI_API_KEY_SECRET_ID`), which is what the consumer's own hydration uses.
 *
 * "Record" here is one structured log line, `batch summary`; put your own side effect there (a
 * row in your database, a message to your team), keyed by `event.eventId`: the same event can
 * reach this handler more than once.
 */

/** What is recorded per completed batch. */
export interface BatchSummary {
  readonly eventId: string;
  readonly batchId: string;
  /** The batch's status as hydrated (`completed`), or the event's when hydration is off. */
  readonly status: string;
  readonly requestCounts?: {
    readonly total: number;
    readonly completed: number;
    readonly failed: number;
  };
  readonly outputFile: FileSummary | null;
  readonly errorFile: FileSummary | null;
}

/** A file's metadata, from `GET /files/{file_id}` (the `FileObject` of the API reference). */
export type FileSummary =
  | {
      readonly id: string;
      readonly filename: string;
      readonly bytes: number;
      readonly purpose: string;
      /** Unix seconds. */
      readonly createdAt: number;
      /** Unix seconds; output files of a batch expire. */
      readonly expiresAt?: number;
    }
  | { readonly id: string; readonly error: string };

export interface BatchCompletedDeps {
  /** The OpenAI API client, or undefined when the stack has no API key (`openAiApiKeySecretName: null`). */
  readonly openAi: () => OpenAiClient | undefined;
  /** Where the summary goes. */
  readonly record: (summary: BatchSummary) => void | Promise<void>;
  readonly log: Logger;
}

/** The handler over its dependencies (tests and other wirings pass their own). */
export function batchCompletedHandler(deps: BatchCompletedDeps): EventHandler {
  return async (event: ConsumedEvent) => {
    // One handler per category: it sees every batch event; this one acts on completions only.
    if (event.type !== 'batch.completed') return;
    const batchId = typeof event.data.id === 'string' ? event.data.id : undefined;
    if (!batchId) {
      deps.log.warn('batch.completed without a batch id', { eventId: event.eventId });
      return;
    }
    // Hydration (on by default for `batch`) has fetched the batch: its file ids are in `details`.
    const details = event.object?.details ?? {};
    const client = deps.openAi();
    const file = async (key: 'output_file_id' | 'error_file_id') => {
      const id = details[key];
      if (typeof id !== 'string' || !id) return null;
      if (!client) return { id, error: 'no_api_key' };
      return fileSummary(client, id);
    };
    const [outputFile, errorFile] = await Promise.all([
      file('output_file_id'),
      file('error_file_id'),
    ]);
    const counts = details.request_counts as BatchSummary['requestCounts'] | undefined;
    await deps.record({
      eventId: event.eventId,
      batchId,
      status:
        typeof details.status === 'string' ? details.status : (event.object?.status ?? 'completed'),
      ...(counts ? { requestCounts: counts } : {}),
      outputFile,
      errorFile,
    });
  };
}

/**
 * `GET /files/{file_id}`: the file's metadata (not its content, which is `/files/{id}/content`).
 * A file that is gone (404) or refused (another 4xx) is recorded as such: retrying cannot change
 * it. A 429, 5xx or network failure is thrown after the client's own retries, so the message is
 * retried through the queue and, after `maxReceiveCount` attempts, lands in the DLQ.
 * Shape: openai-node resources/files.d.ts `FileObject` (id, bytes, created_at, filename, purpose,
 * expires_at).
 */
async function fileSummary(client: OpenAiClient, id: string): Promise<FileSummary> {
  try {
    const file = await client.request<Record<string, unknown>>(
      'GET',
      `/files/${encodeURIComponent(id)}`,
    );
    return {
      id,
      filename: String(file.filename ?? ''),
      bytes: Number(file.bytes ?? 0),
      purpose: String(file.purpose ?? ''),
      createdAt: Number(file.created_at ?? 0),
      ...(typeof file.expires_at === 'number' ? { expiresAt: file.expires_at } : {}),
    };
  } catch (error) {
    if (error instanceof OpenAiApiError && !error.retryable)
      return { id, error: error.code ?? `http_${error.status}` };
    throw error;
  }
}

const log = createLogger({
  service: 'batch-completed',
  level: parseLogLevel(process.env.LOG_LEVEL),
});
let openAi: ReturnType<typeof openAiFromEnv>;
let loaded = false;

/** The export the app config names: configured from the consumer's environment, once. */
export const handler: EventHandler = batchCompletedHandler({
  openAi: () => {
    if (!loaded) {
      openAi = openAiFromEnv(process.env);
      loaded = true;
    }
    return openAi?.client;
  },
  record: (summary) => log.info('batch summary', { ...summary }),
  log,
});
