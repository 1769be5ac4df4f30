/**
 * The session endpoint's runtime config (`WEBRTC_CONFIG`, JSON), set by the stack from the
 * `webrtc` prop and checked again at cold start. Profiles are keys of `calls.sessions`: one set of
 * session configs serves both channels, and the sideband worker finds a WebRTC call's session by
 * its session key exactly as it finds a SIP call's.
 */
import { CALL_DEFAULTS } from '../calls/calls-config';
import type { SessionConfig } from '../calls/session-config';
import { PROFILE_NAME } from './session-request';

export interface WebRtcConfig {
  /** The profiles a browser may pick: keys of `calls.sessions`. */
  readonly profiles: readonly string[];
  /** Used when a request names none. @default none: a request must name one */
  readonly defaultProfile?: string;
  readonly maxConcurrentSessions: number;
  readonly maxSdpBytes: number;
  /** The `open` mode's per-IP limit. */
  readonly perIp?: { readonly limit: number; readonly windowSeconds: number };
  /**
   * How API Gateway authenticates each route (lib/constructs/api-auth.ts). The handler checks that
   * the request came through that authorizer, and refuses it (401) when it did not: a route added
   * or changed by hand without one is not an open door. @default 'open' for both (local mode)
   */
  readonly auth?: AuthKind;
  readonly attachAuth?: AuthKind;
}

/** An auth choice by kind: the handler sees its result, not its settings. */
export type AuthKind = 'jwt' | 'iam' | 'open';
const AUTH_KINDS: readonly unknown[] = ['jwt', 'iam', 'open'];

export const WEBRTC_DEFAULTS = {
  maxConcurrentSessions: 20,
  maxSdpBytes: 64 * 1024,
  perIpLimit: 10,
  perIpWindowSeconds: 60,
} as const;

/** Every problem with the config against the sessions it names; `where` prefixes each. */
export function validateWebRtcConfig(
  config: WebRtcConfig,
  sessions: Readonly<Record<string, SessionConfig>>,
  where = 'webrtc',
): string[] {
  const problems: string[] = [];
  if (!Array.isArray(config.profiles) || config.profiles.length === 0)
    problems.push(`${where}.profiles must name at least one key of calls.sessions.`);
  for (const name of config.profiles ?? []) {
    if (typeof name !== 'string' || !PROFILE_NAME.test(name))
      problems.push(`${where}.profiles: ${JSON.stringify(name)} is not a profile name.`);
    else if (!Object.hasOwn(sessions, name))
      problems.push(`${where}.profiles: "${name}" is not a key of calls.sessions.`);
  }
  if (new Set(config.profiles).size !== (config.profiles ?? []).length)
    problems.push(`${where}.profiles has duplicates.`);
  if (
    config.defaultProfile !== undefined &&
    !(config.profiles ?? []).includes(config.defaultProfile)
  )
    problems.push(`${where}.defaultProfile must be one of ${where}.profiles.`);
  if (!Number.isInteger(config.maxConcurrentSessions) || config.maxConcurrentSessions < 1)
    problems.push(`${where}.maxConcurrentSessions must be a positive integer.`);
  if (
    !Number.isInteger(config.maxSdpBytes) ||
    config.maxSdpBytes < 1024 ||
    config.maxSdpBytes > 256 * 1024
  )
    problems.push(`${where}.maxSdpBytes must be an integer from 1024 to 262144.`);
  for (const key of ['auth', 'attachAuth'] as const)
    if (config[key] !== undefined && !AUTH_KINDS.includes(config[key]))
      problems.push(`${where}.${key} must be jwt, iam or open.`);
  if (config.perIp) {
    const { limit, windowSeconds } = config.perIp;
    if (!Number.isInteger(limit) || limit < 1)
      problems.push(`${where}.perIpLimit must be a positive integer.`);
    if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > 3600)
      problems.push(`${where}.perIpWindow must be between 1 second and 1 hour.`);
  }
  return problems;
}

/** The allowlisted sessions, name → config (own properties of `sessions` only). */
export function webRtcProfiles(
  config: Pick<WebRtcConfig, 'profiles'>,
  sessions: Readonly<Record<string, SessionConfig>>,
): Record<string, SessionConfig> {
  const profiles: Record<string, SessionConfig> = Object.create(null);
  for (const name of config.profiles) {
    if (Object.hasOwn(sessions, name)) profiles[name] = sessions[name] as SessionConfig;
  }
  return profiles;
}

export function parseWebRtcConfig(
  json: string,
  sessions: Readonly<Record<string, SessionConfig>>,
): WebRtcConfig {
  const config = JSON.parse(json) as WebRtcConfig;
  const problems = validateWebRtcConfig(config, sessions);
  if (problems.length > 0) throw new Error(`Invalid WEBRTC_CONFIG:\n- ${problems.join('\n- ')}`);
  return config;
}

/**
 * The calls config as a worker applies it to one call. A WebRTC call cannot be transferred
 * (`/refer` is SIP REFER: calls.d.ts "Transfer an active SIP call"), so it gets no transfer
 * targets: the model is offered no `transfer_call`, a keypad or command transfer is refused, and
 * the wrap-up hangs up (`/hangup`, which ends SIP and WebRTC calls alike) instead of transferring.
 * With `maxSessionMs` (the `webrtc.maxSessionLength` prop), the wrap-up starts early enough that
 * its grace and the goodbye's longest drain (`goodbyeDrainCapMs`) both end by then, so the hang-up
 * lands within the limit.
 */
export function callsConfigForChannel<
  T extends {
    readonly transferTargets: Readonly<Record<string, string>>;
    readonly wrapUpTransferTarget?: string;
    readonly wrapUpAfterMs: number;
    readonly wrapUpGraceMs: number;
    readonly goodbyeDrainCapMs?: number;
  },
>(config: T, channel: 'sip' | 'webrtc' | undefined, maxSessionMs = 0): T {
  if (channel !== 'webrtc') return config;
  const { wrapUpTransferTarget: _none, ...rest } = config;
  const capped =
    maxSessionMs > 0
      ? Math.max(
          1000,
          Math.min(
            config.wrapUpAfterMs,
            maxSessionMs -
              config.wrapUpGraceMs -
              (config.goodbyeDrainCapMs ?? CALL_DEFAULTS.goodbyeDrainCapMs),
          ),
        )
      : config.wrapUpAfterMs;
  return { ...rest, transferTargets: {}, wrapUpAfterMs: capped } as unknown as T;
}
