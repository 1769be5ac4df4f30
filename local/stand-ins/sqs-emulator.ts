import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

export interface SqsEmulator {
  readonly endpoint: string;
  stop(): Promise<void>;
}

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/**
 * fauxqs (SQS on the JSON protocol) in a process of its own, as SQS is a service of its own: it
 * does not compete with the pipeline's event loop, so queue latency stays realistic under load.
 */
export async function startSqsEmulator(): Promise<SqsEmulator> {
  const script = [
    "import { startFauxqs } from 'fauxqs';",
    "const server = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false });",
    'console.log(JSON.stringify({ port: server.port }));',
    'const stop = () => server.stop().then(() => process.exit(0));',
    "process.on('SIGTERM', stop); process.on('SIGINT', stop);",
    // Exit with the parent, even if it dies without stopping us.
    "process.stdin.on('end', stop); process.stdin.resume();",
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`SQS emulator exited with ${code}`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
