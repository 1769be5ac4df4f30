/**
 * The session config a call is accepted with, as the stack's props give it: model, voice,
 * instructions, greeting, tools. `accept-body.ts` turns it into the `/accept` request body.
 */

export const VOICES = [
  'alloy',
  'ash',
  'ballad',
  'coral',
  'echo',
  'sage',
  'shimmer',
  'verse',
  'marin',
  'cedar',
] as const;
export type Voice = (typeof VOICES)[number];

export interface ToolDefinition {
  readonly name: string;
  readonly description: string;
  /** JSON Schema of the arguments. */
  readonly parameters: Readonly<Record<string, unknown>>;
}

/**
 * What a keypad key does during a call (`input_audio_buffer.dtmf_event_received`, SIP only: realtime.d.ts
 * InputAudioBufferDtmfEventReceivedEvent): transfer to a target of `calls.transferTargets`, or hang up.
 */
export type DtmfAction =
  | { readonly action: 'transfer'; readonly target: string }
  | { readonly action: 'hangup' };

/** The keys a DTMF event can carry: 0–9, *, # and A–D (realtime.d.ts InputAudioBufferDtmfEventReceivedEvent). */
export const DTMF_KEY = /^[0-9*#A-D]$/;

export interface SessionConfig {
  readonly model: string;
  readonly instructions: string;
  readonly voice: Voice;
  /** What the assistant says first, sent as the greeting `response.create`. */
  readonly greeting?: string;
  /** Caller transcription model. */
  readonly transcriptionModel?: string;
  readonly language?: string;
  /** Names of user tools (declared at the stack level) this session may call. */
  readonly tools?: readonly string[];
  readonly turnDetection?:
    | { readonly type: 'semantic_vad'; readonly eagerness?: 'low' | 'medium' | 'high' | 'auto' }
    | { readonly type: 'server_vad'; readonly idle_timeout_ms?: number };
  /**
   * Keypad keys the worker acts on by itself, e.g. `{ '0': { action: 'transfer', target: 'support' },
   * '#': { action: 'hangup' } }`. Every key pressed is recorded, and the keys so far are passed to
   * user tools (`call.dtmf`), whether mapped or not. Transfer targets must be in
   * `calls.transferTargets` (checked by `validateCallsConfig`).
   */
  readonly dtmf?: Readonly<Record<string, DtmfAction>>;
}

export const BUILT_IN_TOOLS = {
  endCall: {
    name: 'end_call',
    description: 'Hang up the call. Use after saying goodbye.',
    parameters: {
      type: 'object',
      properties: { reason: { type: 'string' } },
      additionalProperties: false,
    },
  },
  transferCall: (targets: readonly string[]) => ({
    name: 'transfer_call',
    description: `Transfer the caller to a person or team. Allowed targets: ${targets.join(', ')}.`,
    parameters: {
      type: 'object',
      properties: { target: { type: 'string', enum: [...targets] } },
      required: ['target'],
      additionalProperties: false,
    },
  }),
} as const;

export const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
// SIP rejects these turn-detection fields, and the codec is negotiated in SDP.
export const FORBIDDEN_VAD_FIELDS = [
  'threshold',
  'prefix_padding_ms',
  'silence_duration_ms',
] as const;

export function validateSessionConfig(session: SessionConfig, where: string): string[] {
  const problems: string[] = [];
  if (!session.model) problems.push(`${where}.model must be set explicitly.`);
  if (!session.instructions?.trim()) problems.push(`${where}.instructions must not be empty.`);
  if (!VOICES.includes(session.voice))
    problems.push(`${where}.voice must be one of ${VOICES.join(', ')}.`);
  const td = session.turnDetection as Record<string, unknown> | undefined;
  for (const field of FORBIDDEN_VAD_FIELDS) {
    if (td && field in td)
      problems.push(`${where}.turnDetection.${field} is rejected for SIP calls.`);
  }
  problems.push(...validateDtmfMap(session.dtmf, where));
  return problems;
}

/** The DTMF map's keys and actions (its transfer targets are checked against the calls config). */
function validateDtmfMap(dtmf: SessionConfig['dtmf'], where: string): string[] {
  if (dtmf === undefined) return [];
  if (typeof dtmf !== 'object' || dtmf === null || Array.isArray(dtmf))
    return [`${where}.dtmf must be an object of keypad keys.`];
  const problems: string[] = [];
  for (const [key, action] of Object.entries(dtmf)) {
    if (!DTMF_KEY.test(key))
      problems.push(`${where}.dtmf key "${key}" is not a keypad key (0-9, *, #, A-D).`);
    const a = action as { action?: unknown; target?: unknown } | null;
    if (a?.action === 'hangup') continue;
    if (a?.action !== 'transfer' || typeof a.target !== 'string' || a.target.length === 0)
      problems.push(
        `${where}.dtmf["${key}"] must be { action: 'hangup' } or { action: 'transfer', target }.`,
      );
  }
  return problems;
}
