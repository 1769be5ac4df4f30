import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { redactTranscript } from '#core/calls/calls-config';
import { CALL_USAGE_TOTALS } from '#core/ports/calls';
import type { CallPart, CallRecorder, ResponseUsage } from '#core/ports/sideband';
import { keys } from '#core/table-schema';

const FLUSH_EVERY_MS = 1000;
const BATCH_LIMIT = 25;

/**
 * Records a call incrementally beside its record in DynamoDB: parts and usage totals are buffered
 * and written at least every second, so a crash loses at most about a second of transcript and
 * usage.
 */
export class DynamoCallRecorder implements CallRecorder {
  private buffer: Record<string, unknown>[] = [];
  private sequence = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private pendingUsage: UsageTotals = NO_USAGE;
  private closed = false;

  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly callId: string,
    private readonly options: {
      redact: boolean;
      ttlSeconds: number;
      clock: () => number;
      onError: (error: unknown) => void;
    },
  ) {}

  record(part: CallPart): void {
    const at = this.options.clock();
    const item: Record<string, unknown> = {
      ...part,
      at,
      expiresAt: Math.floor(at / 1000) + this.options.ttlSeconds,
    };
    if (part.kind === 'transcript' && this.options.redact) item.text = redactTranscript(part.text);
    // Sort keys keep parts in order: T (timeline) sequence is zero-padded; tools by function call id
    // (the same item the tool call's durable claim wrote, now with its result).
    const sk =
      part.kind === 'tool'
        ? `TOOL#${part.fnCallId}`
        : `PART#${String(at).padStart(14, '0')}#${String(this.sequence++).padStart(6, '0')}`;
    this.buffer.push({ ...keys.callPart(this.callId, sk), ...item });
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

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private scheduleFlush(): void {
    if (this.closed) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_EVERY_MS);
  }

  private async writeBuffer(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, BATCH_LIMIT);
      let requests = batch.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; requests.length > 0 && attempt < 5; attempt++) {
        const result = await this.client.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }),
        );
        requests = (result.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
        if (requests.length > 0)
          await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
    await this.writeUsage();
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
    } catch (error) {
      // Put back for the next flush rather than dropped. Should the failed update have applied
      // after all (an answer lost after the SDK's own retries), those responses count twice: the
      // totals are a running estimate, and each response's exact usage is also kept as a part.
      this.pendingUsage = addTotals(this.pendingUsage, usage);
      this.scheduleFlush();
      throw error;
    }
  }
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
