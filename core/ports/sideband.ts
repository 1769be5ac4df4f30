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

/** The queue of call signals (`incoming`, `handoff`, `sweep`) the workers take calls from. */
export interface SignalQueue {
  /** Long-polls for up to `max` signals; an abort ends the wait. */
  receive(max: number, abort: AbortSignal): Promise<readonly QueuedSignal[]>;
  /** Removes a signal for good; one not acknowledged becomes visible again and is retried. */
  ack(receipt: string): Promise<void>;
}

/**
 * Who holds each call's sideband. Each call's lease names its owner, and each worker renews one
 * worker lease, so renewal costs one write however many calls a worker holds. A worker whose lease
 * expires (it died without SIGTERM) loses its calls to the sweeper of any other worker.
 */
export interface CallLeases {
  /** Registers this worker (or comes back after being declared dead) with a fresh lease. */
  registerWorker(owner: string, now: number, ttlMs: number): Promise<void>;
  /** Renews this worker's lease. False: another worker declared us dead and took our calls. */
  renewWorker(owner: string, now: number, ttlMs: number): Promise<boolean>;
  /** Takes a call's lease if nobody holds it (or we already do). */
  claim(callId: string, owner: string, now: number): Promise<boolean>;
  /** Gives a call's lease back, if we still hold it. */
  release(callId: string, owner: string): Promise<void>;
  /** Drops our worker lease on a clean shutdown, so nobody sweeps a worker that handed off. */
  retire(owner: string): Promise<void>;
  /**
   * Takes over the call leases of every worker whose lease expired, each exactly once across
   * sweepers, and returns those calls to re-signal.
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

/** The call a user tool is run for, passed to it beside its arguments (`call` in the payload). */
export interface ToolContext {
  readonly callId: string;
  /** The function call's id: the same id on a repeated event, so a tool can deduplicate on it. */
  readonly fnCallId: string;
  readonly from?: string;
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
