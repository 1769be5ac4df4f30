import type { CallerSource } from '../calls/sip';

/**
 * What the sideband worker needs from the outside world, besides the call store, the calls API and
 * the signal publisher (`./calls`): the signal queue it takes calls from, the leases that say which
 * worker holds each call, the recorder of each call's transcript, the durable once-only claim of a
 * tool call, and the runner of user tools. The adapters implement them on SQS, DynamoDB and Lambda.
 */

/** One signal taken from the queue: its body, and the handle that acknowledges (deletes) it. */
export interface QueuedSignal {
  readonly body: string;
  readonly receipt: string;
}

/**
 * The queue of call signals (`incoming`, `handoff`, `sweep`) the workers take calls from. A signal
 * received is invisible to other workers only briefly (long enough to claim its call), so one
 * taken by a worker that dies before claiming comes back soon; the worker that claims the call
 * keeps it invisible while it attaches (`delay`), and acknowledges it once the call is attached or
 * settled.
 */
export interface SignalQueue {
  /** Long-polls for up to `max` signals; an abort ends the wait. */
  receive(max: number, abort: AbortSignal): Promise<readonly QueuedSignal[]>;
  /** Removes a signal for good; one not acknowledged becomes visible again and is retried. */
  ack(receipt: string): Promise<void>;
  /** Makes a signal visible again only after `seconds` from now (0: at once, for another worker). */
  delay(receipt: string, seconds: number): Promise<void>;
}

/** A call claim's outcome: ours now, another worker's, or refused because our epoch was fenced. */
export type ClaimResult = 'claimed' | 'held' | 'fenced';

/**
 * Who holds each call's sideband. Each worker holds one worker lease, renewed periodically, so
 * renewal costs one write however many calls it holds; each held call has a call lease naming its
 * owner and the owner's **epoch**.
 *
 * Fencing: a worker's lease carries an epoch (a number that only grows). A sweeper that finds a
 * worker's lease expired first fences it, atomically and only while it is still expired, by bumping
 * its epoch; only then does it take the call leases of older epochs. A renewal, a claim and a
 * release are conditional on the caller's epoch, so a worker that stalled past its lease and comes
 * back finds its renewal refused and knows it lost every call: it cannot renew "in between" the
 * sweeper's steps, and cannot claim anything under the fenced epoch.
 *
 * Times: `now` is the caller's clock, and a sweeper compares another worker's `deadAfter` (written
 * with that worker's clock) with its own, so the design tolerates clock skew up to the worker's
 * `maxClockSkewMs` (containers/sideband/src/worker.ts).
 */
export interface CallLeases {
  /**
   * Registers this worker (at start, or coming back after being fenced) with a fresh lease under a
   * new epoch, never one it held before; returns the epoch.
   */
  registerWorker(owner: string, now: number, ttlMs: number): Promise<number>;
  /** Renews the lease of `epoch`. False: a sweeper fenced that epoch and takes its calls. */
  renewWorker(owner: string, epoch: number, now: number, ttlMs: number): Promise<boolean>;
  /** Takes a call's lease under `epoch` if nobody holds it (or we already do). */
  claim(callId: string, owner: string, epoch: number, now: number): Promise<ClaimResult>;
  /** Gives a call's lease back if we still hold it under `epoch`; false if we did not. */
  release(callId: string, owner: string, epoch: number): Promise<boolean>;
  /**
   * Marks our worker lease expired on a clean shutdown (after the hand-off released the call
   * leases): any lease a failed release left behind is swept, and the lease item goes with it.
   */
  retire(owner: string, epoch: number): Promise<void>;
  /**
   * Fences every worker whose lease expired (by `now`), takes over its call leases, each exactly
   * once across sweepers, and returns those calls to re-signal.
   */
  sweepDeadWorkers(now: number): Promise<string[]>;
}

/** One entry of a call's recording, stored beside its record. */
export type CallPart =
  | {
      readonly kind: 'transcript';
      readonly role: 'caller' | 'assistant';
      readonly text: string;
      readonly itemId?: string;
      /**
       * The assistant's response this line is from: an `assistant_cut_off` event with the same
       * `responseId` means the caller did not hear it to the end.
       */
      readonly responseId?: string;
      /**
       * Where the item sits in the conversation (from `conversation.item.added`'s
       * `previous_item_id`), not when its transcript arrived: a caller's transcription can
       * complete after the assistant answered. About the epoch ms the item was added, so it sorts
       * with parts that have only `at`. Sort transcripts by `order ?? at`.
       */
      readonly order?: number;
    }
  | ToolPart
  | { readonly kind: 'usage'; readonly responseId: string; readonly usage: ResponseUsage }
  | { readonly kind: 'error'; readonly code: string; readonly message: string }
  | { readonly kind: 'event'; readonly name: string; readonly detail?: Record<string, unknown> };

/** A tool call and its result, as recorded (the `TOOL#<fnCallId>` part). */
export interface ToolPart {
  readonly kind: 'tool';
  readonly fnCallId: string;
  readonly name: string;
  readonly arguments: string;
  readonly output: string;
  readonly latencyMs: number;
  /** `skipped`: claimed, but the call ended before it could run. */
  readonly status: 'done' | 'failed' | 'skipped';
  readonly error?: string;
  /** The output was longer than `maxToolOutputBytes` and was cut; `outputBytes` is its full size. */
  readonly truncated?: boolean;
  readonly outputBytes?: number;
}

