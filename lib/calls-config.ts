import { Duration } from 'aws-cdk-lib';
import type { IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { validateCallPolicy } from '#core/calls/call-policy';
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
export const SERVICE_DEFAULTS = {
  minTasks: 1,
  maxTasks: 10,
  cpu: 256,
  memoryMiB: 512,
  cpuTargetPercent: 60,
} as const;

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
   * Average CPU use (%) the service scales out to keep, besides calls per task (10 to 90): tool
   * calls and transcripts cost CPU that a call count does not show. @default 60
   */
  readonly cpuTargetPercent?: number;
  /**
   * An existing VPC. Its private subnets (with egress to api.openai.com:443) are used unless
   * `vpcSubnets` says otherwise. @default a new VPC with public subnets and no NAT gateway
   */
  readonly vpc?: IVpc;
  /** Where in `vpc` the tasks run; needs `vpc`. @default the private subnets of `vpc` */
  readonly vpcSubnets?: SubnetSelection;
}

/** An allow list and a deny list. */
export interface NumberListProps {
  /** Only these (empty: everyone). @default everyone */
  readonly allow?: readonly string[];
  /** Never these; checked before `allow`. @default none */
  readonly deny?: readonly string[];
}

export interface CallsProps {
  /** Session per dialled number (`+18005550100`), and `default` for the rest. */
  readonly sessions: { readonly default: SessionConfig } & Readonly<Record<string, SessionConfig>>;
  /**
   * Callers allowed and refused, as E.164 numbers (`+14155550123`), prefixes (`+1415*`) or SIP
   * user names (`alice`); `deny` wins. The caller is the `From` header, which the caller chooses,
   * unless `trustAssertedIdentity`. @default everyone
   */
  readonly callers?: NumberListProps;
  /** Dialled numbers (the `To` header) allowed and refused, written the same way. @default every number */
  readonly dialled?: NumberListProps;
  /**
   * The country calling code (`'1'`, `'44'`) of numbers your trunk sends without `+`: `'1'` reads
   * `14155550123` and `4155550123` as `+14155550123` (core/calls/sip.ts `normalisedNumber`).
   * @default none: numbers without `+` (other than `00…`) match no pattern
   */
  readonly defaultCountry?: string;
  /**
   * Your SIP trunk sets `P-Asserted-Identity` to the caller it verified: take the caller from it
   * (the call record says `callerVerified: true`). Anyone can send that header, so only for a
   * trunk that replaces it. @default false: the caller is `From`, unverified
   */
  readonly trustAssertedIdentity?: boolean;
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
  /**
   * How long `end_call`, `transfer_call` and the wrap-up wait for the model's last words to finish
   * playing (`output_audio_buffer.stopped`) before `/hangup` or `/refer`. @default Duration.seconds(5)
   */
  readonly goodbyeDrainCap?: Duration;
  /**
   * A call in which the caller has not spoken this long after the sideband attached is hung up as
   * `no_caller_speech` (a ghost call: the caller hung up while it rang). `Duration.seconds(0)`
   * turns it off. @default Duration.seconds(30)
   */
  readonly noSpeechTimeout?: Duration;
  /**
   * Hang up as `no_caller_speech` after this many server idle timeouts in a row with no speech
   * between them (sessions with `server_vad` `idle_timeout_ms`); 0 never does. @default 3
   */
  readonly idleTimeoutsBeforeHangup?: number;
  /** Tool outputs longer than this (UTF-8 bytes) reach the model cut, with a marker. @default 16384 */
  readonly maxToolOutputBytes?: number;
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
  readonly cpuTargetPercent: number;
  readonly vpc: IVpc | undefined;
  readonly vpcSubnets: SubnetSelection | undefined;
}

export function resolveCalls(props: CallsProps): { resolved: ResolvedCalls; problems: string[] } {
  const service = props.service ?? {};
  const config: CallsConfig = {
    policy: {
      ...(props.callers ? { callers: props.callers } : {}),
      ...(props.dialled ? { dialled: props.dialled } : {}),
      ...(props.defaultCountry !== undefined ? { defaultCountry: props.defaultCountry } : {}),
      ...(props.trustAssertedIdentity !== undefined
        ? { trustAssertedIdentity: props.trustAssertedIdentity }
        : {}),
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
    // Set only when given: the runtimes apply CALL_DEFAULTS, and CALLS_CONFIG stays small.
    ...(props.goodbyeDrainCap ? { goodbyeDrainCapMs: props.goodbyeDrainCap.toMilliseconds() } : {}),
    ...(props.noSpeechTimeout ? { noSpeechTimeoutMs: props.noSpeechTimeout.toMilliseconds() } : {}),
    ...(props.idleTimeoutsBeforeHangup !== undefined
      ? { idleTimeoutsBeforeHangup: props.idleTimeoutsBeforeHangup }
      : {}),
    ...(props.maxToolOutputBytes !== undefined
      ? { maxToolOutputBytes: props.maxToolOutputBytes }
      : {}),
    redactTranscripts: props.redactTranscripts ?? false,
    recordTtlSeconds: (
      props.recordRetention ?? Duration.seconds(CALL_DEFAULTS.recordTtlSeconds)
    ).toSeconds(),
  };
  // The old single lists matched the caller or the dialled number alike: never reinterpret them.
  const legacy = ['allow', 'deny'].filter((key) => Object.hasOwn(props, key));
  // Set: validateCallsConfig may one day include validateCallPolicy; a problem is listed once.
  const problems = [
    ...new Set([
      ...legacy.map(
        (key) =>
          `calls.${key} is no longer supported: it matched the caller or the dialled number alike. Use calls.callers.${key} for callers and calls.dialled.${key} for dialled numbers (E.164 patterns, e.g. { callers: { ${key}: ['+1900*'] } }).`,
      ),
      ...validateCallsConfig(config),
      ...validateCallPolicy(config.policy),
    ]),
  ];
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
  const cpuTargetPercent = service.cpuTargetPercent ?? SERVICE_DEFAULTS.cpuTargetPercent;
  if (!(cpuTargetPercent >= 10 && cpuTargetPercent <= 90))
    problems.push('calls.service.cpuTargetPercent must be from 10 to 90.');
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
      cpuTargetPercent,
      vpc: service.vpc,
      vpcSubnets: service.vpcSubnets,
    },
  };
}
