/**
 * Everything call handling needs at run time, shared by the incoming-call Lambda and the sideband
 * worker (both read it as JSON from `CALLS_CONFIG`). The stack builds it from props and validates
 * it at synth; `parseCallsConfig` validates it again at start-up.
 */
import { type CallPolicy, validateCallPolicy } from './call-policy';
import { type SessionConfig, type ToolDefinition, validateSessionConfig } from './session-config';

export interface UserToolConfig extends ToolDefinition {
  /** Lambda function name or ARN that implements the tool. */
  readonly functionName: string;
  readonly timeoutMs: number;
}

export interface CallsConfig {
  readonly policy: CallPolicy;
  readonly tools: readonly UserToolConfig[];
  /** Transfer targets the model may name, mapped to SIP or tel URIs: the allowlist. */
  readonly transferTargets: Readonly<Record<string, string>>;
  /** How long a transfer may take to close the socket before it counts as failed. */
  readonly transferConfirmMs: number;
  /** When to ask the model to wrap up, measured from accept (OpenAI ends sessions at 60 min). */
  readonly wrapUpAfterMs: number;
  /** How long the wrap-up may take before we hang up or transfer. */
  readonly wrapUpGraceMs: number;
  /** What to do at the end of the wrap-up: hang up, or transfer to this target name. */
  readonly wrapUpTransferTarget?: string;
  readonly maxCallsPerTask: number;
  readonly redactTranscripts: boolean;
  readonly recordTtlSeconds: number;
  /**
   * How long `end_call`, `transfer_call` and the wrap-up's hang-up or transfer wait for the
   * goodbye to finish playing (its `response.done`, then `output_audio_buffer.stopped`) before
   * `/hangup` or `/refer` anyway. @default CALL_DEFAULTS.goodbyeDrainCapMs (5 s)
   */
  readonly goodbyeDrainCapMs?: number;
  /**
   * A call in which the caller never spoke (no `input_audio_buffer.speech_started`, no caller
   * transcript, no keypad key) this long after the attach is hung up and ends as
   * `no_caller_speech`; 0 turns it off. @default CALL_DEFAULTS.noSpeechTimeoutMs (30 s)
   */
  readonly noSpeechTimeoutMs?: number;
  /**
   * With a session's server_vad `idle_timeout_ms`, the server sends
   * `input_audio_buffer.timeout_triggered` after that much silence and has the model prompt the
   * caller. This many in a row with no speech between them hang the call up (`no_caller_speech`);
   * 0 never does. @default CALL_DEFAULTS.idleTimeoutsBeforeHangup (3)
   */
  readonly idleTimeoutsBeforeHangup?: number;
  /**
   * A tool output longer than this many UTF-8 bytes is cut, with a marker, before it goes to the
   * model (and the cut is recorded). @default CALL_DEFAULTS.maxToolOutputBytes (16 KiB)
   */
  readonly maxToolOutputBytes?: number;
}

/** The sideband settings that have defaults, resolved. */
export type SidebandSettings = Required<
  Pick<
    CallsConfig,
    'goodbyeDrainCapMs' | 'noSpeechTimeoutMs' | 'idleTimeoutsBeforeHangup' | 'maxToolOutputBytes'
  >
>;

export const CALL_DEFAULTS = {
  maxConcurrentCalls: 100,
  maxRingAgeSeconds: 30,
  rejectStatus: 603,
  transferConfirmMs: 15_000,
  wrapUpAfterMs: 55 * 60_000,
  wrapUpGraceMs: 60_000,
  maxCallsPerTask: 200,
  recordTtlSeconds: 90 * 24 * 3600,
  toolTimeoutMs: 5000,
  goodbyeDrainCapMs: 5000,
  noSpeechTimeoutMs: 30_000,
  idleTimeoutsBeforeHangup: 3,
  maxToolOutputBytes: 16 * 1024,
} as const;

/** The config's sideband settings, with the defaults where it sets none. */
export function sidebandSettings(config: Partial<SidebandSettings>): SidebandSettings {
  return {
    goodbyeDrainCapMs: config.goodbyeDrainCapMs ?? CALL_DEFAULTS.goodbyeDrainCapMs,
    noSpeechTimeoutMs: config.noSpeechTimeoutMs ?? CALL_DEFAULTS.noSpeechTimeoutMs,
    idleTimeoutsBeforeHangup:
      config.idleTimeoutsBeforeHangup ?? CALL_DEFAULTS.idleTimeoutsBeforeHangup,
    maxToolOutputBytes: config.maxToolOutputBytes ?? CALL_DEFAULTS.maxToolOutputBytes,
  };
}

