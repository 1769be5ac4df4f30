import type { RealtimeServerEvent } from 'openai/resources/realtime/realtime';
import type { ResponseUsage } from '../ports/sideband';

/**
 * Every server event type the Realtime API documents (realtime.d.ts `RealtimeServerEvent`, 46
 * types; openai-protocol.md §4.2). A frame of another type is logged (bounded) and ignored: the
 * API adds events over time.
 */
export const SERVER_EVENT_TYPES: ReadonlySet<string> = new Set([
  'conversation.created',
  'conversation.item.added',
  'conversation.item.created',
  'conversation.item.deleted',
  'conversation.item.done',
  'conversation.item.input_audio_transcription.completed',
  'conversation.item.input_audio_transcription.delta',
  'conversation.item.input_audio_transcription.failed',
  'conversation.item.input_audio_transcription.segment',
  'conversation.item.retrieved',
  'conversation.item.truncated',
  'error',
  'input_audio_buffer.cleared',
  'input_audio_buffer.committed',
  'input_audio_buffer.dtmf_event_received',
  'input_audio_buffer.speech_started',
  'input_audio_buffer.speech_stopped',
  'input_audio_buffer.timeout_triggered',
  'mcp_list_tools.completed',
  'mcp_list_tools.failed',
  'mcp_list_tools.in_progress',
  'output_audio_buffer.cleared',
  'output_audio_buffer.started',
  'output_audio_buffer.stopped',
  'rate_limits.updated',
  'response.content_part.added',
  'response.content_part.done',
  'response.created',
  'response.done',
  'response.function_call_arguments.delta',
  'response.function_call_arguments.done',
  'response.mcp_call.completed',
  'response.mcp_call.failed',
  'response.mcp_call.in_progress',
  'response.mcp_call_arguments.delta',
  'response.mcp_call_arguments.done',
  'response.output_audio.delta',
  'response.output_audio.done',
  'response.output_audio_transcript.delta',
  'response.output_audio_transcript.done',
  'response.output_item.added',
  'response.output_item.done',
  'response.output_text.delta',
  'response.output_text.done',
  'session.created',
  'session.updated',
] satisfies readonly RealtimeServerEvent['type'][]);

/** A plain object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-empty string, or undefined: ids read from the wire. */
export function idOf(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= 512 ? value : undefined;
}

/**
 * A response's usage with only the fields realtime.d.ts documents (RealtimeResponseUsage and its
 * input/output token details, cached_tokens_details included), each a finite number: what is
 * stored and summed, whatever else the server sends.
 */
export function usageOf(raw: unknown): ResponseUsage | undefined {
  if (!isObject(raw)) return undefined;
  const usage = numbers(raw, ['total_tokens', 'input_tokens', 'output_tokens']);
  const input = isObject(raw.input_token_details) ? raw.input_token_details : undefined;
  const output = isObject(raw.output_token_details) ? raw.output_token_details : undefined;
  const cached = isObject(input?.cached_tokens_details) ? input.cached_tokens_details : undefined;
  const inputDetails = input
    ? {
        ...numbers(input, ['text_tokens', 'audio_tokens', 'image_tokens', 'cached_tokens']),
        ...(cached
          ? {
              cached_tokens_details: numbers(cached, [
                'text_tokens',
                'audio_tokens',
                'image_tokens',
              ]),
            }
          : {}),
      }
    : undefined;
  return {
    ...usage,
    ...(inputDetails ? { input_token_details: inputDetails } : {}),
    ...(output ? { output_token_details: numbers(output, ['text_tokens', 'audio_tokens']) } : {}),
  };
}

function numbers<K extends string>(
  source: Record<string, unknown>,
  fields: readonly K[],
): Partial<Record<K, number>> {
  const picked: Partial<Record<K, number>> = {};
  for (const field of fields) {
    const value = source[field];
    if (typeof value === 'number' && Number.isFinite(value)) picked[field] = value;
  }
  return picked;
}

/**
 * `text` cut to at most `maxBytes` UTF-8 bytes, marker included, on a character boundary; with
 * whether it was cut and its full size.
 */
export function capOutput(
  text: string,
  maxBytes: number,
): { readonly output: string; readonly truncated: boolean; readonly bytes: number } {
  const encoded = new TextEncoder().encode(text);
  if (encoded.length <= maxBytes) return { output: text, truncated: false, bytes: encoded.length };
  let keep = Math.max(0, maxBytes - 64);
  const marker = (kept: number) => `…[truncated: ${kept} of ${encoded.length} bytes]`;
  // Back off continuation bytes (10xxxxxx) so no character is split.
  while (keep > 0 && ((encoded[keep] ?? 0) & 0xc0) === 0x80) keep--;
  const head = new TextDecoder().decode(encoded.subarray(0, keep));
  return { output: `${head}${marker(keep)}`, truncated: true, bytes: encoded.length };
}
