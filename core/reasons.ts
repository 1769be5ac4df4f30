/**
 * Every reason code the system gives out: in HTTP error bodies, on call records, and as the
 * `Reason`/`EndReason` dimension of a metric. Code that produces a reason is typed with these
 * unions, and the dashboard draws one line per value from these lists, so a new reason cannot be
 * given out without the dashboard knowing it.
 */

/** Why the signature check refused a delivery (4xx). */
export const VERIFY_FAILURE_CODES = [
  'invalid_signature',
  'timestamp_out_of_tolerance',
  'missing_header',
  'malformed_header',
] as const;
export type VerifyFailureCode = (typeof VERIFY_FAILURE_CODES)[number];

/** Why a verified body is not a well-formed event envelope. */
export const ENVELOPE_FAILURE_CODES = ['invalid_json', 'invalid_envelope'] as const;
export type EnvelopeFailureCode = (typeof ENVELOPE_FAILURE_CODES)[number];

/**
 * Why a verified body was kept as a `malformed` event. Once the signature holds, the body is
 * OpenAI's: it is stored, routed and acknowledged (200) however odd it is, never refused, since a
 * 4xx would only make OpenAI retry it for 72 hours and then drop it.
 */
export const MALFORMED_REASONS = ['invalid_encoding', ...ENVELOPE_FAILURE_CODES] as const;
export type MalformedReason = (typeof MALFORMED_REASONS)[number];

/** Every 4xx the ingress answers with: the `Reason` of `WebhooksRejected`, in dashboard order. */
export const INGRESS_REJECTION_REASONS = [
  ...VERIFY_FAILURE_CODES,
  'body_too_large',
  'method_not_allowed',
  // No `delivery_in_progress` (409) since issue 12: the event head is written after queueing,
  // so no delivery ever waits on another's claim.
] as const;
export type IngressRejectionReason = (typeof INGRESS_REJECTION_REASONS)[number];

/** Every 5xx the ingress answers with: the `Reason` of `WebhooksFailed` (OpenAI retries these). */
export const INGRESS_FAILURE_REASONS = [
  'secret_unavailable',
  'store_unavailable',
  'queue_unavailable',
] as const;
export type IngressFailureReason = (typeof INGRESS_FAILURE_REASONS)[number];

export type IngressErrorCode = IngressRejectionReason | IngressFailureReason;

/** Why the policy refused a call (`/reject`): the `Reason` of `CallsRejected`. */
export const CALL_REJECT_REASONS = ['busy', 'denied', 'not_allowed', 'invalid_session'] as const;
export type CallRejectReason = (typeof CALL_REJECT_REASONS)[number];

/** Why a call was never answered or rejected: it had rung longer than `maxRingAge`. */
export type CallMissedReason = 'stale';

/** Why an accepted call never got a sideband: the `Reason` of `CallsFailed`. */
export const CALL_FAILURE_REASONS = ['accept_failed', 'gone_before_accept'] as const;
export type CallFailureReason = (typeof CALL_FAILURE_REASONS)[number];

/**
 * The common ends of a call, one dashboard line each: the `EndReason` of `CallsEnded`. Rarer ones
 * (`CallEndReason` below) appear in the console and on the call record.
 */
export const CALL_END_REASONS = [
  'caller_hung_up',
  'hung_up_by_agent',
  'transferred',
  'session_expired',
  'keepalive_timeout',
  'normal_closure',
  'gone',
  'attach_failed',
  /**
   * The worker hung up because nobody spoke: no speech within `noSpeechTimeoutMs` of the attach,
   * or `idleTimeoutsBeforeHangup` server idle timeouts in a row (a ghost or silent call).
   */
  'no_caller_speech',
] as const;

/** Every `endReason` a call record can carry. */
export type CallEndReason =
  | (typeof CALL_END_REASONS)[number]
  | CallFailureReason
  | 'handed_off'
  | 'going_away'
  | 'server_rejected_session'
  | `attach_failed_${number}`
  | `closed_${number}`;

/**
 * The sideband close codes that mean something specific. The socket is all we learn a call's end
 * from; any other code is recorded as `closed_<code>`.
 */
export const SIDEBAND_CLOSE_REASONS = {
  1000: 'normal_closure',
  1001: 'going_away',
  /** No close frame: the call's media ended under the socket (the caller hung up). */
  1006: 'caller_hung_up',
  /** OpenAI refused the session (for example an `OpenAI-Beta` header on a GA session). */
  4000: 'server_rejected_session',
} as const satisfies Readonly<Record<number, CallEndReason>>;
export type SidebandCloseCode = keyof typeof SIDEBAND_CLOSE_REASONS;

/** What a hang-up the worker asked for was for: recorded on the timeline's `hangup` event. */
export type HangupCause = 'agent_end_call' | 'session_cap' | 'no_caller_speech' | 'dtmf';
