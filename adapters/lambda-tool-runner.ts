import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { UserToolConfig } from '#core/calls/calls-config';
import type { ToolInput } from '#core/calls/tool-contract';
import type { ToolContext, ToolResult, ToolRunner } from '#core/ports/sideband';

/**
 * Runs user tools: each is a Lambda invoked with a `ToolInput` (`{ name, arguments, call }`,
 * core/calls/tool-contract.ts, the contract exported to users from lib/index.ts) under its own
 * timeout; what it returns (JSON) is the `ToolOutput`, passed to the model as it is. The Lambda
 * client's endpoint is the SDK's, overridable per service (`AWS_ENDPOINT_URL_LAMBDA`): local mode
 * points it at its Lambda Invoke server (local/lambda-invoke-server.ts).
 * `call` is the `ToolContext`: the call id, the function call id `fnCallId` (the same on a repeated
 * event or a retry: deduplicate on it), caller and dialled number, whether the caller's number was
 * verified (`callerSource`, `callerVerified`: a caller-chosen `From` is a claim, never proof of
 * identity), the session key, and the keypad keys pressed so far (`dtmf`). An error or a timeout becomes the tool's output, so the model can
 * say so, and never crashes the call.
 */
export class LambdaToolRunner implements ToolRunner {
  private readonly tools: Map<string, UserToolConfig>;

  constructor(
    private readonly lambda: LambdaClient,
    tools: readonly UserToolConfig[],
  ) {
    this.tools = new Map(tools.map((t) => [t.name, t]));
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  async run(name: string, rawArguments: string, context: ToolContext): Promise<ToolResult> {
    const tool = this.tools.get(name);
    if (!tool) return failure('unknown_tool', `There is no tool named ${name}.`);
    let args: unknown;
    try {
      args = rawArguments ? JSON.parse(rawArguments) : {};
    } catch {
      return failure('invalid_arguments', 'The arguments were not valid JSON.');
    }
    try {
      const result = await this.lambda.send(
        new InvokeCommand({
          FunctionName: tool.functionName,
          InvocationType: 'RequestResponse',
          Payload: new TextEncoder().encode(
            JSON.stringify({ name, arguments: args, call: context } satisfies ToolInput<unknown>),
          ),
        }),
        { abortSignal: AbortSignal.timeout(tool.timeoutMs) },
      );
      const payload = result.Payload ? new TextDecoder().decode(result.Payload) : '';
      if (result.FunctionError)
        return failure('tool_failed', `The ${name} tool failed.`, payload.slice(0, 300));
      return { output: payload.length > 0 ? payload : '{}' };
    } catch (error) {
      const timedOut =
        error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      return timedOut
        ? failure('timeout', `The ${name} tool did not answer within ${tool.timeoutMs} ms.`)
        : failure(
            'tool_unavailable',
            `The ${name} tool could not be reached.`,
            error instanceof Error ? error.message : String(error),
          );
    }
  }
}

function failure(code: string, message: string, detail?: string): ToolResult {
  return {
    output: JSON.stringify({ error: { code, message } }),
    error: detail ? `${code}: ${detail}` : code,
  };
}