export function validateCallsConfig(config: CallsConfig): string[] {
  const problems: string[] = [];
  const p = config.policy;
  if (!Number.isInteger(p.maxConcurrentCalls) || p.maxConcurrentCalls < 1)
    problems.push('calls.maxConcurrentCalls must be a positive integer.');
  if (!(p.maxRingAgeSeconds > 0)) problems.push('calls.maxRingAgeSeconds must be positive.');
  if (!Number.isInteger(p.rejectStatus) || p.rejectStatus < 300 || p.rejectStatus > 699)
    problems.push('calls.rejectStatus must be a SIP status from 300 to 699.');
  if (!p.sessions.default) problems.push('calls.sessions needs a "default" session.');
  problems.push(...validateCallPolicy(p));
  const toolNames = new Set(config.tools.map((t) => t.name));
  for (const [key, session] of Object.entries(p.sessions) as [string, SessionConfig][]) {
    problems.push(...validateSessionConfig(session, `calls.sessions["${key}"]`));
    for (const tool of session.tools ?? []) {
      if (!toolNames.has(tool))
        problems.push(
          `calls.sessions["${key}"] uses tool "${tool}", which calls.tools does not declare.`,
        );
    }
    for (const [digit, action] of Object.entries(session.dtmf ?? {})) {
      if (action?.action === 'transfer' && !Object.hasOwn(config.transferTargets, action.target))
        problems.push(
          `calls.sessions["${key}"].dtmf["${digit}"] transfers to "${action.target}", which is not one of calls.transferTargets.`,
        );
    }
  }
  for (const tool of config.tools) {
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name))
      problems.push(`calls.tools: "${tool.name}" is not a valid tool name.`);
    if (tool.name === 'end_call' || tool.name === 'transfer_call')
      problems.push(`calls.tools: "${tool.name}" is built in.`);
    if (!(tool.timeoutMs > 0 && tool.timeoutMs <= 60_000))
      problems.push(`calls.tools.${tool.name}.timeout must be between 1 ms and 60 s.`);
    if (tool.parameters?.type !== 'object')
      problems.push(`calls.tools.${tool.name}.parameters must be a JSON schema of type "object".`);
  }
  if (toolNames.size !== config.tools.length) problems.push('calls.tools has duplicate names.');
  for (const [name, uri] of Object.entries(config.transferTargets)) {
    if (!/^(sips?:[^@\s]+@[^\s]+|tel:\+?[\d-]{3,})$/.test(uri))
      problems.push(`calls.transferTargets.${name} must be a sip: or tel: URI.`);
  }
  // Own properties only: "toString" is not a transfer target.
  if (
    config.wrapUpTransferTarget !== undefined &&
    !Object.hasOwn(config.transferTargets, config.wrapUpTransferTarget)
  ) {
    problems.push('calls.wrapUpTransferTarget must be one of calls.transferTargets.');
  }
  const settings = sidebandSettings(config);
  problems.push(...validateSidebandSettings(settings));
  // The wrap-up's goodbye may play for up to goodbyeDrainCapMs before the hang-up.
  if (
    !(
      config.wrapUpAfterMs > 0 &&
      config.wrapUpAfterMs + config.wrapUpGraceMs + settings.goodbyeDrainCapMs < 60 * 60_000
    )
  ) {
    problems.push(
      'calls.wrapUpAfter plus calls.wrapUpGrace (plus calls.goodbyeDrainCap) must end before the 60-minute session cap.',
    );
  }
  if (!Number.isInteger(config.maxCallsPerTask) || config.maxCallsPerTask < 1)
    problems.push('calls.maxCallsPerTask must be a positive integer.');
  return problems;
}

function validateSidebandSettings(s: SidebandSettings): string[] {
  const problems: string[] = [];
  const integerIn = (value: number, min: number, max: number) =>
    Number.isInteger(value) && value >= min && value <= max;
  if (!integerIn(s.goodbyeDrainCapMs, 0, 30_000))
    problems.push('calls.goodbyeDrainCap must be between 0 and 30 s.');
  // 0 is off; otherwise at least the shortest idle_timeout_ms the API takes (5 s), under the cap.
  if (!(s.noSpeechTimeoutMs === 0 || integerIn(s.noSpeechTimeoutMs, 5000, 55 * 60_000)))
    problems.push('calls.noSpeechTimeout must be 0 (off) or between 5 s and 55 minutes.');
  if (!integerIn(s.idleTimeoutsBeforeHangup, 0, 20))
    problems.push('calls.idleTimeoutsBeforeHangup must be an integer from 0 (never) to 20.');
  if (!integerIn(s.maxToolOutputBytes, 1024, 256 * 1024))
    problems.push('calls.maxToolOutputBytes must be between 1 KiB and 256 KiB.');
  return problems;
}

export function parseCallsConfig(json: string): CallsConfig {
  const config = JSON.parse(json) as CallsConfig;
  const problems = validateCallsConfig(config);
  if (problems.length > 0) throw new Error(`Invalid CALLS_CONFIG:\n- ${problems.join('\n- ')}`);
  return config;
}

/** Redacts what a transcript may carry that should not be kept: numbers of 4+ digits, e-mails. */
export function redactTranscript(text: string): string {
  return text
    .replace(/[\w.+-]+@[\w-]+\.[\w.-]+/g, '[email]')
    .replace(/\+?\d[\d\s().-]{2,}\d/g, (m) => (m.replace(/\D/g, '').length >= 4 ? '[number]' : m));
}
