import type { ToolContext } from '#core/ports/sideband';

/**
 * The contract between the sideband worker and a phone-call tool (your Lambda function, or your
 * `CallTool.fromEntry` file). The worker invokes the function synchronously (Lambda `Invoke`,
 * `RequestResponse`) with a `ToolInput` as the JSON payload, and hands what it returns to the
 * model as the `function_call_output` item's `output` (adapters/lambda-tool-runner.ts).
 */

/**
 * What a tool receives.
 * @typeParam A the arguments, as your `parameters` JSON Schema describes them
 */
export interface ToolInput<A = Record<string, unknown>> {
  /** The tool's name, as the model called it (`lookup_order`). */
  readonly name: string;
  /**
   * The arguments the model produced, parsed from its JSON. The model fills them in from the
   * conversation, and nothing checks them against your `parameters` schema: validate them as
   * you would any outside input.
   */
  readonly arguments: A;
  /**
   * The call the tool runs in. `call.fnCallId` is the model's function call id, the same on a
   * repeated event or a retry: deduplicate side effects on it. `call.from` is the caller's number
   * as the caller's phone or trunk claims it: unverified (`callerVerified: false`) unless a
   * trusted trunk asserted it (`calls.trustAssertedIdentity`). Never treat it as proof of who is
   * calling.
   */
  readonly call: ToolCallContext;
}

/**
 * The call a tool runs in: call id, function call id (`fnCallId`), caller (`from`, with
 * `callerVerified` and `callerSource`), dialled number (`to`), session key and the keypad keys
 * pressed so far (`dtmf`). The same type the worker passes (core/ports/sideband.ts `ToolContext`).
 */
export type ToolCallContext = ToolContext;

/**
 * What a tool returns: any JSON-serializable value. It is serialized with `JSON.stringify` (as
 * Lambda does) and given to the model as the function call's output, cut to
 * `calls.maxToolOutputBytes` (16 KiB by default) with a marker. An object reads best; to tell the
 * model something went wrong in a way it can explain to the caller, return a `ToolError`.
 */
export type ToolOutput = object | string | number | boolean | null;

/**
 * The output shape for a failure, the one the worker itself uses: a throw becomes
 * `{ error: { code: 'tool_failed', message: 'The <name> tool failed.' } }` (the thrown message
 * goes to the worker's log, not to the model), a timeout `{ error: { code: 'timeout', … } }`, an
 * unreachable function `tool_unavailable`, arguments that are not JSON `invalid_arguments`.
 */
export interface ToolError {
  readonly error: {
    /** A short machine-readable code (`not_found`, `tool_failed`, `timeout`, …). */
    readonly code: string;
    /** What happened, in words the model can pass on to the caller. */
    readonly message: string;
  };
}

/**
 * A tool's code: the `handler` export of a `CallTool.fromEntry` file (or of your own Lambda
 * function). Called once per function call the model makes; the call waits for it up to the
 * tool's `timeout`. Make it idempotent on `input.call.fnCallId`.
 * @typeParam A the arguments, as your `parameters` JSON Schema describes them
 */
export type ToolHandler<A = Record<string, unknown>> = (input: ToolInput<A>) => Promise<ToolOutput>;
