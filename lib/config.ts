import { Duration, RemovalPolicy, type StackProps, Token } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import { HYDRATABLE_CATEGORIES } from '#core/webhooks/hydration';
import { type CallsProps, type CallTool, type ResolvedCalls, resolveCalls } from './calls-config';
import type { CallControlOptions } from './constructs/call-control-api';
import type { CategoryConsumerOptions } from './constructs/category-fanout';
import type { LoggingProps, LogLevel } from './constructs/logging';
import type { WebRtcSessionOptions } from './constructs/webrtc-session-endpoint';
import { didYouMean, type KnownKeys, unknownKeyProblems } from './props-keys';
import {
  type ResolvedWebhookEndpoint,
  resolveWebhookEndpoint,
  type WebhookEndpointProps,
} from './webhook-endpoint-config';

/**
 * The user's own code for a category, called with each verified, stored event.
 * - `fromEntry`: a TypeScript/JavaScript file bundled into the category's consumer Lambda. It runs
 *   in-process (no extra invoke, no extra cost) and fails the message on a throw.
 * - `fromFunction`: an existing Lambda function, invoked synchronously with the event as JSON. Use it
 *   when the code lives in another repository or runtime. Its error fails the message too.
 * Either way a failure leads to a retry, then the category's DLQ.
 */
export class UserHandler {
  static fromEntry(entry: string, exportName = 'handler'): UserHandler {
    return new UserHandler({ kind: 'entry', entry, exportName });
  }
  static fromFunction(fn: IFunction): UserHandler {
    return new UserHandler({ kind: 'function', fn });
  }
  private constructor(
    readonly source:
      | { readonly kind: 'entry'; readonly entry: string; readonly exportName: string }
      | { readonly kind: 'function'; readonly fn: IFunction },
  ) {}
}

/**
 * Per-category options (batching, concurrency, timeout, memory, retries, hydration, your code):
 * the fan-out's, documented on `CategoryConsumerOptions` in lib/constructs/category-fanout.ts.
 */
export type CategoryOptions = CategoryConsumerOptions;

/** Alarm thresholds. Every alarm notifies the stack's SNS topic (README "Runbook"). */
export interface AlarmThresholds {
  /** 5xx answers from the webhook URL within 5 minutes. @default 5 */
  readonly ingress5xx?: number;
  /** 401s (bad signature, stale timestamp) within 5 minutes: an attack or a botched rotation. @default 20 */
  readonly signatureFailures?: number;
  /** Age of the oldest message in a category queue. @default Duration.minutes(15) */
  readonly oldestMessageAge?: Duration;
  /**
   * Age of the oldest call signal: an accepted caller hears silence until a worker takes it, so
   * this is far tighter than `oldestMessageAge`. @default Duration.minutes(1)
   */
  readonly signalAge?: Duration;
  /**
   * The same alarm when `calls.service.minTasks` is 0: then the first call after a quiet spell
   * waits for a Fargate task to start (image pull and start, typically 1 to 3 minutes), which is
   * not an outage. At least `signalAge`. @default Duration.minutes(5)
   */
  readonly signalAgeScaledToZero?: Duration;
  /** p95 of webhook received → call accepted, over 5 minutes. @default Duration.seconds(2) */
  readonly acceptLatencyP95?: Duration;
  /** Share of `calls.maxConcurrentCalls` in use that alarms. @default 0.8 */
  readonly activeCallsRatio?: number;
  /** Failed transfers (refused or never confirmed) within 15 minutes. @default 3 */
  readonly transferFailures?: number;
}

