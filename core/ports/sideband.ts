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
    }
  | {
      readonly kind: 'tool';
      readonly fnCallId: string;
      readonly name: string;
      readonly arguments: string;
      readonly output: string;
      readonly latencyMs: number;
      readonly status: 'done' | 'failed';
      readonly error?: string;
    }
  | { readonly kind: 'usage'; readonly responseId: string; readonly usage: unknown }
  | { readonly kind: 'error'; readonly code: string; readonly message: string }
  | { readonly kind: 'event'; readonly name: string; readonly detail?: Record<string, unknown> };

/** A response's token usage, as `response.done` carries it. */
export interface ResponseUsage {
  readonly total_tokens?: number;
  readonly input_tokens?: number;
  readonly output_tokens?: number;
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

/**
 * The durable once-only claim of a function call: a tool runs once per function call id, even
 * across a reattach or an event OpenAI repeats.
 */
export interface ToolCallClaims {
  /** True if this is the first claim of `fnCallId` in this call; false if it was claimed before. */
  claim(callId: string, fnCallId: string, name: string): Promise<boolean>;
}

/** The call a user tool is run for, passed to it beside its arguments. */
export interface ToolContext {
  readonly callId: string;
  readonly from?: string;
  readonly to?: string;
  readonly sessionKey: string;
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
