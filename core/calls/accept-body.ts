/**
 * The `/accept` body built from a session config, and its validation. The body is validated here
 * because `/accept` answers 200 to a bad body and the call fails later (SIP 400, sideband 404):
 * the only safe place to catch mistakes is before sending.
 */
import type { WireEvent } from '../wire';
import {
  BUILT_IN_TOOLS,
  FORBIDDEN_VAD_FIELDS,
  type SessionConfig,
  TOOL_NAME,
  type ToolDefinition,
  VOICES,
} from './session-config';

/**
 * The caller-transcription model when a session names none. The SDK's `AudioTranscription.model`
 * (test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts) marks `whisper-1`, `gpt-4o-transcribe`,
 * `gpt-4o-mini-transcribe` and `gpt-4o-transcribe-diarize` deprecated (shutdown 2027-02-26), and
 * OpenAI's realtime-transcription guide says to start with `gpt-live-transcribe`, a streaming
 * model priced per audio minute. A session's `transcriptionModel` overrides it.
 */
export const DEFAULT_TRANSCRIPTION_MODEL = 'gpt-live-transcribe';

export interface AcceptBody {
  readonly type: 'realtime';
  readonly model: string;
  readonly instructions: string;
  readonly output_modalities: readonly ['audio'];
  readonly audio: {
    readonly input: {
      readonly transcription: { readonly model: string; readonly language?: string };
      readonly turn_detection?: Readonly<Record<string, unknown>>;
    };
    readonly output: { readonly voice: string };
  };
  readonly tools: readonly (ToolDefinition & { readonly type: 'function' })[];
  readonly tool_choice: 'auto';
}

export function buildAcceptBody(
  session: SessionConfig,
  userTools: readonly ToolDefinition[],
  transferTargets: readonly string[],
): AcceptBody {
  const byName = new Map(userTools.map((t) => [t.name, t]));
  const tools: ToolDefinition[] = (session.tools ?? []).map((name) => {
    const tool = byName.get(name);
    if (!tool) throw new Error(`Session refers to unknown tool "${name}".`);
    return tool;
  });
  tools.push(BUILT_IN_TOOLS.endCall);
  if (transferTargets.length > 0) tools.push(BUILT_IN_TOOLS.transferCall(transferTargets));
  return {
    type: 'realtime',
    model: session.model,
    instructions: session.instructions,
    output_modalities: ['audio'],
    audio: {
      input: {
        transcription: {
          model: session.transcriptionModel ?? DEFAULT_TRANSCRIPTION_MODEL,
          ...(session.language ? { language: session.language } : {}),
        },
        ...(session.turnDetection ? { turn_detection: { ...session.turnDetection } } : {}),
      },
      output: { voice: session.voice },
    },
    tools: tools.map((t) => ({ type: 'function' as const, ...t })),
    tool_choice: 'auto',
  };
}

/**
 * A built-in voice name, or a custom voice given as exactly `{ id }` (SDK realtime.d.ts
 * `RealtimeAudioConfigOutput.voice`: `(string & {}) | 'alloy' | … | { id: string }`).
 */
function isVoice(voice: unknown): boolean {
  if (typeof voice === 'string') return (VOICES as readonly string[]).includes(voice);
  if (typeof voice !== 'object' || voice === null || Array.isArray(voice)) return false;
  const keys = Object.keys(voice);
  return keys.length === 1 && keys[0] === 'id' && typeof (voice as { id: unknown }).id === 'string';
}

const EAGERNESS = ['low', 'medium', 'high', 'auto'] as const;
const IDLE_TIMEOUT_MS = { min: 5000, max: 30_000 } as const;

/**
 * Turn detection as the API takes it, which `/accept` answers 200 to and then fails the call on
 * (reference §4.5). From the SDK's `RealtimeAudioInputTurnDetection` (realtime.d.ts): `server_vad`
 * or `semantic_vad`; `idle_timeout_ms` only with `server_vad` ("Idle timeout is currently only
 * supported for server_vad mode") and, per the OpenAPI `RealtimeTurnDetection`, an integer from
 * 5000 to 30000; `eagerness` one of low, medium, high, auto.
 */
