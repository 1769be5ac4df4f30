/**
 * What the call recorder does to a part before it is written, pure: redaction (transcripts, tool
 * arguments and outputs, error texts) and fitting the item within DynamoDB's item size limit.
 */
import type { CallPart } from '#core/ports/sideband';
import { redactTranscript } from './calls-config';

/**
 * DynamoDB's item size limit: 400 KB, counted as the UTF-8 bytes of every attribute name and
 * value (DynamoDB developer guide, "Service, account, and table quotas": item size; "DynamoDB
 * item sizes and formats" for how an item is counted).
 */
export const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;

/**
 * What the recorder lets an item grow to: the limit less 1 KiB, so that the estimate (which
 * counts every number at its largest size) is never the reason an item is refused.
 */
export const RECORDED_ITEM_BUDGET = DYNAMODB_MAX_ITEM_BYTES - 1024;

/**
 * The size DynamoDB counts for an item, from "DynamoDB item sizes and formats": a string is its
 * UTF-8 bytes; a number at most 21 bytes (1 byte per two of up to 38 significant digits, plus 1:
 * counted here at that maximum); a Boolean or null 1 byte; a map or list 3 bytes plus, per
 * element, 1 byte and the element (and in a map its name). Each top-level attribute adds its
 * name's UTF-8 bytes. Never less than DynamoDB's own count.
 */
export function itemBytes(item: Readonly<Record<string, unknown>>): number {
  let total = 0;
  for (const [name, value] of Object.entries(item)) {
    if (value === undefined) continue;
    total += utf8Bytes(name) + valueBytes(value);
  }
  return total;
}

function valueBytes(value: unknown): number {
  if (typeof value === 'string') return utf8Bytes(value);
  if (typeof value === 'number' || typeof value === 'bigint') return 21;
  if (typeof value === 'boolean' || value === null) return 1;
  if (Array.isArray(value))
    return 3 + value.reduce<number>((sum, element) => sum + 1 + valueBytes(element), 0);
  if (typeof value === 'object') {
    let sum = 3;
    for (const [name, element] of Object.entries(value as Record<string, unknown>)) {
      if (element === undefined) continue;
      sum += 1 + utf8Bytes(name) + valueBytes(element);
    }
    return sum;
  }
  return 0;
}

const utf8Bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/** Attributes the fitting never cuts: the keys and what a reader sorts and filters by. */
const UNCUT = new Set(['pk', 'sk', 'kind', 'at', 'expiresAt', 'role', 'fnCallId', 'name']);

/** The end of a cut text: `…[cut by the call recorder: kept 409000 of 1048576 bytes]`. */
export function cutMarker(kept: number, total: number): string {
  return `…[cut by the call recorder: kept ${kept} of ${total} bytes]`;
}

export interface FittedItem {
  readonly item: Record<string, unknown>;
  /**
   * The attributes that were cut, each with its full size in UTF-8 bytes (a map or list as its
   * JSON). Also on the item as `cutBytes`, so a reader sees what is missing.
   */
  readonly cut?: Readonly<Record<string, number>>;
}

/**
 * Fits an item within `budget` bytes (as `itemBytes` counts them): the largest attributes that
 * may be cut are levelled down to one size, the largest that fits, and the smaller ones are left
 * whole; a cut text keeps its start and ends with `cutMarker`; a map or list (an event's detail)
 * is replaced by its JSON, cut the same way. The choice is truncation rather
 * than continuation items: every reader (owh calls show, the call view) reads one item per part,
 * and 400 KB is about a hundred pages of text, far beyond a spoken turn or a tool output the
 * model was given (`maxToolOutputBytes`, at most 256 KiB). Cuts fall on a UTF-8 boundary.
 */