export interface OpenAiWebhooksConfig {
  /**
   * Secrets Manager secret with the webhook signing secret: `whsec_…`, or during a rotation
   * `{"current":"whsec_new…","previous":"whsec_old…"}`. @default 'openai-webhooks/webhook-secret'
   */
  readonly webhookSecretName?: string;
  /**
   * Secrets Manager secret with the OpenAI API key, for hydration and the calls API. `null`
   * turns every OpenAI API call off. @default 'openai-webhooks/api-key'
   */
  readonly openAiApiKeySecretName?: string | null;
  /** OpenAI API base URL. @default 'https://api.openai.com/v1' */
  readonly openAiBaseUrl?: string;
  /** Replay window for `webhook-timestamp`, both directions. @default Duration.minutes(5) */
  readonly signatureTolerance?: Duration;
  /** Largest accepted body, in bytes (at most 1 MiB, the SQS limit). @default 1048576 */
  readonly maxBodyBytes?: number;
  /** Reserved concurrency for the ingress; caps what a flood can cost. `null`: none. @default 50 */
  readonly ingressReservedConcurrency?: number | null;
  /** Ingress memory in MiB (more memory, more CPU, faster HMAC and TLS). @default 1024 */
  readonly ingressMemorySize?: number;
  /** How long a `webhook-id` is remembered; at least 72 h, OpenAI's retry horizon. @default Duration.days(7) */
  readonly dedupeRetention?: Duration;
  /** How long events are kept in DynamoDB (TTL). @default Duration.days(90) */
  readonly eventRetention?: Duration;
  /** Receives before a message moves to its DLQ. @default 5 */
  readonly maxReceiveCount?: number;
  /** How long DLQ messages are kept (max 14 days). @default Duration.days(14) */
  readonly dlqRetention?: Duration;
  /** Per-category options. @default defaults above for every category */
  readonly categories?: Partial<Record<Category, CategoryOptions>>;
  /** Removal policy for the table. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Log group retention for every function. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** Log level for every function. @default 'info' */
  readonly logLevel?: LogLevel;
  /** E-mail address subscribed to the alarm topic. @default none */
  readonly alarmEmail?: string;
  /** Alarm thresholds. @default the defaults of each field */
  readonly alarms?: AlarmThresholds;
  /** X-Ray active tracing on every Lambda function (not the sideband worker). @default false */
  readonly tracing?: boolean;
  /** Phone calls (`realtime.call.incoming`) and the sideband service. @default off */
  readonly calls?: CallsProps;
  /**
   * Browser voice sessions (WebRTC): an API Gateway endpoint that takes a browser's SDP offer,
   * opens the call at OpenAI with a profile of `calls.sessions` and hands it to the sideband
   * fleet, plus an attach API (lib/constructs/webrtc-session-endpoint.ts). Needs `calls`. `auth`
   * is required: no `webrtc`, no endpoint. @default off
   */
  readonly webrtc?: WebRtcSessionOptions;
  /**
   * Live call control (issue 16): `POST /calls/{call_id}/commands` (say, update, cancel, hangup,
   * transfer) and `GET /calls/{call_id}/commands/{id}`, an HTTP API with IAM auth by default
   * (lib/constructs/call-control-api.ts); `{}` turns it on. Needs `calls`. @default off
   */
  readonly callControl?: CallControlOptions;
  /**
   * Register the webhook URL at OpenAI on deploy, and optionally rotate its signing secret on a
   * schedule: lib/webhook-endpoint-config.ts. @default off: the endpoint is registered by hand
   */
  readonly webhookEndpoint?: WebhookEndpointProps;
}

/**
 * The one list of `OpenAiWebhooksConfig`'s keys (lib/props-keys.ts): a prop added to the
 * interface is added here too, or the typechecker refuses this list.
 */
export const CONFIG_KEYS: KnownKeys<OpenAiWebhooksConfig> = {
  webhookSecretName: true,
  openAiApiKeySecretName: true,
  openAiBaseUrl: true,
  signatureTolerance: true,
  maxBodyBytes: true,
  ingressReservedConcurrency: true,
  ingressMemorySize: true,
  dedupeRetention: true,
  eventRetention: true,
  maxReceiveCount: true,
  dlqRetention: true,
  categories: true,
  removalPolicy: true,
  logRetention: true,
  logLevel: true,
  alarmEmail: true,
  alarms: true,
  tracing: true,
  calls: true,
  webrtc: true,
  callControl: true,
  webhookEndpoint: true,
};

/** The stack's own props (`StackProps`), which travel in the same object as the config. */
export const STACK_PROPS_KEYS: KnownKeys<StackProps> = {
  description: true,
  env: true,
  stackName: true,
  tags: true,
  notificationArns: true,
  synthesizer: true,
  terminationProtection: true,
  analyticsReporting: true,
  crossRegionReferences: true,
  permissionsBoundary: true,
  suppressTemplateIndentation: true,
  propertyInjectors: true,
};

/** The one list of `AlarmThresholds`' keys. */
export const ALARM_KEYS: KnownKeys<AlarmThresholds> = {
  ingress5xx: true,
  signatureFailures: true,
  oldestMessageAge: true,
  signalAge: true,
  signalAgeScaledToZero: true,
  acceptLatencyP95: true,
  activeCallsRatio: true,
  transferFailures: true,
};

