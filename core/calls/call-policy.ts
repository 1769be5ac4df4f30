import type { CallMissedReason, CallRejectReason } from '../reasons';
import type { SessionConfig } from './session-config';

/**
 * Whether to accept an incoming call, and with which session. Pure: the caller supplies the
 * clock reading and the number of active calls.
 */
export interface CallPolicy {
  /** Callers or dialled numbers allowed; empty means everyone. `+1800*` matches a prefix. */
  readonly allow: readonly string[];
  /** Callers or dialled numbers refused, checked first. */
  readonly deny: readonly string[];
  readonly maxConcurrentCalls: number;
  readonly maxRingAgeSeconds: number;
  /** SIP status for calls the policy refuses. */
  readonly rejectStatus: number;
  /** Session per dialled number, with `default` for the rest. */
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
  readonly from: string | undefined;
  readonly to: string | undefined;
  /** Unix seconds, from the webhook. */
  readonly createdAt: number;
}

export function matches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const p = pattern.trim().toLowerCase();
  const v = value.toLowerCase();
  return p.endsWith('*') ? v.startsWith(p.slice(0, -1)) : v === p;
}

export function decideCall(
  call: IncomingCall,
  policy: CallPolicy,
  nowSeconds: number,
  activeCalls: number,
): CallDecision {
  if (nowSeconds - call.createdAt > policy.maxRingAgeSeconds)
    return { kind: 'missed', reason: 'stale' };
  const listed = (list: readonly string[]) =>
    list.some((p) => matches(p, call.from) || matches(p, call.to));
  if (listed(policy.deny)) return { kind: 'reject', status: policy.rejectStatus, reason: 'denied' };
  if (policy.allow.length > 0 && !listed(policy.allow))
    return { kind: 'reject', status: policy.rejectStatus, reason: 'not_allowed' };
  if (activeCalls >= policy.maxConcurrentCalls)
    return { kind: 'reject', status: 486, reason: 'busy' };
  const sessionKey = call.to !== undefined && call.to in policy.sessions ? call.to : 'default';
  return {
    kind: 'accept',
    session: policy.sessions[sessionKey] ?? policy.sessions.default,
    sessionKey,
  };
}