export function fitItem(
  item: Readonly<Record<string, unknown>>,
  budget = RECORDED_ITEM_BUDGET,
): FittedItem {
  const fitted: Record<string, unknown> = { ...item };
  const cut: Record<string, number> = {};
  const result = (): FittedItem =>
    Object.keys(cut).length === 0 ? { item: fitted } : { item: { ...fitted, cutBytes: cut }, cut };
  // Each round levels the largest attributes down to one size, the smallest that makes the item
  // fit (smaller ones are left whole); a map or list cut is turned into its JSON first, which may
  // change its size, hence another round. Bounded.
  for (let round = 0; round < 8; round++) {
    const over = itemBytes(result().item) - budget;
    if (over <= 0) break;
    const candidates = Object.entries(fitted)
      .filter(([name, value]) => !UNCUT.has(name) && value !== undefined)
      .map(([name, value]) => ({ name, value, bytes: valueBytes(value) }))
      .sort((a, b) => b.bytes - a.bytes);
    if (candidates.length === 0) break;
    // What each cut adds: its marker and its entry in `cutBytes` (and the map itself, once).
    const extra = (c: { name: string; bytes: number }) =>
      utf8Bytes(cutMarker(c.bytes, cut[c.name] ?? c.bytes)) + 1 + utf8Bytes(c.name) + 21 + 16;
    let level = 0;
    let top = candidates.length;
    let sum = 0;
    let extras = utf8Bytes('cutBytes') + 3;
    for (let k = 0; k < candidates.length; k++) {
      const c = candidates[k];
      if (!c) break;
      sum += c.bytes;
      extras += extra(c);
      const next = candidates[k + 1]?.bytes ?? 0;
      const candidateLevel = Math.floor((sum - over - extras) / (k + 1));
      if (candidateLevel >= next) {
        level = Math.max(0, candidateLevel);
        top = k + 1;
        break;
      }
    }
    for (const c of candidates.slice(0, top)) {
      const text = typeof c.value === 'string' ? c.value : (JSON.stringify(c.value) ?? '');
      if (utf8Bytes(text) <= level) {
        fitted[c.name] = text;
        continue;
      }
      const full = cut[c.name] ?? utf8Bytes(text);
      cut[c.name] = full;
      const kept = cutUtf8(text, level);
      fitted[c.name] = `${kept}${cutMarker(utf8Bytes(kept), full)}`;
    }
  }
  return result();
}

/** The longest prefix of `text` within `bytes` UTF-8 bytes that ends on a character boundary. */
export function cutUtf8(text: string, bytes: number): string {
  const buffer = Buffer.from(text, 'utf8');
  if (buffer.length <= bytes) return text;
  let end = Math.max(0, bytes);
  // A UTF-8 continuation byte (10xxxxxx) at the cut means a character would be split.
  while (end > 0 && ((buffer[end] ?? 0) & 0xc0) === 0x80) end--;
  return buffer.subarray(0, end).toString('utf8');
}

/** The keys of an event's `detail` that carry free text (reasons, error texts, the model's `why`). */
const EVENT_TEXT_KEYS = new Set(['why', 'reason', 'detail', 'error', 'message']);

/**
 * Redacts a part as `redactTranscripts` asks: numbers of 4+ digits and e-mail addresses
 * (`redactTranscript`) in a transcript's text, a tool's arguments, output and error, an error's
 * message, and an event's free-text details. Ids, names, codes and timings are kept.
 */
export function redactPart(part: CallPart): CallPart {
  switch (part.kind) {
    case 'transcript':
      return { ...part, text: redactTranscript(part.text) };
    case 'tool':
      return {
        ...part,
        arguments: redactJsonText(part.arguments),
        output: redactJsonText(part.output),
        ...(part.error !== undefined ? { error: redactTranscript(part.error) } : {}),
      };
    case 'error':
      return { ...part, message: redactTranscript(part.message) };
    case 'event': {
      if (!part.detail) return part;
      const detail: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(part.detail))
        detail[key] = EVENT_TEXT_KEYS.has(key) ? redactValue(value) : value;
      return { ...part, detail };
    }
    default:
      return part;
  }
}

/**
 * Redacts a JSON text (a tool's arguments or output) and keeps it JSON: every string value is
 * redacted, and a number of 4+ digits becomes the string `"[number]"`. Object keys are kept.
 * Text that is not JSON is redacted as text.
 */
export function redactJsonText(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return redactTranscript(text);
  }
  return JSON.stringify(redactValue(parsed));
}

function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactTranscript(value);
  if (typeof value === 'number')
    return String(value).replace(/e.*$/i, '').replace(/\D/g, '').length >= 4 ? '[number]' : value;
  if (Array.isArray(value)) return value.map(redactValue);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, element] of Object.entries(value)) out[key] = redactValue(element);
    return out;
  }
  return value;
}
