import { maskAllNumbers } from '#core/observability/mask';
import { CALL_USAGE_TOTALS, type CallChannel, type CallRecord } from '#core/ports/calls';
import { type CarriedBody, type PayloadRef, unwrapBody } from '#core/webhooks/queue-message';
import { decodeUtf8 } from '#core/webhooks/utf8';

/** Pure shaping of stored items into what `calls show` prints. */

export interface TimelineEntry {
  readonly at: number;
  readonly what: string;
}

export interface CallView {
  readonly record: CallRecord;
  readonly timeline: readonly TimelineEntry[];
  /**
   * In conversation order. `cutOff`: the caller did not hear this line to its end (why: the
   * response's `status_details.reason`, `interrupted` for a barge-in that cleared the audio,
   * `cancelled` for a cancel command).
   */
  readonly transcript: readonly { at: number; role: string; text: string; cutOff?: string }[];
  readonly tools: readonly {
    at: number;
    name: string;
    status: string;
    latencyMs: number;
    arguments: string;
    output: string;
    error?: string;
  }[];
  readonly errors: readonly { at: number; code: string; message: string }[];
  /** The call record's running totals (those by kind price audio, text and cached input apart). */
  readonly usage: Partial<Pick<CallRecord, (typeof USAGE_TOTALS)[number]>>;
}

const USAGE_TOTALS = CALL_USAGE_TOTALS;

const STEPS: readonly [keyof CallRecord, string][] = [
  ['receivedAt', 'webhook received'],
  ['handledAt', 'picked up by the incoming-call handler'],
  ['acceptedAt', 'accepted'],
  ['attachedAt', 'sideband attached'],
  ['endedAt', 'ended'],
];

/** `owh calls list`'s columns: SIP and browser (WebRTC) calls side by side, with the profile. */
export const CALL_LIST_HEADERS = [
  'RECEIVED',
  'CALL',
  'CHANNEL',
  'PROFILE',
  'STATUS',
  'FROM',
  'TO',
  'DURATION',
  'END',
] as const;

/**
 * One `owh calls list` row. A record without a channel is a SIP call (written before channels
 * existed). A WebRTC call's profile is the one it was opened with; a SIP call's is its session
 * key (`default`, or the dialled number's session: a number, masked unless `showNumbers`).
 */
export function callListRow(
  c: CallRecord,
  format: {
    readonly time: (ms: number) => string;
    readonly duration: (ms?: number) => string;
    readonly showNumbers: boolean;
  },
): string[] {
  const sessionKey =
    c.sessionKey === undefined || format.showNumbers ? c.sessionKey : maskAllNumbers(c.sessionKey);
  return [
    format.time(c.receivedAt),
    c.callId,
    c.channel ?? 'sip',
    c.profile ?? sessionKey ?? '-',
    c.status,
    c.from ?? '-',
    c.to ?? '-',
    format.duration(c.durationMs),
    c.endReason ?? c.rejectReason ?? '-',
  ];
}

/** `--channel`: `sip`, `webrtc`, or absent (every call); anything else is refused. */
export function callChannelOption(
  value: string | undefined,
): { ok: true; channel: CallChannel | undefined } | { ok: false; message: string } {
  if (value === undefined) return { ok: true, channel: undefined };
  if (value === 'sip' || value === 'webrtc') return { ok: true, channel: value };
  return { ok: false, message: `--channel takes sip or webrtc; got "${value}".` };
}

/** The record with its caller and dialled numbers masked, unless asked to show them. */
export function withPartiesShown(record: CallRecord, showNumbers: boolean): CallRecord {
  if (showNumbers) return record;
  return {
    ...record,
    ...(record.from ? { from: maskAllNumbers(record.from) } : {}),
    ...(record.to ? { to: maskAllNumbers(record.to) } : {}),
  };
}

