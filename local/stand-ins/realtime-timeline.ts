/**
 * A simulated call's log as readable lines: what OpenAI's side sent (←), what the worker sent (→),
 * the calls API requests it made (⇢), sockets (⚡) and the simulator's facts (✱, ⚠ for what a
 * correct worker would not have caused). Pure: it takes the JSON view of `GET /_sim/calls/:id`.
 */

// biome-ignore lint/suspicious/noExplicitAny: the simulator's JSON view, read field by field.
type Json = Record<string, any>;

export interface TimelineOptions {
  /** Time 0 (ms since the epoch). @default the first entry */
  readonly origin?: number;
  /** Longest quoted text. @default 72 */
  readonly quote?: number;
}

export const TIMELINE_LEGEND =
  '← OpenAI to the worker · → the worker to OpenAI · ⇢ calls API · ⚡ socket · ✱ simulator · ⚠ a correct worker would not cause this';

export function timelineLines(log: readonly Json[], options: TimelineOptions = {}): string[] {
  const origin = options.origin ?? log[0]?.at ?? 0;
  const max = options.quote ?? 72;
  const q = (text: unknown) => quote(String(text ?? ''), max);
  const lines: string[] = [];
  for (let i = 0; i < log.length; i++) {
    const entry = log[i] as Json;
    let text = describe(entry, q);
    // Consecutive deltas of one item collapse into one line.
    if (entry.dir === 'out' && String(entry.type).endsWith('.delta')) {
      let joined = String(entry.event?.delta ?? '');
      let n = 1;
      while (
        log[i + 1]?.dir === 'out' &&
        log[i + 1]?.type === entry.type &&
        log[i + 1]?.event?.item_id === entry.event?.item_id
      ) {
        i++;
        n++;
        joined += String(log[i]?.event?.delta ?? '');
      }
      text = `← ${entry.type} ×${n} ${q(joined)}`;
    }
    if (entry.dir === 'out' && entry.delivered === 0) text += '  (no socket attached: lost)';
    lines.push(`${stamp(Number(entry.at) - origin)}  ${text}`);
  }
  return lines;
}

function stamp(ms: number): string {
  return `${ms < 0 ? '-' : '+'}${String(Math.abs(ms)).padStart(6)} ms`;
}

function describe(entry: Json, q: (text: unknown) => string): string {
  const e: Json = entry.event ?? {};
  switch (entry.dir) {
    case 'api':
      return `⇢ ${entry.type} ${entry.text ?? ''}`;
    case 'socket':
      return `⚡ ${entry.text ?? entry.type}`;
    case 'note':
      return `${entry.warn ? '⚠' : '✱'} ${entry.text ?? entry.type}`;
    case 'in':
      return `→ ${entry.type}${clientDetail(e, q)}`;
    default:
      return entry.event
        ? `← ${entry.type}${serverDetail(e, q)}`
        : `← ${entry.type} ${q(entry.text)}`;
  }
}

function clientDetail(e: Json, q: (text: unknown) => string): string {
  switch (e.type) {
    case 'response.create':
      return e.response?.instructions ? ` (instructions ${q(e.response.instructions)})` : '';
    case 'conversation.item.create': {
      const item: Json = e.item ?? {};
      if (item.type === 'function_call_output')
        return ` function_call_output ${item.call_id}: ${q(item.output)}`;
      const text = item.content?.[0]?.text;
      return ` ${item.type ?? '?'}${item.role ? ` (${item.role})` : ''}${text ? ` ${q(text)}` : ''}`;
    }
    case 'response.cancel':
      return e.response_id ? ` ${e.response_id}` : '';
    default:
      return '';
  }
}

function serverDetail(e: Json, q: (text: unknown) => string): string {
  const item: Json = e.item ?? {};
  const itemText = () =>
    item.type === 'function_call'
      ? `function_call ${item.id} ${item.name} ${item.call_id} (${item.status})`
      : `${item.type}${item.role ? `/${item.role}` : ''} ${item.id}${item.status ? ` (${item.status})` : ''}`;
  switch (e.type) {
    case 'session.created':
    case 'session.updated':
      return ` ${e.session?.model ?? ''}, voice ${JSON.stringify(e.session?.audio?.output?.voice)}, turn detection ${e.session?.audio?.input?.turn_detection?.type ?? 'off'}`;
    case 'response.created':
      return ` ${e.response?.id}`;
    case 'response.done': {
      const r: Json = e.response ?? {};
      const reason = r.status_details?.reason ? ` (${r.status_details.reason})` : '';
      return ` ${r.id} ${r.status}${reason}, ${r.usage?.total_tokens ?? 0} tokens`;
    }
    case 'response.output_item.added':
    case 'response.output_item.done':
      return ` ${itemText()}`;
    case 'conversation.item.added':
    case 'conversation.item.done':
      return ` ${itemText()} after ${e.previous_item_id ?? '(start)'}`;
    case 'response.content_part.added':
    case 'response.content_part.done':
      return ` ${e.part?.type} part of ${e.item_id}`;
    case 'response.output_audio_transcript.done':
      return ` ${e.item_id} ${q(e.transcript)}`;
    case 'response.output_text.done':
      return ` ${e.item_id} ${q(e.text)}`;
    case 'response.function_call_arguments.done':
      return ` ${e.name}(${e.arguments}) ${e.call_id}`;
    case 'conversation.item.input_audio_transcription.completed':
      return ` ${e.item_id} ${q(e.transcript)}`;
    case 'input_audio_buffer.speech_started':
    case 'input_audio_buffer.speech_stopped':
      return ` ${e.item_id}`;
    case 'input_audio_buffer.committed':
      return ` ${e.item_id} after ${e.previous_item_id ?? '(start)'}`;
    case 'input_audio_buffer.timeout_triggered':
      return ` ${e.item_id}: silence ${e.audio_start_ms}–${e.audio_end_ms} ms`;
    case 'input_audio_buffer.dtmf_event_received':
      return ` key ${JSON.stringify(e.event)}`;
    case 'output_audio_buffer.started':
    case 'output_audio_buffer.stopped':
    case 'output_audio_buffer.cleared':
      return ` ${e.response_id}`;
    case 'error':
      return ` ${e.error?.code ?? e.error?.type}: ${q(e.error?.message)}`;
    default:
      return '';
  }
}

function quote(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max - 1)}…` : flat);
}