/** The one list of a category's option keys (`CategoryConsumerOptions`). */
export const CATEGORY_KEYS: KnownKeys<CategoryOptions> = {
  batchSize: true,
  maxBatchingWindow: true,
  maxConcurrency: true,
  timeout: true,
  memorySize: true,
  maxReceiveCount: true,
  hydrate: true,
  userHandler: true,
};

/** `LOG_LEVEL` values (lib/constructs/logging.ts LOG_LEVELS; not imported: that module imports this one). */
const LOG_LEVEL_NAMES: KnownKeys<Record<LogLevel, unknown>> = {
  debug: true,
  info: true,
  warn: true,
  error: true,
};
const RETENTION_DAYS: readonly unknown[] = Object.values(RetentionDays).filter(
  (v) => typeof v === 'number',
);
const REMOVAL_POLICIES: readonly unknown[] = Object.values(RemovalPolicy);

export interface ResolvedCategory {
  readonly batchSize: number;
  readonly maxBatchingWindow: Duration;
  readonly maxConcurrency: number | undefined;
  readonly timeout: Duration;
  readonly memorySize: number;
  readonly maxReceiveCount: number;
  readonly hydrate: boolean;
  readonly userHandler: UserHandler | undefined;
}

export interface ResolvedConfig {
  readonly webhookSecretName: string;
  readonly openAiApiKeySecretName: string | null;
  readonly openAiBaseUrl: string;
  readonly signatureTolerance: Duration;
  readonly maxBodyBytes: number;
  readonly ingressReservedConcurrency: number | null;
  readonly ingressMemorySize: number;
  readonly ingressTimeout: Duration;
  readonly dedupeRetention: Duration;
  readonly eventRetention: Duration;
  readonly dlqRetention: Duration;
  readonly categories: Readonly<Record<Category, ResolvedCategory>>;
  readonly removalPolicy: RemovalPolicy;
  readonly logRetention: RetentionDays;
  readonly logLevel: LogLevel;
  readonly alarmEmail: string | undefined;
  readonly alarms: Required<AlarmThresholds>;
  readonly tracing: boolean;
  readonly calls: ResolvedCalls | undefined;
  /** The session endpoint's options; the construct validates them against the sessions. */
  readonly webrtc: WebRtcSessionOptions | undefined;
  /** The call-control API's options; the construct validates them. */
  readonly callControl: CallControlOptions | undefined;
  readonly webhookEndpoint: ResolvedWebhookEndpoint | undefined;
}

export const DEFAULTS = {
  webhookSecretName: 'openai-webhooks/webhook-secret',
  openAiApiKeySecretName: 'openai-webhooks/api-key',
  openAiBaseUrl: 'https://api.openai.com/v1',
  signatureTolerance: Duration.minutes(5),
  maxBodyBytes: 1024 * 1024,
  ingressReservedConcurrency: 50,
  ingressMemorySize: 1024,
  // Short: the ack path is two AWS calls; OpenAI gives up after "a few seconds" anyway.
  ingressTimeout: Duration.seconds(10),
  dedupeRetention: Duration.days(7),
  eventRetention: Duration.days(90),
  maxReceiveCount: 5,
  dlqRetention: Duration.days(14),
  batchSize: 10,
  consumerTimeout: Duration.seconds(60),
  // The realtime consumer when it answers calls: see CategoryConsumerOptions.timeout.
  incomingCallTimeout: Duration.seconds(10),
  consumerMemorySize: 512,
  removalPolicy: RemovalPolicy.RETAIN,
  logRetention: RetentionDays.ONE_MONTH,
  logLevel: 'info',
  alarms: {
    ingress5xx: 5,
    signatureFailures: 20,
    oldestMessageAge: Duration.minutes(15),
    signalAge: Duration.minutes(1),
    signalAgeScaledToZero: Duration.minutes(5),
    acceptLatencyP95: Duration.seconds(2),
    activeCallsRatio: 0.8,
    transferFailures: 3,
  },
} as const;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Builds the Lambda function of a `CallTool.fromEntry` tool, logging as the stack's functions do:
 * `callToolBuilder(stack)` (lib/constructs/call-tool-function.ts). A parameter rather than an
 * import: the constructs import this module, and ESM would see the cycle.
 */
export type CallToolBuilder = (tool: CallTool, logging: LoggingProps) => IFunction;

