import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface NodeChild<T> {
  readonly child: ChildProcess;
  /** What `ready` returned for the line that announced the child. */
  readonly ready: T;
  /** Resolves with the exit code once the child has exited. */
  readonly exited: Promise<number | null>;
  /** Sends `signal` (default SIGTERM) unless it already exited; resolves once it has. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface NodeChildOptions<T> {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Node flags before `--import tsx` (a CPU profile, say). */
  readonly nodeArgs?: readonly string[];
  /** `pipe` hands stderr to `onStderr`; `inherit` (the default) prints it. */
  readonly stderr?: 'pipe' | 'inherit';
  /** Every stdout line, the ready line included. */
  readonly onLine?: (line: string) => void;
  readonly onStderr?: (chunk: string) => void;
  /** Returns a value for the line that says the child is ready, undefined for any other. */
  readonly ready: (line: string) => T | undefined;
  /** The error when the child exits before it is ready. */
  readonly exitedEarly: (code: number | null) => Error;
}

/**
 * Loaded into every child first: when the parent dies without stopping it (a crash, SIGKILL),
 * the child is reparented, so its parent pid changes; it then stops itself as on SIGTERM, and
 * exits within 5 s whatever its SIGTERM handler waits for.
 */
const PARENT_WATCH = `data:text/javascript,${encodeURIComponent(`
const parent = process.ppid;
setInterval(() => {
  if (process.ppid === parent) return;
  setTimeout(() => process.exit(1), 5000).unref();
  process.kill(process.pid, 'SIGTERM');
}, 500).unref();
`)}`;

/**
 * Runs a TypeScript entry in a Node process of its own (through tsx), as the stand-ins for
 * separate services need, and resolves once a stdout line says it is ready. The child dies with
 * this process, and logs JSON lines (this process reads them), whatever LOG_FORMAT says.
 */
export async function startNodeChild<T>(
  script: string,
  options: NodeChildOptions<T>,
): Promise<NodeChild<T>> {
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), '--import', PARENT_WATCH, '--import', 'tsx', script],
    {
      ...(options.cwd ? { cwd: options.cwd } : {}),
      env: { ...(options.env ?? process.env), LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', options.stderr ?? 'inherit'],
    },
  );
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const ready = await new Promise<T>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      options.onLine?.(line);
      const value = options.ready(line);
      if (value !== undefined) resolve(value);
    });
    child.stderr?.on('data', (chunk: Buffer) => options.onStderr?.(chunk.toString()));
    child.once('exit', (code) => reject(options.exitedEarly(code)));
  });
  return {
    child,
    ready,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
