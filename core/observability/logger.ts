import { maskAllNumbers, maskPhoneNumbers } from './mask';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds these fields (correlation ids) to every line. */
  with(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly service: string;
  readonly sink?: (line: string) => void;
  readonly clock?: () => number;
}

/**
 * Structured JSON lines. Every string value passes through the phone-number mask, so a SIP
 * header or a caller number can never reach the logs in clear.
 */
export function createLogger(
  options: LoggerOptions,
  context: Record<string, unknown> = {},
): Logger {
  const minimum = RANK[options.level ?? 'info'];
  const sink = options.sink ?? ((line: string) => process.stdout.write(`${line}\n`));
  const clock = options.clock ?? Date.now;
  const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < minimum) return;
    const record = {
      level,
      time: new Date(clock()).toISOString(),
      service: options.service,
      message,
      ...context,
      ...fields,
    };
    sink(JSON.stringify(record, redact));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (fields) => createLogger(options, { ...context, ...fields }),
  };
}

// Fields that hold a phone number or SIP header value whatever its format.
const PHONE_KEYS =
  /^(from|to|caller|callee|phone|phoneNumber|number|sipHeaders?|sip_headers?|value)$/i;

// Fields that hold a credential. Nothing logs one on purpose; this catches an accident.
const SECRET_KEYS = /^(authorization|api_?key|apiKey|secret|secretString|password|webhookSecret)$/i;

function redact(key: string, value: unknown): unknown {
  if (SECRET_KEYS.test(key) && value !== undefined && value !== null) return '[redacted]';
  if (typeof value === 'string')
    return PHONE_KEYS.test(key) ? maskAllNumbers(value) : maskPhoneNumbers(value);
  if (value instanceof Error) return { name: value.name, message: maskPhoneNumbers(value.message) };
  return value;
}

export function parseLogLevel(value: string | undefined): LogLevel {
  return value === 'debug' || value === 'warn' || value === 'error' ? value : 'info';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
