import type { CallMissedReason, CallRejectReason } from '../reasons';
import type { SessionConfig } from './session-config';

/**
 * Numbers (or SIP user names) allowed and refused. An empty or absent `allow` means everyone;
 * `deny` is checked first. Patterns: an E.164 number (`+14155550123`), an E.164 prefix (`+1900*`),
 * or a SIP user name, exact or prefix (`alice`, `sales-*`), matched case-insensitively against the
 * normalised party (core/calls/sip.ts).
 */
export interface NumberLists {
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

/**
 * Whether to accept an incoming call, and with which session. Pure: the caller supplies the
 * clock reading and the number of active calls.
 */
export interface CallPolicy {
  /**
   * Callers allowed and refused. The caller is `From` (caller-chosen: anyone can put any number
   * there) unless `trustAssertedIdentity`. @default everyone
   */
  readonly callers?: NumberLists;
  /** Dialled numbers (`To`) allowed and refused. @default every number */
  readonly dialled?: NumberLists;
  /**
   * The country calling code (`'1'`, `'44'`) that numbers without `+` belong to; see
   * `normalisedNumber` in core/calls/sip.ts. @default none: such numbers match no E.164 pattern
   */
  readonly defaultCountry?: string;
  /**
   * The SIP trunk sets `P-Asserted-Identity` to the verified caller (and strips any the caller
   * sent): the caller is read from it when present. Only turn this on for such a trunk; anyone
   * can send the header. @default false
   */
  readonly trustAssertedIdentity?: boolean;
  readonly maxConcurrentCalls: number;
  readonly maxRingAgeSeconds: number;
  /** SIP status for calls the policy refuses. */
  readonly rejectStatus: number;
  /** Session per dialled number (E.164, or a SIP user name), with `default` for the rest. */
  readonly sessions: Readonly<Record<string, SessionConfig>> & { readonly default: SessionConfig };
}

export type CallDecision =
  | { readonly kind: 'accept'; readonly session: SessionConfig; readonly sessionKey: string }
  | {
      readonly kind: 'reject';
      readonly status: number;
      readonly reason: Exclude<CallRejectReason, 'invalid_session'>;
    }
  | { readonly kind: 'missed'; readonly reason: CallMissedReason };

export interface IncomingCall {
  /** The normalised caller (core/calls/sip.ts `callPartiesOf`). */
  readonly from: string | undefined;
  /** The normalised dialled number. */
  readonly to: string | undefined;
  /** Unix seconds, from the webhook. */
  readonly createdAt: number;
}

/** Exactly, or by prefix with a trailing `*`, case-insensitively. Plain string comparison only. */
export function matches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const p = pattern.trim().toLowerCase();
  const v = value.toLowerCase();
  return p.endsWith('*') ? v.startsWith(p.slice(0, -1)) : v === p;
}

function listed(list: readonly string[] | undefined, value: string | undefined): boolean {
  return (list ?? []).some((pattern) => matches(pattern, value));
}

function refused(lists: NumberLists | undefined, value: string | undefined): boolean {
  return (lists?.allow?.length ?? 0) > 0 && !listed(lists?.allow, value);
}

export function decideCall(
  call: IncomingCall,
  policy: CallPolicy,
  nowSeconds: number,
  activeCalls: number,
): CallDecision {
  if (nowSeconds - call.createdAt > policy.maxRingAgeSeconds)
    return { kind: 'missed', reason: 'stale' };
  if (listed(policy.callers?.deny, call.from) || listed(policy.dialled?.deny, call.to))
    return { kind: 'reject', status: policy.rejectStatus, reason: 'denied' };
  if (refused(policy.callers, call.from) || refused(policy.dialled, call.to))
    return { kind: 'reject', status: policy.rejectStatus, reason: 'not_allowed' };
  if (activeCalls >= policy.maxConcurrentCalls)
    return { kind: 'reject', status: 486, reason: 'busy' };
  // Own keys only: a dialled `constructor`, `__proto__` or `toString` selects no session.
  const to = call.to;
  const own =
    to !== undefined && Object.hasOwn(policy.sessions, to) ? policy.sessions[to] : undefined;
  return own && to !== undefined
    ? { kind: 'accept', session: own, sessionKey: to }
    : { kind: 'accept', session: policy.sessions.default, sessionKey: 'default' };
}

