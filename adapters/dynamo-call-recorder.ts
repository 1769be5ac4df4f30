import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { fitItem, itemBytes, redactPart } from '#core/calls/recorded-parts';
import type { Logger } from '#core/observability/logger';
import { count, type MetricsPublisher } from '#core/observability/metrics';
import { CALL_USAGE_TOTALS } from '#core/ports/calls';
import type { CallPart, CallRecorder, ResponseUsage } from '#core/ports/sideband';
import { keys } from '#core/table-schema';

const FLUSH_EVERY_MS = 1000;
/** BatchWriteItem takes at most 25 put or delete requests (API reference, BatchWriteItem). */
const BATCH_LIMIT = 25;

/**
 * Why a part was finally not written: the `Reason` of `RecorderItemsDropped`.
 * - `rejected`: DynamoDB refused the item itself (a validation error), written alone.
 * - `retries_exhausted`: throttled, unprocessed or failing for `giveUpAfterMs` without a success.
 * - `unwritten_at_close`: still failing when the recorder closed and `closeBudgetMs` ran out.
 * - `buffer_full`: more than `maxBufferedItems` or `maxBufferedBytes` waiting (DynamoDB down
 *   for a long time): the oldest go first.
 * - `not_serializable`: the part could not be turned into an item (not JSON).
 * - `usage_totals`: the running usage totals' update (one per flush) failed at close.
 */
export type RecorderDropReason =
  | 'rejected'
  | 'retries_exhausted'
  | 'unwritten_at_close'
  | 'buffer_full'
  | 'not_serializable'
  | 'usage_totals';

/** How the recorder retries, and when it gives up (and counts what it gave up). */
export interface RecorderRetryPolicy {
  /** Batch attempts in one flush while items come back unprocessed or throttled. @default 5 */
  readonly attemptsPerFlush: number;
  /** First backoff; doubles per attempt, with full jitter. @default 50 */
  readonly baseDelayMs: number;
  /** Longest backoff between attempts. @default 2000 */
  readonly maxDelayMs: number;
  /** An item failing this long (over later flushes, each second) is dropped. @default 60000 */
  readonly giveUpAfterMs: number;
  /** At close, how long the last flush keeps retrying before it drops the rest. @default 10000 */
  readonly closeBudgetMs: number;
  /** Items waiting at most, per call; beyond, the oldest is dropped. @default 10000 */
  readonly maxBufferedItems: number;
  /**
   * Bytes waiting at most, per call (as `itemBytes` counts them), so that a long outage cannot
   * exhaust a worker holding many calls; beyond, the oldest is dropped. @default 8 MiB
   */
  readonly maxBufferedBytes: number;
}

export const RECORDER_RETRY_DEFAULTS: RecorderRetryPolicy = {
  attemptsPerFlush: 5,
  baseDelayMs: 50,
  maxDelayMs: 2000,
  giveUpAfterMs: 60_000,
  closeBudgetMs: 10_000,
  maxBufferedItems: 10_000,
  maxBufferedBytes: 8 * 1024 * 1024,
};

export interface DynamoCallRecorderOptions {
  /** `redactTranscripts`: transcripts, tool arguments, outputs and errors, error texts. */
  readonly redact: boolean;
  readonly ttlSeconds: number;
  readonly clock: () => number;
  /** An unexpected failure of a flush (a bug); dropped items are logged and counted apart. */
  readonly onError: (error: unknown) => void;
  /** The worker's metrics: `RecorderItemsDropped`, by Reason. */
  readonly metrics: MetricsPublisher;
  /** The call's logger: one line per drop, with the reason, never the text. */
  readonly log: Logger;
  readonly retry?: Partial<RecorderRetryPolicy>;
  /** Item size budget, as `itemBytes` counts. @default RECORDED_ITEM_BUDGET (400 KB less 1 KiB) */
  readonly maxItemBytes?: number;
}

interface Pending {
  readonly item: Record<string, unknown>;
  readonly kind: string;
  readonly bytes: number;
  /** When it first came back unprocessed or failed (performance.now()). */
  failingSince?: number;
}

