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

/** `json`: one JSON object per line (CloudWatch, Logs Insights). `pretty`: one line for people. */
export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly service: string;
  readonly sink?: (line: string) => void;
  readonly clock?: () => number;
  /**
   * @default `LOG_FORMAT` when it names a format, else `pretty` when the default sink (stdout) is
   * a terminal and `json` otherwise; always `json` with a `sink` of one's own
   */
  readonly format?: LogFormat;
}

/**
 * `LOG_FORMAT` (`json` or `pretty`) when it names one; otherwise pretty on a terminal, and JSON
 * everywhere else: Lambda, the worker's container, a pipe, a file.
 */
export function logFormat(value: string | undefined, isTerminal: boolean): LogFormat {
  const named = value?.trim().toLowerCase();
  if (named === 'json' || named === 'pretty') return named;
  return isTerminal ? 'pretty' : 'json';
}

/**
 * Structured lines: JSON, or one human-readable line each on a terminal. Either way every line
 * has its time, and every string value passes through the phone-number mask first, so a SIP
 * header or a caller number can never reach the logs in clear.
 */
export function createLogger(
  options: LoggerOptions,
  context: Record<string, unknown> = {},
): Logger {
  const minimum = RANK[options.level ?? 'info'];
  const sink = options.sink ?? ((line: string) => process.stdout.write(`${line}\n`));
  const clock = options.clock ?? Date.now;
  const format =
    options.format ??
    (options.sink ? 'json' : logFormat(process.env.LOG_FORMAT, Boolean(process.stdout.isTTY)));
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
    // Masked and redacted before either format: pretty lines are made from the masked JSON.
    const json = JSON.stringify(record, redact);
    sink(format === 'pretty' ? prettyRecord(JSON.parse(json)) : json);
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

const LEVEL_LABEL: Record<string, string> = {
  debug: 'DEBUG',
  info: 'INFO ',
  warn: 'WARN ',
  error: 'ERROR',
};

/** `12:34:56.789 INFO  ingress  webhook accepted  eventId=evt_1 latencyMs=4` (local time). */
function prettyRecord(record: Record<string, unknown>): string {
  const { level, time, service, message, ...fields } = record;
  const at = new Date(String(time));
  const clock = Number.isNaN(at.getTime())
    ? String(time)
    : `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
  const rest = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${prettyValue(value)}`)
    .join(' ');
  const label = LEVEL_LABEL[String(level)] ?? String(level).toUpperCase();
  return `${clock} ${label} ${String(service)}  ${String(message)}${rest ? `  ${rest}` : ''}`;
}

function prettyValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/**
 * A JSON log line (as a worker process prints it) in the pretty format, masked again on the way,
 * with the time it arrived if it has none;
 * undefined for anything that is not a log line, EMF metric lines included, which stay JSON.
 */
export function prettyLogLine(line: string): string | undefined {
  if (!line.startsWith('{') || line.includes('"_aws"')) return undefined;
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof record !== 'object' || record === null) return undefined;
  const r = record as Record<string, unknown>;
  if (typeof r.level !== 'string' || typeof r.message !== 'string') return undefined;
  // A line without a time (a launcher's lifecycle line) gets the time it arrived.
  const timed = typeof r.time === 'string' ? r : { ...r, time: new Date().toISOString() };
  return prettyRecord(JSON.parse(JSON.stringify(timed, redact)));
}

export function parseLogLevel(value: string | undefined): LogLevel {
  return value === 'debug' || value === 'warn' || value === 'error' ? value : 'info';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