const E164_PATTERN = /^\+\d{0,15}\*?$/;
const USER_PATTERN = /^[a-z][a-z0-9._~!'+-]{0,63}\*?$/i;

/** Why a list pattern is unusable, or `undefined` when it is fine. */
function patternProblem(pattern: unknown): string | undefined {
  if (typeof pattern !== 'string') return 'is not a string';
  if (E164_PATTERN.test(pattern)) {
    const digits = pattern.replace(/\D/g, '');
    if (!pattern.endsWith('*') && digits.length < 3) return 'is too short for an E.164 number';
    return undefined;
  }
  if (USER_PATTERN.test(pattern)) return undefined;
  if (/^[\d\s()+.-]+\*?$/.test(pattern))
    return 'is not E.164: write the number as + and digits only (+14155550123), or a prefix (+1415*)';
  return 'must be an E.164 number (+14155550123), an E.164 prefix (+1900*) or a SIP user name (alice, sales-*), not a URI';
}

/** Session keys: `default`, an E.164 number, or a SIP user name, as `callPartiesOf` reads `To`. */
const SESSION_KEY = /^(default|\+\d{3,15}|[a-z][a-z0-9._~!'+-]{0,63})$/;

/**
 * What is wrong with the policy's lists, numbering and session keys (the rest of the policy is
 * checked by `validateCallsConfig`). Problems name the props (`calls.callers.deny[0]`, …).
 */
export function validateCallPolicy(policy: CallPolicy): string[] {
  const problems: string[] = [];
  for (const legacy of ['allow', 'deny'] as const) {
    if (Object.hasOwn(policy, legacy))
      problems.push(
        `calls.${legacy} is no longer supported: it matched the caller or the dialled number alike. Use calls.callers.${legacy} for callers and calls.dialled.${legacy} for dialled numbers.`,
      );
  }
  for (const side of ['callers', 'dialled'] as const) {
    const lists: unknown = policy[side];
    if (lists === undefined) continue;
    if (typeof lists !== 'object' || lists === null || Array.isArray(lists)) {
      problems.push(`calls.${side} must be { allow?: string[], deny?: string[] }.`);
      continue;
    }
    for (const key of Object.keys(lists)) {
      if (key !== 'allow' && key !== 'deny')
        problems.push(`calls.${side}.${key} is not a list; use allow or deny.`);
    }
    for (const name of ['allow', 'deny'] as const) {
      const list: unknown = (lists as NumberLists)[name];
      if (list === undefined) continue;
      if (!Array.isArray(list)) {
        problems.push(`calls.${side}.${name} must be a list of patterns.`);
        continue;
      }
      list.forEach((pattern: unknown, i) => {
        const problem = patternProblem(pattern);
        if (problem)
          problems.push(`calls.${side}.${name}[${i}] ${JSON.stringify(pattern)} ${problem}.`);
      });
    }
  }
  const country = policy.defaultCountry;
  if (country !== undefined && !(typeof country === 'string' && /^[1-9]\d{0,2}$/.test(country)))
    problems.push(
      `calls.defaultCountry must be a country calling code of 1 to 3 digits ('1', '44'); got ${JSON.stringify(country)}.`,
    );
  if (
    policy.trustAssertedIdentity !== undefined &&
    typeof policy.trustAssertedIdentity !== 'boolean'
  )
    problems.push('calls.trustAssertedIdentity must be true or false.');
  for (const key of Object.keys(policy.sessions ?? {})) {
    if (!SESSION_KEY.test(key))
      problems.push(
        `calls.sessions["${key}"]: a session key is "default", an E.164 number (+18005550100) or a lowercase SIP user name; the dialled number is normalised to one of those, so this key would never be chosen.`,
      );
  }
  return problems;
}