/**
 * Records a call incrementally beside its record in DynamoDB: parts and usage totals are buffered
 * and written at least every second, so a crash loses at most about a second of transcript and
 * usage.
 *
 * Nothing is lost silently. An item stays buffered until DynamoDB has it: a part larger than the
 * 400 KB item limit is cut to fit, with a marker (`fitItem`); items DynamoDB returns unprocessed,
 * and a whole batch that failed with a throttle, a 5xx or a network error, are retried with
 * backoff, in this flush and the next ones; a batch DynamoDB refused (a validation error, which
 * refuses every item of a BatchWriteItem) is written item by item, so only the bad one fails.
 * What is finally given up (see `RecorderDropReason`) is counted in `RecorderItemsDropped` and
 * logged with the reason, without the text.
 */
export class DynamoCallRecorder implements CallRecorder {
  private buffer: Pending[] = [];
  private bufferedBytes = 0;
  /** The batch being written: not evicted under it. */
  private readonly inFlight = new Set<Pending>();
  private sequence = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private pendingUsage: UsageTotals = NO_USAGE;
  private closed = false;
  private closeDeadline = Number.POSITIVE_INFINITY;
  private readonly retry: RecorderRetryPolicy;

  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly callId: string,
    private readonly options: DynamoCallRecorderOptions,
  ) {
    this.retry = { ...RECORDER_RETRY_DEFAULTS, ...options.retry };
  }

  record(part: CallPart): void {
    const at = this.options.clock();
    const recorded = this.options.redact ? redactPart(part) : part;
    // Sort keys keep parts in order: T (timeline) sequence is zero-padded; tools by function call id
    // (the same item the tool call's durable claim wrote, now with its result).
    const sk =
      part.kind === 'tool'
        ? `TOOL#${part.fnCallId}`
        : `PART#${String(at).padStart(14, '0')}#${String(this.sequence++).padStart(6, '0')}`;
    let plain: Record<string, unknown>;
    try {
      // A plain JSON value, as the part came off the socket: no undefined, NaN or class
      // instance for the marshaller to refuse (which would fail the whole batch).
      plain = JSON.parse(JSON.stringify(recorded)) as Record<string, unknown>;
    } catch (error) {
      this.dropped([{ item: {}, kind: part.kind, bytes: 0 }], 'not_serializable', error);
      return;
    }
    const fitted = fitItem(
      {
        ...keys.callPart(this.callId, sk),
        ...plain,
        at,
        expiresAt: Math.floor(at / 1000) + this.options.ttlSeconds,
      },
      this.options.maxItemBytes,
    );
    if (fitted.cut)
      this.options.log.warn('recorded part cut to fit the DynamoDB item limit', {
        kind: part.kind,
        cutBytes: fitted.cut,
      });
    const bytes = itemBytes(fitted.item);
    this.buffer.push({ item: fitted.item, kind: part.kind, bytes });
    this.bufferedBytes += bytes;
    // Over a limit: the oldest go, except what a batch is writing now (it may yet succeed).
    const evicted: Pending[] = [];
    let items = this.buffer.length;
    let bytesLeft = this.bufferedBytes;
    for (const p of this.buffer) {
      if (items <= this.retry.maxBufferedItems && bytesLeft <= this.retry.maxBufferedBytes) break;
      if (this.inFlight.has(p) || items === 1) continue;
      evicted.push(p);
      items--;
      bytesLeft -= p.bytes;
    }
    if (evicted.length > 0) this.dropped(this.removeFromBuffer(evicted), 'buffer_full');
    this.scheduleFlush();
  }

  /**
   * Adds a response's usage to the call's running totals. Totals are summed in memory and written
   * with the next flush, one update however many responses finished in that second (a tool call
   * alone finishes two), and under the same durability as the transcript.
   */
  addUsage(usage: ResponseUsage): void {
    this.pendingUsage = addTotals(this.pendingUsage, totalsOf(usage));
    this.scheduleFlush();
  }

  flush(): Promise<void> {
    this.flushing = this.flushing
      .then(() => this.writeBuffer())
      .catch((error: unknown) => this.options.onError(error));
    return this.flushing;
  }

  /** Writes what is buffered, retrying for up to `closeBudgetMs`, then drops (and counts) the rest. */
  async close(): Promise<void> {
    if (!this.closed) this.closeDeadline = performance.now() + this.retry.closeBudgetMs;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Parts waiting to be written (for tests and the worker's gauges). */
  get buffered(): number {
    return this.buffer.length;
  }

  private scheduleFlush(): void {
    if (this.closed) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_EVERY_MS);
  }

  private async writeBuffer(): Promise<void> {
    let attempt = 0;
    while (this.buffer.length > 0) {
      // Parts recorded while the last batch was written may repeat a key.
      this.dedupeBuffer();
      // The batch stays in the buffer until DynamoDB has it: a failure loses nothing.
      const batch = this.buffer.slice(0, BATCH_LIMIT);
      for (const p of batch) this.inFlight.add(p);
      const { written, unprocessed, rejected } = await this.writeBatch(batch).finally(() =>
        this.inFlight.clear(),
      );
      const done = new Set<Pending>([...written, ...rejected.map((r) => r.pending)]);
      this.removeFromBuffer(done);
      for (const r of rejected) this.dropped([r.pending], 'rejected', r.error);
      if (unprocessed.length === 0) {
        attempt = 0;
        continue;
      }
      const now = performance.now();
      for (const p of unprocessed) p.failingSince ??= now;
      attempt++;
      const closing = this.closed && now < this.closeDeadline;
      if (!closing && attempt >= this.retry.attemptsPerFlush) break;
      if (this.closed && now >= this.closeDeadline) break;
      await sleep(this.backoff(attempt));
    }
    this.expire();
    if (this.buffer.length > 0) this.scheduleFlush();
    await this.writeUsage();
  }

  /**
   * Two parts with one key (a tool's part recorded again before the first was written) would
   * make DynamoDB refuse their whole batch: the later one stands, as it would have overwritten.
   */
  private dedupeBuffer(): void {
    const last = new Map<string, Pending>();
    for (const p of this.buffer) last.set(itemKey(p.item), p);
    if (last.size === this.buffer.length) return;
    this.removeFromBuffer(this.buffer.filter((p) => last.get(itemKey(p.item)) !== p));
  }

  /** Drops what has failed for too long, or everything left once a closing flush ran out of time. */
  private expire(): void {
    const now = performance.now();
    if (this.closed) {
      if (this.buffer.length > 0)
        this.dropped(this.removeFromBuffer(this.buffer), 'unwritten_at_close');
      return;
    }
    const expired = this.buffer.filter(
      (p) => p.failingSince !== undefined && now - p.failingSince >= this.retry.giveUpAfterMs,
    );
    if (expired.length === 0) return;
    this.dropped(this.removeFromBuffer(expired), 'retries_exhausted');
  }

  /** Takes these out of the buffer, keeping its byte count; returns them. */
  private removeFromBuffer(items: Iterable<Pending>): Pending[] {
    const gone = new Set(items);
    if (gone.size === 0) return [];
    const removed: Pending[] = [];
    this.buffer = this.buffer.filter((p) => {
      if (!gone.has(p)) return true;
      removed.push(p);
      this.bufferedBytes -= p.bytes;
      return false;
    });
    return removed;
  }

  private async writeBatch(batch: readonly Pending[]): Promise<{
    written: Pending[];
    unprocessed: Pending[];
    rejected: { pending: Pending; error: unknown }[];
  }> {
    try {
      const result = await this.client.send(
        new BatchWriteCommand({
          RequestItems: {
            [this.tableName]: batch.map((p) => ({ PutRequest: { Item: p.item } })),
          },
        }),
      );
      const left = new Set(
        (result.UnprocessedItems?.[this.tableName] ?? []).flatMap((request) =>
          request.PutRequest?.Item ? [itemKey(request.PutRequest.Item)] : [],
        ),
      );
      return {
        written: batch.filter((p) => !left.has(itemKey(p.item))),
        unprocessed: batch.filter((p) => left.has(itemKey(p.item))),
        rejected: [],
      };
    } catch (error) {
      // A throttle (after the SDK's own retries), a 5xx or a lost connection: all of it again.
      if (!isRefusal(error)) return { written: [], unprocessed: [...batch], rejected: [] };
      // DynamoDB refuses a whole BatchWriteItem for one bad item (API reference,
      // BatchWriteItem: "DynamoDB rejects the entire batch write operation" when an item is too
      // large, a key repeats, ...): each alone, so only the bad one fails.
      const outcome = {
        written: [] as Pending[],
        unprocessed: [] as Pending[],
        rejected: [] as { pending: Pending; error: unknown }[],
      };
      for (const pending of batch) {
        try {
          await this.client.send(new PutCommand({ TableName: this.tableName, Item: pending.item }));
          outcome.written.push(pending);
        } catch (single) {
          if (isRefusal(single)) outcome.rejected.push({ pending, error: single });
          else outcome.unprocessed.push(pending);
        }
      }
      return outcome;
    }
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** attempt);
    return Math.floor(Math.random() * cap);
  }

  /** Counts and logs what is given up: kinds and the reason, never the text or a number. */
  private dropped(items: readonly Pending[], reason: RecorderDropReason, error?: unknown): void {
    if (items.length === 0) return;
    const kinds: Record<string, number> = {};
    for (const p of items) kinds[p.kind] = (kinds[p.kind] ?? 0) + 1;
    this.options.metrics([
      count('RecorderItemsDropped', { name: 'Reason', value: reason }, items.length),
    ]);
    this.options.log.error('recorded parts dropped', {
      reason,
      count: items.length,
      kinds,
      ...(error !== undefined ? { error: errorName(error) } : {}),
    });
  }

  private async writeUsage(): Promise<void> {
    const usage = this.pendingUsage;
    if (usage.responses === 0) return;
    this.pendingUsage = NO_USAGE;
    // ADD every total, the ones by kind included (0 where a response had no details).
    const names: Record<string, string> = {};
    const values: Record<string, number> = {};
    const adds = TOTALS.map((field, i) => {
      names[`#t${i}`] = field;
      values[`:t${i}`] = usage[field];
      return `#t${i} :t${i}`;
    });
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: keys.call(this.callId),
            UpdateExpression: `ADD ${adds.join(', ')}`,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          }),
        );
        return;
      } catch (error) {
        // Closing: retry within the close budget; the totals are not written again after.
        if (this.closed && performance.now() < this.closeDeadline && !isRefusal(error)) {
          await sleep(this.backoff(attempt + 1));
          continue;
        }
        if (this.closed) {
          this.options.metrics([
            count('RecorderItemsDropped', { name: 'Reason', value: 'usage_totals' }),
          ]);
          this.options.log.error('recorded parts dropped', {
            reason: 'usage_totals',
            count: 1,
            responses: usage.responses,
            error: errorName(error),
          });
          return;
        }
        // Put back for the next flush rather than dropped. Should the failed update have applied
        // after all (an answer lost after the SDK's own retries), those responses count twice:
        // the totals are a running estimate, and each response's exact usage is also a part.
        this.pendingUsage = addTotals(this.pendingUsage, usage);
        this.scheduleFlush();
        throw error;
      }
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const itemKey = (item: Readonly<Record<string, unknown>>) => `${item.pk}\u0000${item.sk}`;

