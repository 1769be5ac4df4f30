import { Duration } from 'aws-cdk-lib';
import type { IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { CALL_DEFAULTS, type CallsConfig, validateCallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';

/** A tool the model may call during a phone call, backed by your Lambda function. */
export interface CallToolProps {
  /** The name the model calls it by (letters, digits, `_` and `-`, up to 64; not `end_call` or `transfer_call`). */
  readonly name: string;
  /** What the tool does, for the model. */
  readonly description: string;
  /** JSON Schema (type "object") of the arguments. */
  readonly parameters: Record<string, unknown>;
  /** Invoked with `{ name, arguments, call: { callId, from, to, sessionKey } }`; its JSON result is the tool output. */
  readonly function: IFunction;
  /** How long a call waits for the tool (up to 60 s); a timeout is the tool's output. @default Duration.seconds(5) */
  readonly timeout?: Duration;
}

/** The sideband service's defaults (the `SidebandService` construct's too). */
export const SERVICE_DEFAULTS = { minTasks: 1, maxTasks: 10, cpu: 256, memoryMiB: 512 } as const;

/** Fargate CPU units the service may use. */
export const FARGATE_CPUS = [256, 512, 1024, 2048, 4096] as const;

export interface SidebandServiceOptions {
  /** Tasks kept running. 0 allows scale-to-zero: the first call then waits minutes for a task. @default 1 */
  readonly minTasks?: number;
  /** Tasks at most (at least 1 and at least `minTasks`). @default 10 */
  readonly maxTasks?: number;
  /** Fargate CPU units. @default 256 (0.25 vCPU) */
  readonly cpu?: number;
  /** Memory per task in MiB: at least 512, and a size Fargate offers for `cpu`. @default 512 */
  readonly memoryMiB?: number;
  /**
   * An existing VPC. Its private subnets (with egress to api.openai.com:443) are used unless
   * `vpcSubnets` says otherwise. @default a new VPC with public subnets and no NAT gateway
   */
  readonly vpc?: IVpc;
  /** Where in `vpc` the tasks run; needs `vpc`. @default the private subnets of `vpc` */
  readonly vpcSubnets?: SubnetSelection;
}

export interface CallsProps {
  /** Session per dialled number (`+18005550100`), and `default` for the rest. */
  readonly sessions: { readonly default: SessionConfig } & Readonly<Record<string, SessionConfig>>;
  /** Callers or dialled numbers allowed (`+1415*` for a prefix). @default everyone */
  readonly allow?: readonly string[];
  /** Callers or dialled numbers refused. @default none */
  readonly deny?: readonly string[];
  /** Calls at once across the account; more are refused with 486. @default 100 */
  readonly maxConcurrentCalls?: number;
  /** A call whose webhook is older than this is not accepted (it is a retry of a dead call). @default Duration.seconds(30) */
  readonly maxRingAge?: Duration;
  /** SIP status for calls the allow/deny lists refuse. @default 603 */
  readonly rejectStatus?: number;
  /** Tools the sessions may offer the model, each backed by your Lambda function. @default none */
  readonly tools?: readonly CallToolProps[];
  /** Transfer targets by name, as `sip:` or `tel:` URIs: the only places `transfer_call` can send a caller. @default none */
  readonly transferTargets?: Readonly<Record<string, string>>;
  /** A transfer not confirmed (socket closed) within this counts as failed. @default Duration.seconds(15) */
  readonly transferConfirmTimeout?: Duration;
  /** When to ask the model to wrap up; OpenAI ends sessions at 60 minutes. @default Duration.minutes(55) */
  readonly wrapUpAfter?: Duration;
  /** How long the wrap-up may take before the hang-up. @default Duration.seconds(60) */
  readonly wrapUpGrace?: Duration;
  /** Transfer here at the end of the wrap-up instead of hanging up. @default hang up */
  readonly wrapUpTransferTarget?: string;
  /** Calls one sideband task holds at most. @default 200 */
  readonly maxCallsPerTask?: number;
  /** Mask numbers and e-mails in stored transcripts. @default false */
  readonly redactTranscripts?: boolean;
  /** How long call records and transcripts are kept. @default Duration.days(90) */
  readonly recordRetention?: Duration;
  /** The sideband service: tasks, size and network. @default the defaults of each field */
  readonly service?: SidebandServiceOptions;
}

/** What the calls config may take of the Lambda's 4 KB environment; the rest is the other variables. */
export const MAX_CALLS_CONFIG_BYTES = 3000;

/**
 * The incoming-call Lambda reads the calls config from its environment, which Lambda caps at 4 KB
 * in total: a problem when the config takes more than its share. Tool function ARNs are tokens at
 * synth: each counts at its longest real length.
 */
export function callsConfigSizeProblem(config: CallsConfig): string | undefined {
  const envBytes = Buffer.byteLength(
    JSON.stringify({
      ...config,
      tools: config.tools.map((t) => ({ ...t, functionName: 'x'.repeat(140) })),
    }),
  );
  if (envBytes <= MAX_CALLS_CONFIG_BYTES) return undefined;
  return `calls config is about ${envBytes} bytes; the incoming-call Lambda's environment holds at most ${MAX_CALLS_CONFIG_BYTES} for it (Lambda caps all variables at 4 KB). Shorten the session instructions or use fewer sessions.`;
}

export interface ResolvedCalls {
  /** The runtime config, with each tool's function as a token that resolves to its ARN. */
  readonly config: CallsConfig;
  readonly toolFunctions: readonly IFunction[];
  readonly minTasks: number;
  readonly maxTasks: number;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly vpc: IVpc | undefined;
  readonly vpcSubnets: SubnetSelection | undefined;
}

export function resolveCalls(props: CallsProps): { resolved: ResolvedCalls; problems: string[] } {
  const service = props.service ?? {};
  const config: CallsConfig = {
    policy: {
      allow: props.allow ?? [],
      deny: props.deny ?? [],
      maxConcurrentCalls: props.maxConcurrentCalls ?? CALL_DEFAULTS.maxConcurrentCalls,
      maxRingAgeSeconds: (
        props.maxRingAge ?? Duration.seconds(CALL_DEFAULTS.maxRingAgeSeconds)
      ).toSeconds(),
      rejectStatus: props.rejectStatus ?? CALL_DEFAULTS.rejectStatus,
      sessions: props.sessions,
    },
    tools: (props.tools ?? []).map((tool) => ({
      name: tool.name,
      description: tool.description,
      parameters: tool.parameters,
      functionName: tool.function.functionArn,
      timeoutMs: (tool.timeout ?? Duration.millis(CALL_DEFAULTS.toolTimeoutMs)).toMilliseconds(),
    })),
    transferTargets: props.transferTargets ?? {},
    transferConfirmMs: (
      props.transferConfirmTimeout ?? Duration.millis(CALL_DEFAULTS.transferConfirmMs)
    ).toMilliseconds(),
    wrapUpAfterMs: (
      props.wrapUpAfter ?? Duration.millis(CALL_DEFAULTS.wrapUpAfterMs)
    ).toMilliseconds(),
    wrapUpGraceMs: (
      props.wrapUpGrace ?? Duration.millis(CALL_DEFAULTS.wrapUpGraceMs)
    ).toMilliseconds(),
    ...(props.wrapUpTransferTarget ? { wrapUpTransferTarget: props.wrapUpTransferTarget } : {}),
    maxCallsPerTask: props.maxCallsPerTask ?? CALL_DEFAULTS.maxCallsPerTask,
    redactTranscripts: props.redactTranscripts ?? false,
    recordTtlSeconds: (
      props.recordRetention ?? Duration.seconds(CALL_DEFAULTS.recordTtlSeconds)
    ).toSeconds(),
  };
  const problems = validateCallsConfig(config);
  const tooLarge = callsConfigSizeProblem(config);
  if (tooLarge) problems.push(tooLarge);
  const minTasks = service.minTasks ?? SERVICE_DEFAULTS.minTasks;
  const maxTasks = service.maxTasks ?? SERVICE_DEFAULTS.maxTasks;
  if (!Number.isInteger(minTasks) || minTasks < 0)
    problems.push('calls.service.minTasks must be 0 or more.');
  if (!Number.isInteger(maxTasks) || maxTasks < Math.max(1, minTasks))
    problems.push('calls.service.maxTasks must be at least 1 and at least minTasks.');
  const cpu = service.cpu ?? SERVICE_DEFAULTS.cpu;
  const memoryMiB = service.memoryMiB ?? SERVICE_DEFAULTS.memoryMiB;
  if (!(FARGATE_CPUS as readonly number[]).includes(cpu))
    problems.push('calls.service.cpu must be a Fargate size: 256, 512, 1024, 2048 or 4096.');
  if (!Number.isInteger(memoryMiB) || memoryMiB < 512)
    problems.push('calls.service.memoryMiB must be at least 512.');
  if (service.vpcSubnets && !service.vpc)
    problems.push('calls.service.vpcSubnets needs calls.service.vpc.');
  return {
    problems,
    resolved: {
      config,
      toolFunctions: (props.tools ?? []).map((t) => t.function),
      minTasks,
      maxTasks,
      cpu,
      memoryMiB,
      vpc: service.vpc,
      vpcSubnets: service.vpcSubnets,
    },
  };
}
