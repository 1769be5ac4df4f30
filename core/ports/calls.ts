import type { CallStatus } from '../calls/call-state';
import type { CallerSource, SipMediaSecurity } from '../calls/sip';
import type { CallEndReason, CallMissedReason, CallRejectReason } from '../reasons';

/** How a call reached OpenAI: SIP, or a browser's WebRTC peer connection. */
export type CallChannel = 'sip' | 'webrtc';

export interface CallRecord {
  readonly callId: string;
  readonly status: CallStatus;
  readonly from?: string;
  readonly to?: string;
  /** `from` came from `From` (caller-chosen) or a trusted trunk's `P-Asserted-Identity`. */
  readonly callerSource?: CallerSource;
  /**
   * True only for `asserted`: anything else is a number the caller claims, not one we know. Tools
   * get it beside the number, so none authenticates anyone by caller id.
   */
  readonly callerVerified?: boolean;
  /** The delivery attempt that has been deciding the call since `handledAt`. */
  readonly handledBy?: string;
  /** `srtp`, `rtp` or `unknown`, from the incoming event's `sip_media_security`, when it had one. */
  readonly sipMediaSecurity?: SipMediaSecurity;
  readonly eventId: string;
  readonly webhookId: string;
  /** Unix seconds, from the webhook. */
  readonly createdAt: number;
  /** Epoch ms of each step. */
  readonly receivedAt: number;
  readonly acceptedAt?: number;
  readonly attachedAt?: number;
  readonly endedAt?: number;
  readonly sessionKey?: string;
  readonly rejectReason?: CallRejectReason | CallMissedReason;
  readonly rejectStatus?: number;
  readonly endReason?: CallEndReason;
  readonly owner?: string;
  readonly holdsCapacity?: boolean;
  readonly waitedForColdWorker?: boolean;
  readonly transferTarget?: string;
  readonly transferStatus?: 'pending' | 'confirmed' | 'failed';
  readonly durationMs?: number;
  /** Epoch ms the incoming-call handler picked the webhook up (queue wait = handledAt - receivedAt). */
  readonly handledAt?: number;
  /** Running usage totals from `response.done`. */
  readonly totalTokens?: number;
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly responses?: number;
  /**
   * The same totals by kind, from each usage's `input_token_details`/`output_token_details`
   * (realtime.d.ts RealtimeResponseUsage): audio and text are priced differently, and cached input
   * tokens (a subset of the input tokens) cost less.
   */
  readonly inputTextTokens?: number;
  readonly inputAudioTokens?: number;
  readonly cachedTokens?: number;
  readonly cachedTextTokens?: number;
  readonly cachedAudioTokens?: number;
  readonly outputTextTokens?: number;
  readonly outputAudioTokens?: number;
  /** Epoch ms the caller was first heard (speech, a transcript or a key): no ghost-call hang-up. */
  readonly callerSpokeAt?: number;
  /** Reattaches after a clean close the worker did not cause (a backend rotation). */
  readonly reattaches?: number;
  /** Server idle timeouts (`input_audio_buffer.timeout_triggered`) in the call. */
  readonly idleTimeouts?: number;
  /**
   * How the call reached OpenAI: a SIP trunk (`realtime.call.incoming`, the default when unset) or
   * a browser's WebRTC offer through the session endpoint or the attach API (core/webrtc/).
   */
  readonly channel?: CallChannel;
  /** The WebRTC profile (a key of `calls.sessions`) the session was opened with. */
  readonly profile?: string;
  /** Short strings the attach API was given, kept on the record for tools and views. */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly expiresAt: number;
}

/**
 * The call record's running usage totals, in one list for the recorder that adds to them and the
 * views that show them: tokens in and out, and by kind from each usage's `input_token_details` /
 * `output_token_details` (realtime.d.ts RealtimeResponseUsage), since audio, text and cached input
 * are priced differently.
 */
export const CALL_USAGE_TOTALS = [
  'totalTokens',
  'inputTokens',
  'outputTokens',
  'inputTextTokens',
  'inputAudioTokens',
  'cachedTokens',
  'cachedTextTokens',
  'cachedAudioTokens',
  'outputTextTokens',
  'outputAudioTokens',
  'responses',
] as const satisfies readonly (keyof CallRecord)[];

export interface CallStore {
  /** Creates the record in `ringing`. False if it exists (another delivery owns the call). */
  create(record: CallRecord): Promise<boolean>;
  get(callId: string): Promise<CallRecord | undefined>;
  /**
   * Moves the call to `to` if it is still in one of `from`, setting `fields`. With `release`, the
   * call's capacity slot is given back in the same transaction, so it happens exactly once.
   */
  transition(
    callId: string,
    from: readonly CallStatus[],
    to: CallStatus,
    fields?: Partial<CallRecord>,
    options?: { release?: boolean },
  ): Promise<boolean>;
  /** Takes a capacity slot if fewer than `max` are held; marks the call as holding it. */
  reserveCapacity(callId: string, max: number): Promise<boolean>;
  activeCalls(): Promise<number>;
}

export interface CallSignal {
  readonly callId: string;
  readonly reason: 'incoming' | 'handoff' | 'sweep';
  readonly sessionKey: string;
  /** Epoch ms. */
  readonly sentAt: number;
}

export interface SignalPublisher {
  signal(message: CallSignal): Promise<void>;
}

export interface CallsApi {
  accept(callId: string, body: unknown): Promise<'accepted' | 'gone'>;
  reject(callId: string, statusCode: number): Promise<'rejected' | 'gone'>;
  refer(callId: string, targetUri: string): Promise<'referred' | 'gone'>;
  hangup(callId: string): Promise<'hung_up' | 'gone'>;
}

export interface ServiceScaler {
  /** Makes sure at least one worker runs; true if it had to start one (a cold worker). */
  ensureRunning(): Promise<boolean>;
}