/**
 * Applies the defaults and rejects unknown, contradictory or out-of-range props, at synth time.
 * `buildTool` builds the functions of `CallTool.fromEntry` tools (the stack passes
 * `callToolBuilder(this)`); without it (local mode, unit tests) each such tool gets its local
 * function name instead (`localToolFunctionName`).
 */
export function resolveConfig(
  props: OpenAiWebhooksConfig = {},
  buildTool?: CallToolBuilder,
): ResolvedConfig {
  const errors: string[] = [];
  const check = (ok: boolean, message: string) => {
    if (!ok) errors.push(message);
  };
  // A misspelt prop would otherwise be ignored, and its default applied without a word.
  errors.push(
    ...unknownKeyProblems(props, { ...CONFIG_KEYS, ...STACK_PROPS_KEYS }, ''),
    ...unknownKeyProblems(props.alarms, ALARM_KEYS, 'alarms'),
  );
  // Literal values TypeScript checks only in TypeScript, and only when typed in place.
  const logLevel: LogLevel = props.logLevel ?? DEFAULTS.logLevel;
  check(
    typeof logLevel === 'string' && Object.hasOwn(LOG_LEVEL_NAMES, logLevel),
    `logLevel must be one of ${Object.keys(LOG_LEVEL_NAMES).join(', ')}; got ${JSON.stringify(logLevel)}.`,
  );
  check(
    props.logRetention === undefined ||
      Token.isUnresolved(props.logRetention) ||
      RETENTION_DAYS.includes(props.logRetention),
    `logRetention must be a RetentionDays value (e.g. RetentionDays.ONE_MONTH); got ${JSON.stringify(props.logRetention)}.`,
  );
  check(
    props.removalPolicy === undefined || REMOVAL_POLICIES.includes(props.removalPolicy),
    `removalPolicy must be a RemovalPolicy value (RETAIN, DESTROY, …); got ${JSON.stringify(props.removalPolicy)}.`,
  );
  check(
    props.tracing === undefined || typeof props.tracing === 'boolean',
    `tracing must be true or false; got ${JSON.stringify(props.tracing)}.`,
  );

  const apiKeySecret =
    props.openAiApiKeySecretName === undefined
      ? DEFAULTS.openAiApiKeySecretName
      : props.openAiApiKeySecretName;
  const tolerance = props.signatureTolerance ?? DEFAULTS.signatureTolerance;
  check(
    tolerance.toSeconds() >= 1 && tolerance.toSeconds() <= 3600,
    'signatureTolerance must be between 1 second and 1 hour.',
  );
  const maxBodyBytes = props.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  check(
    Number.isInteger(maxBodyBytes) && maxBodyBytes >= 1024 && maxBodyBytes <= 1024 * 1024,
    'maxBodyBytes must be an integer from 1024 to 1048576 (the SQS message limit).',
  );
  const reserved =
    props.ingressReservedConcurrency === undefined
      ? DEFAULTS.ingressReservedConcurrency
      : props.ingressReservedConcurrency;
  check(
    reserved === null || (Number.isInteger(reserved) && reserved >= 1),
    'ingressReservedConcurrency must be a positive integer, or null for none (0 would throttle every webhook).',
  );
  const ingressMemorySize = props.ingressMemorySize ?? DEFAULTS.ingressMemorySize;
  check(
    validMemory(ingressMemorySize),
    'ingressMemorySize must be an integer from 128 to 10240 MiB.',
  );
  const dedupe = props.dedupeRetention ?? DEFAULTS.dedupeRetention;
  check(
    dedupe.toHours({ integral: false }) >= 72,
    'dedupeRetention must be at least 72 hours: OpenAI retries a delivery for up to 72 hours.',
  );
  const eventRetention = props.eventRetention ?? DEFAULTS.eventRetention;
  check(eventRetention.toDays({ integral: false }) >= 1, 'eventRetention must be at least 1 day.');
  const dlqRetention = props.dlqRetention ?? DEFAULTS.dlqRetention;
  check(
    dlqRetention.toSeconds() >= 60 && dlqRetention.toDays({ integral: false }) <= 14,
    'dlqRetention must be between 1 minute and 14 days (the SQS maximum).',
  );
  const maxReceiveCount = props.maxReceiveCount ?? DEFAULTS.maxReceiveCount;
  check(validReceiveCount(maxReceiveCount), 'maxReceiveCount must be an integer from 1 to 1000.');

  for (const [name, options] of Object.entries(props.categories ?? {})) {
    if (!(CATEGORIES as readonly string[]).includes(name)) {
      const suggestion = didYouMean(name, CATEGORIES);
      errors.push(
        `Unknown category "${name}"${suggestion ? `: did you mean "${suggestion}"?` : '.'} The categories are ${CATEGORIES.join(', ')}.`,
      );
      continue;
    }
    errors.push(...unknownKeyProblems(options, CATEGORY_KEYS, `categories.${name}`));
    check(
      options?.hydrate === undefined || typeof options.hydrate === 'boolean',
      `categories.${name}.hydrate must be true or false; got ${JSON.stringify(options?.hydrate)}.`,
    );
    check(
      options?.userHandler === undefined || options.userHandler instanceof UserHandler,
      `categories.${name}.userHandler must be UserHandler.fromEntry(file) or UserHandler.fromFunction(fn).`,
    );
  }
  const categories = {} as Record<Category, ResolvedCategory>;
  for (const category of CATEGORIES) {
    const options = props.categories?.[category] ?? {};
    const where = `categories.${category}`;
    const batchSize = options.batchSize ?? DEFAULTS.batchSize;
    const window = options.maxBatchingWindow ?? Duration.seconds(0);
    check(
      Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= 10_000,
      `${where}.batchSize must be 1 to 10000.`,
    );
    check(window.toSeconds() <= 300, `${where}.maxBatchingWindow must be at most 5 minutes.`);
    check(
      batchSize <= 10 || window.toSeconds() > 0,
      `${where}.batchSize above 10 needs a maxBatchingWindow.`,
    );
    const answersCalls = category === 'realtime' && props.calls !== undefined;
    const timeout =
      options.timeout ?? (answersCalls ? DEFAULTS.incomingCallTimeout : DEFAULTS.consumerTimeout);
    check(
      timeout.toSeconds() >= 5 && timeout.toSeconds() <= 900,
      `${where}.timeout must be 5 to 900 seconds.`,
    );
    if (answersCalls) {
      // A caller rings for about 30 s: see CategoryConsumerOptions in category-fanout.ts.
      check(
        timeout.toSeconds() <= DEFAULTS.incomingCallTimeout.toSeconds(),
        `${where}.timeout must be at most 10 seconds with calls on: the realtime consumer answers phone calls, and its queue redelivers a failed call after 6× the timeout.`,
      );
      check(
        window.toSeconds() === 0,
        `${where}.maxBatchingWindow must be 0 with calls on: a batching window holds a ringing call back before it is even looked at.`,
      );
    }
    // The queue's visibility timeout is 6x the function timeout and SQS caps it at 12 hours.
    const memorySize = options.memorySize ?? DEFAULTS.consumerMemorySize;
    check(validMemory(memorySize), `${where}.memorySize must be an integer from 128 to 10240 MiB.`);
    const receives = options.maxReceiveCount ?? maxReceiveCount;
    check(
      validReceiveCount(receives),
      `${where}.maxReceiveCount must be an integer from 1 to 1000.`,
    );
    const concurrency = options.maxConcurrency;
    check(
      concurrency === undefined ||
        (Number.isInteger(concurrency) && concurrency >= 2 && concurrency <= 1000),
      `${where}.maxConcurrency must be 2 to 1000.`,
    );
    const hydrateDefault = HYDRATABLE_CATEGORIES.has(category) && apiKeySecret !== null;
    const hydrate = options.hydrate ?? hydrateDefault;
    check(
      !hydrate || HYDRATABLE_CATEGORIES.has(category),
      `${where}.hydrate: the OpenAI API cannot fetch ${category} objects by id alone.`,
    );
    check(
      !hydrate || apiKeySecret !== null,
      `${where}.hydrate needs openAiApiKeySecretName; it is null.`,
    );
    categories[category] = {
      batchSize,
      maxBatchingWindow: window,
      maxConcurrency: concurrency,
      timeout,
      memorySize,
      maxReceiveCount: receives,
      hydrate,
      userHandler: options.userHandler,
    };
  }
  check(props.webhookSecretName !== '', 'webhookSecretName must not be empty.');
  check(
    props.openAiApiKeySecretName !== '',
    'openAiApiKeySecretName must not be empty (use null to disable).',
  );
  const baseUrl = props.openAiBaseUrl ?? DEFAULTS.openAiBaseUrl;
  check(/^https:\/\//.test(baseUrl), 'openAiBaseUrl must be an https:// URL.');

  const alarms: Required<AlarmThresholds> = {
    ...DEFAULTS.alarms,
    ...props.alarms,
    // Never below signalAge unless set: a long signalAge alone must not make it invalid.
    signalAgeScaledToZero:
      props.alarms?.signalAgeScaledToZero ??
      (props.alarms?.signalAge &&
      props.alarms.signalAge.toSeconds() > DEFAULTS.alarms.signalAgeScaledToZero.toSeconds()
        ? props.alarms.signalAge
        : DEFAULTS.alarms.signalAgeScaledToZero),
  };
  for (const name of ['ingress5xx', 'signatureFailures', 'transferFailures'] as const) {
    check(
      Number.isInteger(alarms[name]) && alarms[name] >= 1,
      `alarms.${name} must be a positive integer (a count within the alarm's window).`,
    );
  }
  check(
    alarms.activeCallsRatio > 0 && alarms.activeCallsRatio <= 1,
    'alarms.activeCallsRatio must be above 0 and at most 1.',
  );
  check(
    alarms.oldestMessageAge.toSeconds() >= 60,
    'alarms.oldestMessageAge must be at least 1 minute (SQS reports the age once a minute).',
  );
  check(
    alarms.signalAge.toSeconds() >= 60,
    'alarms.signalAge must be at least 1 minute (SQS reports the age once a minute).',
  );
  check(
    alarms.signalAgeScaledToZero.toSeconds() >= alarms.signalAge.toSeconds(),
    'alarms.signalAgeScaledToZero must be at least alarms.signalAge.',
  );
  check(
    alarms.acceptLatencyP95.toMilliseconds() >= 100,
    'alarms.acceptLatencyP95 must be at least 100 ms.',
  );
  check(
    props.alarmEmail === undefined || /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail),
    'alarmEmail must be an e-mail address.',
  );

  const calls = props.calls
    ? resolveCalls(
        props.calls,
        buildTool ? (tool) => buildTool(tool, loggingOfProps(props, logLevel)) : undefined,
      )
    : undefined;
  if (calls) {
    errors.push(...calls.problems);
    check(
      apiKeySecret !== null,
      'calls needs openAiApiKeySecretName (accept, reject, refer and hangup are API calls); it is null.',
    );
  }

  check(
    props.webrtc === undefined || props.calls !== undefined,
    'webrtc needs calls: browser sessions are served by the sideband fleet, with the sessions of calls.sessions as profiles.',
  );

  check(
    props.callControl === undefined || props.calls !== undefined,
    'callControl needs calls: commands are applied by the sideband worker holding each call.',
  );

  const webhookEndpoint = resolveWebhookEndpoint(props.webhookEndpoint, {
    callsOn: props.calls !== undefined,
    apiKeyOn: apiKeySecret !== null,
  });
  errors.push(...webhookEndpoint.problems);

  if (errors.length > 0) {
    throw new ConfigError(`Invalid OpenAiWebhooks props:\n- ${errors.join('\n- ')}`);
  }
  return {
    webhookSecretName: props.webhookSecretName ?? DEFAULTS.webhookSecretName,
    openAiApiKeySecretName: apiKeySecret,
    openAiBaseUrl: baseUrl,
    signatureTolerance: tolerance,
    maxBodyBytes,
    ingressReservedConcurrency: reserved,
    ingressMemorySize,
    ingressTimeout: DEFAULTS.ingressTimeout,
    dedupeRetention: dedupe,
    eventRetention,
    dlqRetention,
    categories,
    removalPolicy: props.removalPolicy ?? DEFAULTS.removalPolicy,
    logRetention: props.logRetention ?? DEFAULTS.logRetention,
    logLevel,
    alarmEmail: props.alarmEmail,
    alarms,
    tracing: props.tracing ?? false,
    calls: calls?.resolved,
    webrtc: props.webrtc,
    callControl: props.callControl,
    webhookEndpoint: webhookEndpoint.resolved,
  };
}

/** How the stack's functions log, from the props: the stack's rule, for the tool functions too. */
function loggingOfProps(props: OpenAiWebhooksConfig, logLevel: LogLevel): LoggingProps {
  return {
    logRetention: props.logRetention ?? DEFAULTS.logRetention,
    // Logs follow the table: kept unless the user chose to destroy data.
    logRemovalPolicy:
      props.removalPolicy === RemovalPolicy.DESTROY ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    logLevel,
    tracing: props.tracing ?? false,
  };
}

function validMemory(value: number): boolean {
  return Number.isInteger(value) && value >= 128 && value <= 10_240;
}

function validReceiveCount(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 1000;
}
