import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/**
 * Local mode's folder (`.local/`, or `OWH_LOCAL_DIR`): the lock that keeps one `npm start` per
 * folder, and `state.json`, which tells `npm run send` and `owh --local` where the pipeline is.
 */

const ROOT = path.resolve(import.meta.dirname, '..');

/** What `npm run send` and `owh --local` say when `npm start` is not running (exit code 1). */
export const NOT_RUNNING = 'local mode is not running: start it with `npm start`';

export function localDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.OWH_LOCAL_DIR || path.join(ROOT, '.local'));
}

/** Whether a process with this pid exists (EPERM: it does, but is someone else's). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type LockResult =
  | { readonly ok: true; readonly release: () => void }
  | { readonly ok: false; readonly pid: number };

/**
 * Takes `<dir>/lock` for this process: created exclusively, holding our pid. A lock whose pid is
 * not alive (the holder crashed or was killed with SIGKILL) is stale and taken over.
 */
export function acquireLock(dir: string): LockResult {
  const file = path.join(dir, 'lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        ok: true,
        release: () => {
          // Only our own lock: never one a later instance took over.
          if (readPid(file) === process.pid) unlinkQuietly(file);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readPid(file);
    // A lock being written this instant has no pid yet: give its writer a moment.
    if (holder === undefined && attempt === 0) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      continue;
    }
    if (holder !== undefined && processAlive(holder)) return { ok: false, pid: holder };
    unlinkQuietly(file);
  }
  throw new Error(`Could not take ${file}: remove it if no npm start is running.`);
}

export type StateRead<T> =
  | { readonly status: 'running'; readonly state: T }
  | { readonly status: 'absent'; readonly file: string }
  | { readonly status: 'stale'; readonly file: string; readonly pid: number };

/** `state.json`: absent, stale (its pid has exited), or the running pipeline's. */
export function readState<T extends { pid?: unknown }>(file: string): StateRead<T> {
  let state: T;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return { status: 'absent', file };
  }
  if (typeof state.pid === 'number' && !processAlive(state.pid))
    return { status: 'stale', file, pid: state.pid };
  return { status: 'running', state };
}

/** The message for a state that is not running, with what was found. */
export function notRunningMessage(read: Exclude<StateRead<unknown>, { status: 'running' }>) {
  return read.status === 'stale'
    ? `${NOT_RUNNING} (${read.file} was left by process ${read.pid}, which has exited).`
    : `${NOT_RUNNING} (no readable ${read.file}).`;
}

/** Written whole or not at all: readers never see half a file. */
export function writeState(file: string, state: unknown): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(temporary, file);
}

/** Removes `state.json` if it is still ours. */
export function removeState(file: string): void {
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown };
    if (state.pid === process.pid) unlinkQuietly(file);
  } catch {
    // Already gone, or not ours to remove.
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Gone already.
  }
}
