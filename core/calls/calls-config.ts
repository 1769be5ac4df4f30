/**
 * Everything call handling needs at run time, shared by the incoming-call Lambda and the sideband
 * worker (both read it as JSON from `CALLS_CONFIG`). The stack builds it from props and validates
 * it at synth; `parseCallsConfig` validates it again at start-up.
 */
import type { CallPolicy } from './call-policy';
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
}

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
} as const;

export function validateCallsConfig(config: CallsConfig): string[] {
  const problems: string[] = [];
  const p = config.policy;
  if (!Number.isInteger(p.maxConcurrentCalls) || p.maxConcurrentCalls < 1)
    problems.push('calls.maxConcurrentCalls must be a positive integer.');
  if (!(p.maxRingAgeSeconds > 0)) problems.push('calls.maxRingAgeSeconds must be positive.');
  if (!Number.isInteger(p.rejectStatus) || p.rejectStatus < 300 || p.rejectStatus > 699)
    problems.push('calls.rejectStatus must be a SIP status from 300 to 699.');
  if (!p.sessions.default) problems.push('calls.sessions needs a "default" session.');
  const toolNames = new Set(config.tools.map((t) => t.name));
  for (const [key, session] of Object.entries(p.sessions) as [string, SessionConfig][]) {
    problems.push(...validateSessionConfig(session, `calls.sessions["${key}"]`));
    for (const tool of session.tools ?? []) {
      if (!toolNames.has(tool))
        problems.push(
          `calls.sessions["${key}"] uses tool "${tool}", which calls.tools does not declare.`,
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
  if (
    config.wrapUpTransferTarget !== undefined &&
    !(config.wrapUpTransferTarget in config.transferTargets)
  ) {
    problems.push('calls.wrapUpTransferTarget must be one of calls.transferTargets.');
  }
  if (!(config.wrapUpAfterMs > 0 && config.wrapUpAfterMs + config.wrapUpGraceMs < 60 * 60_000)) {
    problems.push(
      'calls.wrapUpAfter plus calls.wrapUpGrace must end before the 60-minute session cap.',
    );
  }
  if (!Number.isInteger(config.maxCallsPerTask) || config.maxCallsPerTask < 1)
    problems.push('calls.maxCallsPerTask must be a positive integer.');
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
