import { describe, expect, it } from 'vitest';
import { isRefusal } from '#adapters/dynamo-call-recorder';
import {
  cutMarker,
  cutUtf8,
  DYNAMODB_MAX_ITEM_BYTES,
  fitItem,
  itemBytes,
  RECORDED_ITEM_BUDGET,
  redactJsonText,
  redactPart,
} from '#core/calls/recorded-parts';
import { METRICS } from '#core/observability/metrics';

/** Issue 12 §1: what the call recorder does to a part before writing it, pure. */
describe('item size, as DynamoDB counts it', () => {
  it('counts names and values: strings in UTF-8, numbers at most 21, maps and lists with overhead', () => {
    expect(itemBytes({ pk: 'CALL#1' })).toBe(2 + 6);
    // é is 2 bytes, 😀 is 4.
    expect(itemBytes({ t: 'é😀' })).toBe(1 + 6);
    expect(itemBytes({ n: 123456789 })).toBe(1 + 21);
    expect(itemBytes({ b: true, z: null })).toBe(2 + 2);
    // A map: 3 bytes, then per element 1 byte, its name and its value.
    expect(itemBytes({ m: { a: 'xy' } })).toBe(1 + 3 + (1 + 1 + 2));
    expect(itemBytes({ l: ['xy', 1] })).toBe(1 + 3 + (1 + 2) + (1 + 21));
    expect(itemBytes({ u: undefined, s: 'x' })).toBe(2);
  });

  it('fits within the limit with room to spare', () => {
    expect(RECORDED_ITEM_BUDGET).toBeLessThan(DYNAMODB_MAX_ITEM_BYTES);
    expect(DYNAMODB_MAX_ITEM_BYTES).toBe(409_600);
  });
});

