/**
 * The public entry for code that runs in your handlers and tools (`openai-webhooks-cdk/runtime`).
 * It is kept apart from the main entry (`openai-webhooks-cdk`, the stack and its props) so that a
 * handler or tool bundle that sends a call command does not pull aws-cdk-lib into its Lambda.
 */

/** Steer a live call from your own code (README "Call control": say, update, cancel, hangup, transfer). */
export {
  CallControlClient,
  type CallControlClientOptions,
  type ControlAnswer,
  sendCallCommand,
} from '#adapters/call-control-client';
export type {
  ToolCallContext,
  ToolError,
  ToolHandler,
  ToolInput,
  ToolOutput,
} from '#core/calls/tool-contract';
export type { ConsumedEvent } from '#core/webhooks/process-event';