function turnDetectionProblems(vad: unknown): string[] {
  if (vad === undefined || vad === null) return [];
  if (typeof vad !== 'object' || Array.isArray(vad))
    return ['audio.input.turn_detection must be an object or null.'];
  const td = vad as Record<string, unknown>;
  const where = 'audio.input.turn_detection';
  const problems: string[] = [];
  if (td.type !== 'server_vad' && td.type !== 'semantic_vad')
    problems.push(`${where}.type must be "server_vad" or "semantic_vad".`);
  const idle = td.idle_timeout_ms;
  if (idle !== undefined && idle !== null) {
    if (td.type !== 'server_vad')
      problems.push(`${where}.idle_timeout_ms is only supported with server_vad.`);
    if (
      typeof idle !== 'number' ||
      !Number.isInteger(idle) ||
      idle < IDLE_TIMEOUT_MS.min ||
      idle > IDLE_TIMEOUT_MS.max
    )
      problems.push(
        `${where}.idle_timeout_ms must be an integer from ${IDLE_TIMEOUT_MS.min} to ${IDLE_TIMEOUT_MS.max}.`,
      );
  }
  if (td.eagerness !== undefined) {
    if (td.type !== 'semantic_vad')
      problems.push(`${where}.eagerness is only supported with semantic_vad.`);
    if (!(EAGERNESS as readonly unknown[]).includes(td.eagerness))
      problems.push(`${where}.eagerness must be one of ${EAGERNESS.join(', ')}.`);
  }
  for (const flag of ['create_response', 'interrupt_response'] as const) {
    if (td[flag] !== undefined && typeof td[flag] !== 'boolean')
      problems.push(`${where}.${flag} must be a boolean.`);
  }
  return problems;
}

/** Every problem with an accept body, or an empty list. */
export function validateAcceptBody(body: unknown): string[] {
  const problems: string[] = [];
  if (typeof body !== 'object' || body === null) return ['The body must be an object.'];
  const b = body as WireEvent;
  if (b.type !== 'realtime')
    problems.push('type must be "realtime" (without it the session dies after a 200).');
  if (typeof b.model !== 'string' || b.model.length === 0)
    problems.push('model must be set explicitly.');
  if (typeof b.instructions !== 'string' || b.instructions.trim().length === 0)
    problems.push('instructions must not be empty.');
  for (const side of ['input', 'output'] as const) {
    if (b.audio?.[side]?.format !== undefined)
      problems.push(`audio.${side}.format must be omitted: SIP negotiates the codec.`);
  }
  const vad = b.audio?.input?.turn_detection;
  for (const field of FORBIDDEN_VAD_FIELDS) {
    if (vad && typeof vad === 'object' && field in vad)
      problems.push(`audio.input.turn_detection.${field} is rejected for SIP calls.`);
  }
  problems.push(...turnDetectionProblems(vad));
  const transcription = b.audio?.input?.transcription;
  if (!transcription?.model)
    problems.push('audio.input.transcription must be on, for caller transcripts.');
  if (transcription?.language !== undefined && typeof transcription.language !== 'string')
    problems.push('audio.input.transcription.language must be an ISO-639-1 string.');
  if (!isVoice(b.audio?.output?.voice))
    problems.push(
      `audio.output.voice must be one of ${VOICES.join(', ')}, or a custom voice {"id": "…"}.`,
    );
  const names = new Set<string>();
  for (const tool of Array.isArray(b.tools) ? b.tools : []) {
    if (tool?.type !== 'function' || !TOOL_NAME.test(String(tool?.name)))
      problems.push(
        `tool "${String(tool?.name)}" needs type "function" and a name of [a-zA-Z0-9_-]{1,64}.`,
      );
    if (names.has(tool?.name)) problems.push(`tool "${tool.name}" is declared twice.`);
    names.add(tool?.name);
    if (
      typeof tool?.parameters !== 'object' ||
      tool.parameters === null ||
      tool.parameters.type !== 'object'
    )
      problems.push(`tool "${String(tool?.name)}" needs JSON-schema parameters of type "object".`);
  }
  return problems;
}
