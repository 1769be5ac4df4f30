/**
 * The call record's lifecycle. OpenAI sends no call-ended webhook: everything after `accepted`
 * is learned from the sideband socket.
 *
 *   ringing → accepting → accepted → active → ended
 *      ↘ rejecting → rejected | missed  ↘ ended (never attached: 404, accept failed)
 *
 * `rejecting` is the claimed decision to reject (status and reason recorded) before `/reject` is
 * called: one delivery makes it, and a redelivery after a crash finishes it.
 */
import { type CallEndReason, SIDEBAND_CLOSE_REASONS, type SidebandCloseCode } from '../reasons';

export const CALL_STATUSES = [
  'ringing',
  'accepting',
  'rejecting',
  'accepted',
  'active',
  'ended',
  'rejected',
  'missed',
] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

const NEXT: Readonly<Record<CallStatus, readonly CallStatus[]>> = {
  ringing: ['accepting', 'rejecting', 'rejected', 'missed', 'ended'],
  rejecting: ['rejected', 'missed'],
  // After a crash mid-accept we cannot know if OpenAI took it: the worker finds out (attach or 404).
  accepting: ['accepted', 'active', 'ended'],
  accepted: ['active', 'ended'],
  // A reattach after a hand-off moves active → active.
  active: ['active', 'ended'],
  ended: [],
  rejected: [],
  missed: [],
};

export function canTransition(from: CallStatus, to: CallStatus): boolean {
  return NEXT[from].includes(to);
}

/** The statuses a call may be in for a move to `to`: the conditional write's guard. */
export function predecessorsOf(to: CallStatus): CallStatus[] {
  return CALL_STATUSES.filter((s) => NEXT[s].includes(to));
}

export function isFinal(status: CallStatus): boolean {
  return NEXT[status].length === 0;
}

/** Why the sideband closed, from its close code; the socket is all we learn a call's end from. */
export function endReasonOf(
  code: number,
  context: {
    sessionExpired: boolean;
    hangupRequested: boolean;
    transferPending: boolean;
    handingOff: boolean;
    keepaliveFailed?: boolean;
  },
): CallEndReason {
  if (context.handingOff) return 'handed_off';
  if (context.keepaliveFailed) return 'keepalive_timeout';
  if (context.transferPending) return 'transferred';
  if (context.sessionExpired) return 'session_expired';
  if (context.hangupRequested) return 'hung_up_by_agent';
  return Object.hasOwn(SIDEBAND_CLOSE_REASONS, code)
    ? SIDEBAND_CLOSE_REASONS[code as SidebandCloseCode]
    : `closed_${code}`;
}
