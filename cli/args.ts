import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import type { CliIo } from './run';
import { CliError, type TargetOptions } from './target';
import { stateFileOf } from './webhook-target';

/**
 * What the `owh` commands that work on a stack or local mode share: the options that pick the
 * target and the output, argument parsing, the usage text, printing and the exit code of a failure.
 */

/** The options of every command that reads a stack or local mode (spread into its own). */
export const TARGET_OPTIONS = {
  stack: { type: 'string' },
  region: { type: 'string' },
  local: { type: 'boolean' },
  state: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Strict: an unknown option, or a value missing, is a CliError (exit 2) followed by the usage. */
export function parseCommandLine<const O extends ParseArgsOptionsConfig>(
  argv: readonly string[],
  options: O,
  usage: string,
) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true as const });
  } catch (error) {
    throw usageError(error instanceof Error ? error.message : String(error), usage);
  }
}

/** A bad argument: the message, then the usage, exit 2. */
export function usageError(message: string, usage: string): CliError {
  return new CliError(`${message}\n\n${usage}`, 2);
}

/** `--help` prints the usage on stdout (exit 0); without a command it goes to stderr (exit 2). */
export function printUsage(io: CliIo, usage: string, asked: boolean | undefined): number {
  (asked ? io.out : io.err)(`${usage}\n`);
  return asked ? 0 : 2;
}

/** `--json`: the value as indented JSON; otherwise the human text. Exit 0. */
export function print(
  io: CliIo,
  values: { readonly json?: boolean | undefined },
  json: unknown,
  human: () => string,
): number {
  io.out(values.json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
  return 0;
}

/**
 * The exit code of a command that threw: a CliError's own, after its message; 1 for anything
 * else, after its message (`withName`: prefixed by the error's name, as `owh events …` does).
 */
export function failed(io: CliIo, error: unknown, withName = false): number {
  if (error instanceof CliError) {
    io.err(`owh: ${error.message}\n`);
    return error.exitCode;
  }
  const text =
    error instanceof Error
      ? withName
        ? `${error.name}: ${error.message}`
        : error.message
      : String(error);
  io.err(`owh: ${text}\n`);
  return 1;
}

/**
 * The target the options name: `--stack` (or OWH_STACK unless `--local`), `--region`, `--local`
 * with `--state` (or $OWH_LOCAL_DIR/state.json, else cli/target.ts's default).
 */
export function targetOptionsOf(
  values: {
    readonly stack?: string | undefined;
    readonly region?: string | undefined;
    readonly local?: boolean | undefined;
    readonly state?: string | undefined;
  },
  env: NodeJS.ProcessEnv,
): TargetOptions {
  return {
    stack: values.stack ?? (values.local ? undefined : env.OWH_STACK),
    region: values.region,
    local: values.local,
    state: stateFileOf(values.state, env),
  };
}

/** `a, b,,c` → `['a', 'b', 'c']`. */
export function commaList(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}