describe('fitting a part within the item limit', () => {
  const keys = { pk: 'CALL#rtc_1', sk: 'TOOL#call_1', kind: 'tool', at: 1, expiresAt: 2 };

  it('leaves an item within the budget as it is', () => {
    const item = { ...keys, output: 'short' };
    expect(fitItem(item)).toEqual({ item });
  });

  it('cuts the largest text with a marker, keeps its start, and records its full size', () => {
    const output = 'a'.repeat(600_000);
    const { item, cut } = fitItem({ ...keys, arguments: '{"x":1}', output });
    expect(itemBytes(item)).toBeLessThanOrEqual(RECORDED_ITEM_BUDGET);
    expect(cut).toEqual({ output: 600_000 });
    expect(item.cutBytes).toEqual({ output: 600_000 });
    expect(item.arguments).toBe('{"x":1}');
    const text = String(item.output);
    const kept = text.indexOf('…[cut');
    expect(text.slice(kept)).toBe(cutMarker(kept, 600_000));
    // Nearly all the room is used: the cut is not wasteful.
    expect(itemBytes(item)).toBeGreaterThan(RECORDED_ITEM_BUDGET - 200);
  });

  it('never splits a character, and counts multi-byte text in bytes', () => {
    const { item } = fitItem({ ...keys, output: '😀'.repeat(200_000) }, 10_000);
    expect(itemBytes(item)).toBeLessThanOrEqual(10_000);
    const text = String(item.output);
    expect(text).not.toContain('\uFFFD');
    expect(text.slice(0, text.indexOf('…[cut')).length % 2).toBe(0);
    expect(cutUtf8('é😀x', 3)).toBe('é');
    expect(cutUtf8('é😀x', 6)).toBe('é😀');
    expect(cutUtf8('abc', 10)).toBe('abc');
  });

  it('cuts several large fields in turn, and turns a large map into cut JSON', () => {
    const { item, cut } = fitItem(
      {
        ...keys,
        kind: 'event',
        arguments: 'b'.repeat(300_000),
        output: 'c'.repeat(300_000),
        detail: { reason: 'd'.repeat(300_000), n: 1 },
      },
      200_000,
    );
    expect(itemBytes(item)).toBeLessThanOrEqual(200_000);
    expect(Object.keys(cut ?? {}).sort()).toEqual(['arguments', 'detail', 'output']);
    expect(typeof item.detail).toBe('string');
    // Levelled: each keeps about the same share, none is emptied for the others.
    const kept = (v: unknown) => String(v).indexOf('…[cut');
    expect(kept(item.arguments)).toBeGreaterThan(60_000);
    expect(Math.abs(kept(item.arguments) - kept(item.output))).toBeLessThan(100);
    expect(String(item.detail)).toMatch(/^\{"reason":"d+…\[cut by the call recorder/);
  });

  it('leaves the smaller attributes whole', () => {
    const { item, cut } = fitItem(
      { ...keys, arguments: '{"order":"A1"}', output: 'o'.repeat(50_000), error: 'e'.repeat(2000) },
      20_000,
    );
    expect(cut).toEqual({ output: 50_000 });
    expect(item.error).toBe('e'.repeat(2000));
    expect(itemBytes(item)).toBeLessThanOrEqual(20_000);
  });

  it('never cuts the keys or what readers sort and filter by', () => {
    const { item } = fitItem(
      { ...keys, name: 'lookup_order', fnCallId: 'call_1', output: 'x'.repeat(5000) },
      1000,
    );
    expect(item).toMatchObject({ ...keys, name: 'lookup_order', fnCallId: 'call_1' });
  });
});

describe('redaction of recorded parts', () => {
  it('redacts a transcript', () => {
    expect(
      redactPart({
        kind: 'transcript',
        role: 'caller',
        text: 'mail ann@example.com, 415 555 0123',
      }),
    ).toEqual({ kind: 'transcript', role: 'caller', text: 'mail [email], [number]' });
  });

  it("redacts a tool's arguments and output as JSON that stays JSON, and its error", () => {
    const part = redactPart({
      kind: 'tool',
      fnCallId: 'call_1234567',
      name: 'lookup_order',
      arguments:
        '{"email":"ann@example.com","order":12345,"qty":2,"items":["card 4111111111111111"]}',
      output: '{"status":"shipped","tracking":"1Z999AA10123456784"}',
      latencyMs: 1234,
      status: 'failed',
      error: 'lookup failed for +1 415 555 0123',
    });
    expect(part).toEqual({
      kind: 'tool',
      fnCallId: 'call_1234567',
      name: 'lookup_order',
      arguments: '{"email":"[email]","order":"[number]","qty":2,"items":["card [number]"]}',
      output: '{"status":"shipped","tracking":"1Z999AA[number]"}',
      latencyMs: 1234,
      status: 'failed',
      error: 'lookup failed for [number]',
    });
    if (part.kind !== 'tool') throw new Error('a tool part');
    expect(() => JSON.parse(part.arguments)).not.toThrow();
  });

  it('redacts tool text that is not JSON as text', () => {
    expect(redactJsonText('call 4155550123 now')).toBe('call [number] now');
    expect(redactJsonText('12345')).toBe('"[number]"');
    expect(redactJsonText('42')).toBe('42');
  });

  it("redacts an error part's message, not its code", () => {
    expect(
      redactPart({ kind: 'error', code: 'invalid_value_4000', message: 'bad number 4155550123' }),
    ).toEqual({ kind: 'error', code: 'invalid_value_4000', message: 'bad number [number]' });
  });

  it("redacts an event's free-text details (why, reason, detail, error, message) only", () => {
    expect(
      redactPart({
        kind: 'event',
        name: 'transfer_started',
        detail: { target: 'sales', why: 'caller 4155550123 asked', fnCallId: 'call_99999' },
      }),
    ).toEqual({
      kind: 'event',
      name: 'transfer_started',
      detail: { target: 'sales', why: 'caller [number] asked', fnCallId: 'call_99999' },
    });
    const bare = { kind: 'event' as const, name: 'attached' };
    expect(redactPart(bare)).toBe(bare);
  });

  it('leaves usage alone', () => {
    const usage = { kind: 'usage' as const, responseId: 'resp_1', usage: { total_tokens: 12345 } };
    expect(redactPart(usage)).toBe(usage);
  });
});

describe('which DynamoDB failures are worth retrying', () => {
  const failure = (name: string, status?: number) =>
    Object.assign(new Error(name), {
      name,
      ...(status !== undefined ? { $metadata: { httpStatusCode: status } } : {}),
    });

  it('retries throttles, 5xx and failures without an answer; not a refused request', () => {
    expect(isRefusal(failure('ValidationException', 400))).toBe(true);
    expect(isRefusal(failure('ResourceNotFoundException', 400))).toBe(true);
    expect(isRefusal(failure('ProvisionedThroughputExceededException', 400))).toBe(false);
    expect(isRefusal(failure('ThrottlingException', 400))).toBe(false);
    expect(isRefusal(failure('RequestLimitExceeded', 400))).toBe(false);
    expect(isRefusal(failure('InternalServerError', 500))).toBe(false);
    expect(isRefusal(failure('TimeoutError'))).toBe(false);
    expect(isRefusal('weird')).toBe(false);
  });

  it('counts what is dropped in a catalogued metric', () => {
    expect(METRICS.RecorderItemsDropped.unit).toBe('Count');
  });
});