/**
 * DynamoDB refused the request itself (a 4xx other than a throttle): retrying it unchanged fails
 * again. Throttles (`ProvisionedThroughputExceededException`, `ThrottlingException`,
 * `RequestLimitExceeded`), 5xx and errors without an HTTP answer (a lost connection, a timeout)
 * are worth retrying.
 */
export function isRefusal(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined || status < 400 || status >= 500) return false;
  return !THROTTLES.has(e.name ?? '');
}

const THROTTLES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'LimitExceededException',
]);

function errorName(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * The call record's running usage totals (`CallRecord`): tokens in and out, and by kind from each
 * usage's `input_token_details`/`output_token_details` (realtime.d.ts RealtimeResponseUsage),
 * since audio, text and cached input are priced differently.
 */
const TOTALS = CALL_USAGE_TOTALS;

type UsageTotals = Readonly<Record<(typeof TOTALS)[number], number>>;

const NO_USAGE: UsageTotals = Object.fromEntries(TOTALS.map((t) => [t, 0])) as UsageTotals;

function totalsOf(usage: ResponseUsage): UsageTotals {
  const input = usage.input_token_details;
  const output = usage.output_token_details;
  return {
    totalTokens: usage.total_tokens ?? 0,
    inputTokens: usage.input_tokens ?? 0,
    outputTokens: usage.output_tokens ?? 0,
    inputTextTokens: input?.text_tokens ?? 0,
    inputAudioTokens: input?.audio_tokens ?? 0,
    cachedTokens: input?.cached_tokens ?? 0,
    cachedTextTokens: input?.cached_tokens_details?.text_tokens ?? 0,
    cachedAudioTokens: input?.cached_tokens_details?.audio_tokens ?? 0,
    outputTextTokens: output?.text_tokens ?? 0,
    outputAudioTokens: output?.audio_tokens ?? 0,
    responses: 1,
  };
}

function addTotals(a: UsageTotals, b: UsageTotals): UsageTotals {
  return Object.fromEntries(TOTALS.map((t) => [t, a[t] + b[t]])) as UsageTotals;
}
