import { RemovalPolicy, Token } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DEFAULTS } from '../config';
import type { PropsCheck } from './validation';

/** The levels the handlers' and the worker's logger knows (`LOG_LEVEL`). */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * How a construct logs, shared by every construct that runs code: one object the stack builds
 * once and hands to each, instead of four props per construct.
 */
export interface LoggingProps {
  /** How long every log group the construct creates keeps its events. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /**
   * Removal policy of those log groups (`SNAPSHOT` does not apply to log groups).
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** `LOG_LEVEL` of the code the construct runs (Lambda handlers, the sideband worker). @default 'info' */
  readonly logLevel?: LogLevel;
  /** X-Ray active tracing on the construct's Lambda functions (the sideband worker is never traced). @default false */
  readonly tracing?: boolean;
}

/** LoggingProps with every default applied. */
export type ResolvedLogging = Required<LoggingProps>;

export const LOGGING_DEFAULTS: ResolvedLogging = {
  logRetention: DEFAULTS.logRetention,
  logRemovalPolicy: RemovalPolicy.RETAIN,
  logLevel: DEFAULTS.logLevel,
  tracing: false,
};

const RETENTIONS: readonly unknown[] = Object.values(RetentionDays).filter(
  (v) => typeof v === 'number',
);
const LOG_REMOVAL_POLICIES = [
  RemovalPolicy.RETAIN,
  RemovalPolicy.DESTROY,
  RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
] as const;

/** Checks `logging` (as the prop `logging` of the construct `check` is for) and applies the defaults. */
export function resolveLogging(
  logging: LoggingProps | undefined,
  check: PropsCheck,
): ResolvedLogging {
  const resolved: ResolvedLogging = { ...LOGGING_DEFAULTS, ...definedOnly(logging ?? {}) };
  check
    .that(
      Token.isUnresolved(resolved.logRetention) || RETENTIONS.includes(resolved.logRetention),
      'logging.logRetention',
      `must be a RetentionDays value; got ${JSON.stringify(resolved.logRetention)}.`,
    )
    .oneOf('logging.logRemovalPolicy', resolved.logRemovalPolicy, LOG_REMOVAL_POLICIES)
    .oneOf('logging.logLevel', resolved.logLevel, LOG_LEVELS)
    .that(
      Token.isUnresolved(resolved.tracing) || typeof resolved.tracing === 'boolean',
      'logging.tracing',
      `must be true or false; got ${JSON.stringify(resolved.tracing)}.`,
    );
  return resolved;
}

/** `{ a: undefined }` must not hide a default. */
function definedOnly(props: LoggingProps): LoggingProps {
  return Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined));
}