export function callView(
  record: CallRecord,
  parts: readonly Record<string, unknown>[],
  options: { showNumbers: boolean },
): CallView {
  const shown = withPartiesShown(record, options.showNumbers);
  const timeline: TimelineEntry[] = [];
  for (const [field, label] of STEPS) {
    const at = record[field];
    if (typeof at !== 'number') continue;
    const detail =
      field === 'endedAt' && record.endReason
        ? `${label}: ${record.endReason}`
        : field === 'acceptedAt' && record.waitedForColdWorker
          ? `${label} (waited for a cold worker)`
          : label;
    timeline.push({ at, what: detail });
  }
  if (record.status === 'rejected' || record.status === 'missed')
    timeline.push({
      at: record.endedAt ?? record.receivedAt,
      what: `${record.status}: ${record.rejectReason ?? ''}${record.rejectStatus ? ` (SIP ${record.rejectStatus})` : ''}`,
    });
  /** With its place in the conversation: a caller's transcript can arrive after the answer. */
  const transcript: (CallView['transcript'][number] & { order: number })[] = [];
  const tools: CallView['tools'][number][] = [];
  const errors: CallView['errors'][number][] = [];
  // The answers the caller did not hear to the end, by response (recorded after or before the line).
  const cutOffs = new Map<string, string>();
  for (const part of parts)
    if (
      part.kind === 'event' &&
      part.name === 'assistant_cut_off' &&
      typeof part.detail === 'object' &&
      part.detail !== null
    ) {
      const { responseId, reason } = part.detail as Record<string, unknown>;
      if (typeof responseId === 'string') cutOffs.set(responseId, String(reason ?? 'cut off'));
    }
  for (const part of parts) {
    const at = Number(part.at ?? 0);
    switch (part.kind) {
      case 'transcript': {
        const cutOff =
          typeof part.responseId === 'string' ? cutOffs.get(part.responseId) : undefined;
        transcript.push({
          at,
          role: String(part.role),
          text: String(part.text),
          ...(cutOff !== undefined ? { cutOff } : {}),
          // The conversation order key (about the epoch ms the item was added); `at` for parts
          // recorded before there was one.
          order: typeof part.order === 'number' ? part.order : at,
        });
        break;
      }
      case 'tool':
        tools.push({
          at,
          name: String(part.name),
          status: String(part.status),
          latencyMs: Number(part.latencyMs ?? 0),
          arguments: String(part.arguments ?? ''),
          output: String(part.output ?? ''),
          ...(part.error ? { error: String(part.error) } : {}),
        });
        timeline.push({ at, what: `tool ${String(part.name)} (${String(part.status)})` });
        break;
      case 'error':
        errors.push({ at, code: String(part.code), message: String(part.message) });
        timeline.push({ at, what: `error ${String(part.code)}` });
        break;
      case 'event': {
        // attached/ended are already steps of the record; keep the ones it does not hold.
        if (part.name === 'attached' || part.name === 'ended') break;
        const detail = part.detail ? ` ${JSON.stringify(part.detail)}` : '';
        timeline.push({ at, what: `${String(part.name).replace(/_/g, ' ')}${detail}` });
        break;
      }
    }
  }
  const byTime = <T extends { at: number }>(list: T[]) => list.sort((a, b) => a.at - b.at);
  const usage: Partial<Record<(typeof USAGE_TOTALS)[number], number>> = {};
  for (const total of USAGE_TOTALS) {
    const value = record[total];
    if (typeof value === 'number') usage[total] = value;
  }
  return {
    record: shown,
    timeline: byTime(timeline),
    transcript: transcript
      .sort((a, b) => a.order - b.order || a.at - b.at)
      .map(({ order: _order, ...line }) => line),
    tools: byTime(tools),
    errors: byTime(errors),
    usage,
  };
}

/**
 * What `events show` prints as an event's payload: the event itself, never our transport
 * wrapper. A stored payload is the raw body, or an `owh_body` wrapper (`core/webhooks/queue-message.ts`):
 * base64 for bytes that were not text, or a claim check's S3 reference, whose bytes the caller
 * fetched (`fetched`) or could not (`fetchError`). JSON is parsed for display; other text is shown
 * as it is.
 */
export type PayloadView =
  | { readonly kind: 'event'; readonly event: unknown }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'bytes'; readonly base64: string; readonly bytes: number }
  | {
      readonly kind: 'unavailable';
      readonly reason: string;
      readonly ref?: PayloadRef;
    };

export function payloadView(
  payload: string,
  claimChecked?: { readonly fetched?: Buffer; readonly fetchError?: string },
): PayloadView {
  if (payload === '')
    return {
      kind: 'unavailable',
      reason: 'not stored yet: the first attempt writes it with its outcome',
    };
  let carried: CarriedBody;
  try {
    carried = unwrapBody(payload);
  } catch (error) {
    return { kind: 'unavailable', reason: error instanceof Error ? error.message : String(error) };
  }
  const fromBytes = (bytes: Buffer): PayloadView => {
    const text = decodeUtf8(bytes);
    return text === undefined
      ? { kind: 'bytes', base64: bytes.toString('base64'), bytes: bytes.length }
      : fromText(text);
  };
  switch (carried.kind) {
    case 'raw':
      return fromText(carried.text);
    case 'bytes':
      return fromBytes(carried.bytes);
    case 'ref':
      if (claimChecked?.fetched) return fromBytes(claimChecked.fetched);
      return {
        kind: 'unavailable',
        reason: `kept in S3 (${carried.ref.bytes} bytes)${claimChecked?.fetchError ? `; could not read it: ${claimChecked.fetchError}` : ''}`,
        ref: carried.ref,
      };
  }
}

function fromText(text: string): PayloadView {
  try {
    return { kind: 'event', event: JSON.parse(text) };
  } catch {
    return { kind: 'text', text };
  }
}

/** The payload as `events show` prints it (and puts in its JSON under `payload`). */
export function shownPayload(view: PayloadView): unknown {
  switch (view.kind) {
    case 'event':
      return view.event;
    case 'text':
      return view.text;
    case 'bytes':
      return { base64: view.base64, bytes: view.bytes, note: 'the body is not UTF-8 text' };
    case 'unavailable':
      return { unavailable: view.reason, ...(view.ref ? { ref: view.ref } : {}) };
  }
}
