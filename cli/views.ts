import { maskAllNumbers } from '#core/observability/mask';
import { CALL_USAGE_TOTALS, type CallRecord } from '#core/ports/calls';

/** Pure shaping of stored items into what `calls show` prints. */

export interface TimelineEntry {
  readonly at: number;
  readonly what: string;
}

export interface CallView {
  readonly record: CallRecord;
  readonly timeline: readonly TimelineEntry[];
  readonly transcript: readonly { at: number; role: string; text: string }[];
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
  for (const part of parts) {
    const at = Number(part.at ?? 0);
    switch (part.kind) {
      case 'transcript':
        transcript.push({
          at,
          role: String(part.role),
          text: String(part.text),
          // The conversation order key (about the epoch ms the item was added); `at` for parts
          // recorded before there was one.
          order: typeof part.order === 'number' ? part.order : at,
        });
        break;
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
