import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, Token } from 'aws-cdk-lib';
import type { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { CallToolBuilder } from '../config';
import { grantInvokeUnqualified } from './grants';
import type { LoggingProps } from './logging';
import { NodeFunction } from './node-function';
import { LAMBDA_MEMORY, PropsCheck } from './validation';

/** The longest a call waits for a tool (core/calls/calls-config.ts checks `timeoutMs` the same). */
const MAX_TOOL_TIMEOUT = Duration.seconds(60);

export interface CallToolFunctionProps {
  /** The tool's source file (TypeScript or JavaScript), which exports `handler: ToolHandler`. */
  readonly entry: string;
  /** The name the model calls the tool by; it goes into the function's description. */
  readonly toolName: string;
  /**
   * How long a call waits for the tool (1 to 60 s). The function's own timeout is the same,
   * rounded up to whole seconds: nobody waits for an answer after that. @default Duration.seconds(5)
   */
  readonly timeout?: Duration;
  /** Memory in MiB (128 to 10240); CPU grows with it. @default 256 */
  readonly memorySize?: number;
  /** Log group retention and removal policy, `LOG_LEVEL` and tracing. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/**
 * The Lambda function behind a phone-call tool (`CallTool.fromEntry`): the entry bundled by
 * NodeFunction (nodejs22.x, ARM64, a role that may only write its own logs). It is invoked
 * synchronously with the tool input (`ToolInput`, lib/index.ts) by the sideband worker, which
 * needs `grantInvoke`; nothing else may invoke it.
 */
export class CallToolFunction extends Construct {
  readonly fn: LambdaFunction;

  constructor(scope: Construct, id: string, props: CallToolFunctionProps) {
    super(scope, id);
    const check = new PropsCheck('CallToolFunction', id);
    const timeout = props.timeout ?? Duration.seconds(5);
    check
      .that(
        Token.isUnresolved(props.entry) || fs.existsSync(path.resolve(props.entry)),
        'entry',
        `must be an existing file; ${path.resolve(props.entry)} does not exist.`,
      )
      .that(
        /^[A-Za-z0-9_-]{1,64}$/.test(props.toolName),
        'toolName',
        `must be 1 to 64 letters, digits, _ or -; got "${props.toolName}".`,
      )
      .duration('timeout', props.timeout, { min: Duration.seconds(1), max: MAX_TOOL_TIMEOUT })
      .integer('memorySize', props.memorySize, LAMBDA_MEMORY.min, LAMBDA_MEMORY.max);
    check.assert();
    const fn = new NodeFunction(this, 'Tool', {
      entry: path.resolve(props.entry),
      description: `OpenAI webhooks: the ${props.toolName} phone-call tool`,
      memorySize: props.memorySize ?? 256,
      timeout: Duration.seconds(Math.max(1, Math.ceil(timeout.toMilliseconds() / 1000))),
      ...(props.logging ? { logging: props.logging } : {}),
    });
    this.fn = fn.fn;
  }

  /** `lambda:InvokeFunction` on this function's unqualified ARN only (the sideband task role). */
  grantInvoke(grantee: IGrantable): Grant {
    return grantInvokeUnqualified(this.fn, grantee);
  }
}

/**
 * What the stack passes to `resolveConfig`: builds each `CallTool.fromEntry` tool's function in
 * `scope`, once per tool name, as `CallTool-<name>`.
 */
export function callToolBuilder(scope: Construct): CallToolBuilder {
  return (tool, logging) => {
    const id = `CallTool-${tool.name}`;
    const existing = scope.node.tryFindChild(id);
    if (existing instanceof CallToolFunction) return existing.fn;
    return new CallToolFunction(scope, id, {
      entry: tool.entry,
      toolName: tool.name,
      ...(tool.options.timeout ? { timeout: tool.options.timeout } : {}),
      ...(tool.options.memorySize !== undefined ? { memorySize: tool.options.memorySize } : {}),
      logging,
    }).fn;
  };
}
