import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import type { IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { validateCallPolicy } from '#core/calls/call-policy';
import { CALL_DEFAULTS, type CallsConfig, validateCallsConfig } from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import { DEFAULT_PROTECTION_BUDGET, protectionBudgetProblems } from '#core/ports/task-protection';
import { type KnownKeys, unknownKeyProblems } from './props-keys';

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

/** A tool written in this app: `CallTool.fromEntry(file, options)`. */
export interface CallToolOptions {
  /**
   * The name the model calls it by (letters, digits, `_` and `-`, up to 64; not `end_call` or
   * `transfer_call`). @default the file's name without its extension, `-` read as `_`
   * (`lookup-order.ts` → `lookup_order`)
   */
  readonly name?: string;
  /** What the tool does, for the model: when to call it and what it returns. */
  readonly description: string;
  /** JSON Schema (type "object") of the arguments; the model fills them in. */
  readonly parameters: Record<string, unknown>;
  /** How long a call waits for the tool (up to 60 s); a timeout is the tool's output. @default Duration.seconds(5) */
  readonly timeout?: Duration;
  /** The tool function's memory in MiB (128 to 10240). @default 256 */
  readonly memorySize?: number;
}

/**
 * A phone-call tool whose code is a file of this app, which exports `handler` (a `ToolHandler`,
 * lib/index.ts). Deployed, the file is bundled into a Lambda function of its own
 * (`CallToolFunction`) that only the sideband workers may invoke. In local mode (`npm start`) the
 * same file runs behind a local Lambda Invoke endpoint (local/lambda-invoke-server.ts), so the
 * worker reaches it over the same wire protocol.
 */
export class CallTool {
  /**
   * @param entry the tool's file, relative to the project root (where `cdk` and `npm start` run)
   *   or absolute; it exports `handler`
   */
  static fromEntry(entry: string, options: CallToolOptions): CallTool {
    const name =
      options.name ??
      path
        .basename(entry)
        .replace(/\.[cm]?[jt]s$/, '')
        .replace(/-/g, '_');
    return new CallTool(entry, name, options);
  }

  private constructor(
    /** The tool's source file, as given. */
    readonly entry: string,
    /** The name the model calls it by. */
    readonly name: string,
    readonly options: CallToolOptions,
  ) {}
}

/** The one list of `CallToolProps`' keys. */
export const CALL_TOOL_KEYS: KnownKeys<CallToolProps> = {
  name: true,
  description: true,
  parameters: true,
  function: true,
  timeout: true,
};

/** The one list of `CallToolOptions`' keys. */
export const CALL_TOOL_OPTION_KEYS: KnownKeys<CallToolOptions> = {
  name: true,
  description: true,
  parameters: true,
  timeout: true,
  memorySize: true,
};

/**
 * The function name a `CallTool` has when no stack builds it (local mode, `resolveConfig` without
 * a scope): local mode's Lambda Invoke endpoint serves the entry under this name.
 */
export function localToolFunctionName(toolName: string): string {
  return `tool-${toolName}`;
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
  /**
   * How long a task holding calls stays protected from scale-in and deployments at a stretch, and
   * how long it then rests unprotected (a deployment waits for a protected task).
   * @default 60 minutes protected, then 15 minutes' rest
   */
  readonly taskProtection?: TaskProtectionOptions;
}

/**
 * The workers' task scale-in protection budget (core/ports/task-protection.ts `ProtectionBudget`).
 * A worker protects its task while it holds calls; ECS then stops it neither for scale-in nor for
 * a deployment. The budget bounds that, so a busy task cannot hold a deployment back for good.
 */
export interface TaskProtectionOptions {
  /**
   * The longest one protected stretch lasts, in minutes (1 to 2880). Then protection ends even
   * while calls are held, and a waiting deployment may stop the task: its calls are handed off as
   * on any SIGTERM. @default 60
   */
  readonly maxProtectedMinutes?: number;
  /**
   * How long the task then stays unprotected before a new stretch may begin, in minutes (0 to
   * 2880): the window a waiting deployment has to stop it. @default 15
   */
  readonly restMinutes?: number;
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
  /**
   * Tools the sessions may offer the model: `CallTool.fromEntry(file, …)` for your own code (a
   * Lambda function built with the stack), or `{ name, description, parameters, function }` for
   * an existing Lambda function. @default none
   */
  readonly tools?: readonly (CallTool | CallToolProps)[];
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
  /**
   * Mask numbers of 4+ digits (`[number]`) and e-mail addresses (`[email]`) in what the call
   * recorder stores: transcripts, a tool's arguments, output and error (JSON stays JSON), error
   * messages, and the free-text fields of recorded events (`why`, `reason`, `detail`, `error`,
   * `message`). Ids, names, codes and timings are kept. The recorder masks a part before it
   * writes it (core/calls/recorded-parts.ts `redactPart`). The model and
   * your tools still get the real values. Limit: a tool output stored on its claim during a
   * SIGTERM hand-off (`ToolOutputsHandedOver`) keeps that claim's arguments and output as they
   * were: the next worker must deliver the output unchanged. @default false
   */
  readonly redactTranscripts?: boolean;
  /** How long call records and transcripts are kept. @default Duration.days(90) */
  readonly recordRetention?: Duration;
  /** The sideband service: tasks, size and network. @default the defaults of each field */
  readonly service?: SidebandServiceOptions;
}

/** The one list of `CallsProps`' keys (lib/props-keys.ts): add a new prop's key here. */
export const CALLS_KEYS: KnownKeys<CallsProps> = {
  sessions: true,
  callers: true,
  dialled: true,
  defaultCountry: true,
  trustAssertedIdentity: true,
  maxConcurrentCalls: true,
  maxRingAge: true,
  rejectStatus: true,
  tools: true,
  transferTargets: true,
  transferConfirmTimeout: true,
  wrapUpAfter: true,
  wrapUpGrace: true,
  wrapUpTransferTarget: true,
  goodbyeDrainCap: true,
  noSpeechTimeout: true,
  idleTimeoutsBeforeHangup: true,
  maxToolOutputBytes: true,
  maxCallsPerTask: true,
  redactTranscripts: true,
  recordRetention: true,
  service: true,
};

/** The one list of `SidebandServiceOptions`' keys. */
export const SERVICE_OPTION_KEYS: KnownKeys<SidebandServiceOptions> = {
  minTasks: true,
  maxTasks: true,
  cpu: true,
  memoryMiB: true,
  cpuTargetPercent: true,
  vpc: true,
  vpcSubnets: true,
  taskProtection: true,
};

/** The one list of `TaskProtectionOptions`' keys. */
export const TASK_PROTECTION_KEYS: KnownKeys<TaskProtectionOptions> = {
  maxProtectedMinutes: true,
  restMinutes: true,
};

/** The one list of `NumberListProps`' keys. */
export const NUMBER_LIST_KEYS: KnownKeys<NumberListProps> = { allow: true, deny: true };

/** The one list of a session's keys (`SessionConfig`, core/calls/session-config.ts). */
export const SESSION_KEYS: KnownKeys<SessionConfig> = {
  model: true,
  instructions: true,
  voice: true,
  greeting: true,
  transcriptionModel: true,
  language: true,
  tools: true,
  turnDetection: true,
  dtmf: true,
};

/** Every unknown key of the calls props, at each level the props have, with a suggestion. */
function unknownCallsKeys(props: CallsProps): string[] {
  const problems = [
    // The old `allow` and `deny` get a message of their own (resolveCalls).
    ...unknownKeyProblems(props, CALLS_KEYS, 'calls', ['allow', 'deny']),
    ...unknownKeyProblems(props.service, SERVICE_OPTION_KEYS, 'calls.service'),
    ...unknownKeyProblems(
      props.service?.taskProtection,
      TASK_PROTECTION_KEYS,
      'calls.service.taskProtection',
    ),
    ...unknownKeyProblems(props.callers, NUMBER_LIST_KEYS, 'calls.callers'),
    ...unknownKeyProblems(props.dialled, NUMBER_LIST_KEYS, 'calls.dialled'),
  ];
  for (const [key, session] of Object.entries(props.sessions ?? {}))
    problems.push(...unknownKeyProblems(session, SESSION_KEYS, `calls.sessions.${key}`));
  (props.tools ?? []).forEach((tool, i) => {
    problems.push(
      ...(tool instanceof CallTool
        ? unknownKeyProblems(tool.options, CALL_TOOL_OPTION_KEYS, `calls.tools[${i}]`)
        : unknownKeyProblems(tool, CALL_TOOL_KEYS, `calls.tools[${i}]`)),
    );
  });
  return problems;
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
  /**
   * The tools written in this app (`CallTool.fromEntry`), with the function name each has in
   * `config.tools`: local mode serves each entry under that name.
   */
  readonly entryTools: readonly {
    readonly name: string;
    readonly entry: string;
    readonly functionName: string;
  }[];
  readonly minTasks: number;
  readonly maxTasks: number;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly cpuTargetPercent: number;
  readonly vpc: IVpc | undefined;
  readonly vpcSubnets: SubnetSelection | undefined;
  /** As given: the worker's defaults apply to what is not. */
  readonly taskProtection: TaskProtectionOptions | undefined;
}

/**
 * Applies the defaults and lists what is wrong. `buildTool` makes the Lambda function of each
 * `CallTool` (the stack passes one that builds a `CallToolFunction`); without it, a `CallTool`
 * gets its local function name (`localToolFunctionName`) and no function.
 */
export function resolveCalls(
  props: CallsProps,
  buildTool?: (tool: CallTool) => IFunction,
): { resolved: ResolvedCalls; problems: string[] } {
  const service = props.service ?? {};
  const toolProblems: string[] = [];
  const toolFunctions: IFunction[] = [];
  const entryTools: { name: string; entry: string; functionName: string }[] = [];
  const tools = (props.tools ?? []).map((given, i) => {
    if (!(given instanceof CallTool)) {
      toolFunctions.push(given.function);
      return { ...given, functionName: given.function.functionArn };
    }
    if (!fs.existsSync(path.resolve(given.entry)))
      toolProblems.push(
        `calls.tools[${i}] (${given.name}): ${path.resolve(given.entry)} does not exist.`,
      );
    const fn = buildTool?.(given);
    if (fn) toolFunctions.push(fn);
    const functionName = fn ? fn.functionArn : localToolFunctionName(given.name);
    entryTools.push({ name: given.name, entry: given.entry, functionName });
    const { description, parameters, timeout } = given.options;
    return { name: given.name, description, parameters, timeout, functionName };
  });
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
    tools: tools.map((tool) => ({
      name: tool.name,
      description: tool.description,
      parameters: tool.parameters,
      functionName: tool.functionName,
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
      ...unknownCallsKeys(props),
      ...toolProblems,
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
  const protection = service.taskProtection;
  if (protection)
    problems.push(
      ...protectionBudgetProblems({
        maxProtectedMinutes:
          protection.maxProtectedMinutes ?? DEFAULT_PROTECTION_BUDGET.maxProtectedMinutes,
        restMinutes: protection.restMinutes ?? DEFAULT_PROTECTION_BUDGET.restMinutes,
      }).map((problem) => `calls.service.taskProtection.${problem}`),
    );
  return {
    problems,
    resolved: {
      config,
      toolFunctions,
      entryTools,
      minTasks,
      maxTasks,
      cpu,
      memoryMiB,
      cpuTargetPercent,
      vpc: service.vpc,
      vpcSubnets: service.vpcSubnets,
      taskProtection: service.taskProtection,
    },
  };
}