/**
 * A response's token usage, as `response.done` carries it (realtime.d.ts RealtimeResponseUsage,
 * RealtimeResponseUsageInputTokenDetails, RealtimeResponseUsageOutputTokenDetails). Cached tokens
 * are a subset of the input tokens.
 */
export interface ResponseUsage {
  readonly total_tokens?: number;
  readonly input_tokens?: number;
  readonly output_tokens?: number;
  readonly input_token_details?: {
    readonly text_tokens?: number;
    readonly audio_tokens?: number;
    readonly image_tokens?: number;
    readonly cached_tokens?: number;
    readonly cached_tokens_details?: {
      readonly text_tokens?: number;
      readonly audio_tokens?: number;
      readonly image_tokens?: number;
    };
  };
  readonly output_token_details?: {
    readonly text_tokens?: number;
    readonly audio_tokens?: number;
  };
}

/** Records one call: parts (timeline, transcript, tools, usage, errors) and running usage totals. */
export interface CallRecorder {
  /** Buffers a part; it is written soon (at least every second), never synchronously. */
  record(part: CallPart): void;
  /** Adds a response's usage to the call's running totals, written with the next flush. */
  addUsage(usage: ResponseUsage): void;
  /** Writes what is buffered and stops; never throws (a failure goes to the recorder's own log). */
  close(): Promise<void>;
}

/** A tool's result that a worker handing the call off could not send: the next owner sends it. */
export interface StoredToolOutput {
  readonly fnCallId: string;
  readonly name: string;
  readonly arguments: string;
  readonly output: string;
  readonly status: 'done' | 'failed';
  readonly latencyMs: number;
  readonly error?: string;
  readonly truncated?: boolean;
  readonly outputBytes?: number;
}

/** What a worker taking a call over finds on the call's tool-call claims. */
export interface PendingToolOutputs {
  /** Outputs stored by a worker that handed the call off, not sent to the model yet. */
  readonly undelivered: readonly {
    readonly fnCallId: string;
    readonly name: string;
    readonly output: string;
  }[];
  /** Claims whose tool has not finished (`at`: epoch ms of the claim). */
  readonly running: readonly {
    readonly fnCallId: string;
    readonly name: string;
    readonly at: number;
  }[];
}

/**
 * The durable once-only claim of a function call: a tool runs once per function call id, even
 * across a reattach or an event OpenAI repeats. The claim item also carries an output a worker
 * could not deliver because it was handing the call off, until the next owner delivers it.
 */
export interface ToolCallClaims {
  /**
   * True if `claimant` (one session) holds the claim of `fnCallId` now: it was free, or this
   * claimant took it before (a retry after a lost answer). False if another claimant holds it. A
   * throw is a transient failure: retry.
   */
  claim(callId: string, fnCallId: string, name: string, claimant: string): Promise<boolean>;
  /** Stores a finished tool's output on its claim, marked undelivered. */
  storeOutput(callId: string, output: StoredToolOutput): Promise<void>;
  /** The call's undelivered outputs and still-running claims. */
  pendingOutputs(callId: string): Promise<PendingToolOutputs>;
  /** Marks a stored output delivered; false if it was not undelivered (someone else sent it). */
  markDelivered(callId: string, fnCallId: string): Promise<boolean>;
}

/**
 * The call a user tool is run for, passed to it beside its arguments (`call` in the payload).
 *
 * **The caller id is not an identity.** `from` is the caller's number as the call arrived: taken
 * from SIP `From`, which the caller chooses freely (`callerSource: 'from'`, `callerVerified:
 * false`), unless the trunk is marked trusted and set `P-Asserted-Identity` to the caller it
 * verified (`callerSource: 'asserted'`, `callerVerified: true`). A tool must never authenticate
 * anyone, unlock an account or disclose personal data on `from` alone: treat an unverified number
 * as a claim (a hint to look something up, to be confirmed by something the caller knows).
 */
export interface ToolContext {
  readonly callId: string;
  /** The function call's id: the same id on a repeated event, so a tool can deduplicate on it. */
  readonly fnCallId: string;
  /** The caller's number (E.164) or SIP user name: a claim unless `callerVerified`. */
  readonly from?: string;
  /** Where `from` came from: `From` (caller-chosen) or a trusted trunk's `P-Asserted-Identity`. */
  readonly callerSource?: CallerSource;
  /** True only when a trusted trunk asserted the caller; false for every caller-chosen `From`. */
  readonly callerVerified: boolean;
  readonly to?: string;
  readonly sessionKey: string;
  /** The keypad keys the caller pressed so far in this call, in order (e.g. `"1234#"`). */
  readonly dtmf?: string;
}

export interface ToolResult {
  /** What goes back to the model as the function_call_output (always a string). */
  readonly output: string;
  readonly error?: string;
}

/** Runs user tools. An error or a timeout is the tool's output: `run` never throws. */
export interface ToolRunner {
  run(name: string, rawArguments: string, context: ToolContext): Promise<ToolResult>;
}
