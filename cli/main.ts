import { createInterface } from 'node:readline/promises';
import { runCli } from './run';

/** The `owh` process: real streams, a prompt on a terminal, and the exit code. */
const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
const code = await runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  interactive,
  progressInPlace: Boolean(process.stderr.isTTY),
  confirm: async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return /^y(es)?$/i.test((await rl.question(question)).trim());
    } finally {
      rl.close();
    }
  },
  env: process.env,
  now: Date.now,
});
process.exitCode = code;
