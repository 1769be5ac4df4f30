import { createServer, type IncomingMessage, type Server } from 'node:http';
import { callControlDepsFromEnv } from '#adapters/runtime/call-control-from-env';
import {
  type CallControlDeps,
  type ControlResponse,
  commandStatus,
  submitCommand,
} from '#core/calls/call-control';
import { MAX_COMMAND_BODY_BYTES } from '#core/sideband/call-commands';

/**
 * Local mode's call-control API (issue 16): the same routes and code as the deployed Lambda
 * (core/calls/call-control.ts), with no authentication, on loopback only. The sender recorded on
 * the timeline is `local`, or what the `x-owh-sender` header says (the CLI sends `owh@<user>`):
 * with no auth it is a label, not an identity.
 */
export interface LocalCallControl {
  readonly url: string;
  readonly deps: CallControlDeps;
  stop(): Promise<void>;
}

const COMMANDS = /^\/calls\/([^/]+)\/commands\/?$/;
const COMMAND = /^\/calls\/([^/]+)\/commands\/([^/]+)$/;

export async function startCallControl(
  env: NodeJS.ProcessEnv,
  options: { readonly port?: number; readonly deps?: CallControlDeps } = {},
): Promise<LocalCallControl> {
  const deps = options.deps ?? callControlDepsFromEnv(env);
  const server: Server = createServer((req, res) => {
    void answer(deps, req).then(
      (response) =>
        res
          .writeHead(response.statusCode, { 'content-type': 'application/json' })
          .end(JSON.stringify(response.body)),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Loopback only: local mode has no auth.
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    deps,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function answer(deps: CallControlDeps, req: IncomingMessage): Promise<ControlResponse> {
  const path = decodeURIComponentSafe(new URL(req.url ?? '/', 'http://local').pathname);
  const many = path === undefined ? null : COMMANDS.exec(path);
  const one = path === undefined ? null : COMMAND.exec(path);
  if (req.method === 'POST' && many) {
    const body = await readBody(req, MAX_COMMAND_BODY_BYTES + 1);
    const header = req.headers['x-owh-sender'];
    const sender = typeof header === 'string' && header.trim() !== '' ? header : 'local';
    return submitCommand(deps, { callId: many[1] ?? '', body, sender });
  }
  if (req.method === 'GET' && one)
    return commandStatus(deps, { callId: one[1] ?? '', commandId: one[2] ?? '' });
  if (many || one)
    return {
      statusCode: 405,
      body: { error: { code: 'method_not_allowed', message: 'POST commands, GET a command.' } },
    };
  return { statusCode: 404, body: { error: { code: 'not_found', message: 'No such route.' } } };
}

/** Reads at most `limit` bytes (a larger body is cut there, and refused as too large). */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size >= limit) return;
      size += chunk.length;
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function decodeURIComponentSafe(path: string): string | undefined {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

/**
 * The command side of `npm run send -- call --scenario control`: once the call is live, sends
 * `say`, `update`, `cancel`, `transfer` and `hangup` through the call-control API, each after the
 * one before settled, and prints what each became. The simulator's `control` scenario plays
 * OpenAI's side (local/stand-ins/realtime-scenarios.ts).
 */
export async function playControlCommands(
  apiUrl: string,
  callId: string,
  isLive: () => Promise<boolean>,
  out: (line: string) => void,
  /**
   * Resolves once the call shows this cue (the simulator's scenario notes it): the operator's
   * eyes. The cancel waits for `long_answer`, so it stops the long answer and not the say's
   * answer still playing on a slow machine.
   */
  cue: (kind: string) => Promise<boolean> = async () => true,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await isLive())) {
    if (Date.now() > deadline) {
      out('   ⚠ the call never became active: no commands sent');
      return;
    }
    await pause(100);
  }
  const commands: {
    body: Record<string, unknown>;
    retryWhile?: string;
    overlap?: true;
    after?: string;
  }[] = [
    { body: { action: 'say', text: 'Tell the caller their refund of $42 went through today.' } },
    {
      body: {
        action: 'update',
        instructions: 'You are the phone assistant of Example Co. Answer in one short sentence.',
      },
    },
    // Once the long answer the scenario starts after the update plays (and sent again while
    // refused as nothing plays, should the cue come early).
    { body: { action: 'cancel' }, retryWhile: 'no_active_response', after: 'long_answer' },
    // The hang-up follows the transfer at once, not once it settled: a transfer with nothing left
    // to play is over in a few round trips. Applied in the order sent, it meets the transfer under
    // way and is refused, however fast or slow the machine is.
    {
      body: { action: 'transfer', target: 'support', announce: 'Transferring you now.' },
      overlap: true,
    },
    { body: { action: 'hangup' } },
  ];
  const post = async (body: Record<string, unknown>) => {
    const sentAt = Date.now();
    const posted = await fetch(`${apiUrl}/calls/${encodeURIComponent(callId)}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-owh-sender': 'npm run send' },
      body: JSON.stringify(body),
    });
    const answer = (await posted.json()) as {
      id?: string;
      error?: { code: string; message: string };
    };
    if (!posted.ok || !answer.id) {
      out(`⇢  ${body.action}: ${posted.status} ${answer.error?.code}: ${answer.error?.message}`);
      return undefined;
    }
    return { body, sentAt, status: posted.status, id: answer.id };
  };
  const settle = async (sent: NonNullable<Awaited<ReturnType<typeof post>>>) => {
    const result = await waitSettled(apiUrl, callId, sent.id, 10_000);
    out(
      `⇢  ${sent.body.action}: ${sent.status} ${sent.id} → ${result.status}${result.error ? ` (${result.error.code})` : ''} in ${Date.now() - sent.sentAt} ms`,
    );
    return result;
  };
  // Sent, not yet settled (an overlapping command waits for the one after it to be sent).
  const unsettled: NonNullable<Awaited<ReturnType<typeof post>>>[] = [];
  for (const { body, retryWhile, overlap, after } of commands) {
    if (after && !(await cue(after))) out(`   ⚠ no ${after} cue from the call: sent anyway`);
    // A refused cancel is sent again until the scenario's long answer plays: for up to 15 s, as
    // the scenario may first wait out its own worker wait (a say that crossed the caller's turn).
    const retryUntil = Date.now() + 15_000;
    for (;;) {
      const sent = await post(body);
      if (!sent) break;
      unsettled.push(sent);
      if (overlap) break;
      let last: Awaited<ReturnType<typeof settle>> | undefined;
      for (const each of unsettled.splice(0)) last = await settle(each);
      if (retryWhile && last?.error?.code === retryWhile && Date.now() < retryUntil) {
        await pause(100);
        continue;
      }
      break;
    }
  }
  for (const each of unsettled.splice(0)) await settle(each);
}

async function waitSettled(
  apiUrl: string,
  callId: string,
  id: string,
  timeoutMs: number,
): Promise<{ status: string; error?: { code: string } }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${apiUrl}/calls/${encodeURIComponent(callId)}/commands/${id}`);
    const view = (await response.json()) as { status: string; error?: { code: string } };
    if (view.status !== 'pending' || Date.now() > deadline) return view;
    await pause(50);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
