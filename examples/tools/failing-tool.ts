import type { ToolHandler } from 'openai-webhooks-cdk';

/**
 * A tool that fails, to show what the model is told when a tool throws. The worker catches the
 * failure (Lambda's `FunctionError`): the model gets
 * `{"error":{"code":"tool_failed","message":"The check_warranty tool failed."}}` as the function
 * call's output and can say so, the call goes on, and the thrown message goes to the worker's log
 * (never to the model: it may hold internals). A tool that does not answer within its `timeout`
 * gives `{"error":{"code":"timeout",…}}` the same way.
 *
 * For a failure you expect (a record not found), return `{ error: { code, message } }` yourself
 * (a `ToolError`, see lookup-order.ts): your message then reaches the model.
 */
export const handler: ToolHandler<{ serial_number?: unknown }> = async ({ arguments: args }) => {
  throw new Error(
    `warranty service unreachable (serial ${String(args.serial_number ?? '?').slice(0, 40)})`,
  );
};
