import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { awsClientConfig } from '#adapters/aws-clients';
import {
  CallControlClient,
  type CallControlClientOptions,
  type ControlAnswer,
} from '#adapters/call-control-client';
import { maskPhoneNumbers } from '#core/observability/mask';
import { COMMAND_ACTIONS } from '#core/sideband/call-commands';
import { failed, parseCommandLine, TARGET_OPTIONS } from './args';
import type { CliIo } from './run';
import { CliError, DEFAULT_STATE_FILE, NOT_RUNNING, processAlive } from './target';
import { stateFileOf } from './webhook-target';

/**
 * `owh calls say|update|cancel|hangup|transfer <call_id> …` (issue 16): steer a live call through
 * the call-control API, deployed (`--stack`: the stack's `CallControlUrl` output, SigV4-signed
 * with your AWS credentials) or local (`--local`: npm start's loopback API, no auth).
 */
export const CONTROL_USAGE = `owh calls <action> <call_id> …: steer a live call

  owh calls say <call_id> <text>          the model says it, in its own voice and context
                  [--role system|user] [--no-respond: add it to the conversation only]
  owh calls update <call_id>              change the session mid-call
                  [--instructions TEXT] [--tools a,b (user tools; the built-ins stay)]
                  [--tool-choice auto|none|required|<tool name>]
  owh calls cancel <call_id>              cancel the response in progress
  owh calls hangup <call_id>              a goodbye plays out, then the call is hung up
                  [--goodbye TEXT]
  owh calls transfer <call_id> <target>   an allowlisted transfer target (SIP calls only)
                  [--announce TEXT]

Options: (--stack NAME [--region R] | --local [--state FILE] | --url URL)
  --yes, -y      do not ask for confirmation (asked on a terminal otherwise)
  --wait         wait until the worker applied, refused or failed the command
  --timeout 10s  how long --wait waits (default 10s)
  --json         machine-readable output

Exit codes: 0 sent (with --wait: applied); 1 failed (API or network error, the call or command
not found, local mode not running, the command failed); 2 bad arguments; 3 refused (a 400/409,
the worker refused it) or declined at the prompt; 4 --wait timed out (still pending).`;

export function isControlAction(word: string | undefined): boolean {
  return word !== undefined && (COMMAND_ACTIONS as readonly string[]).includes(word);
}

const OPTIONS = {
  ...TARGET_OPTIONS,
  url: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  role: { type: 'string' },
  'no-respond': { type: 'boolean' },
  instructions: { type: 'string' },
  tools: { type: 'string' },
  'tool-choice': { type: 'string' },
  goodbye: { type: 'string' },
  announce: { type: 'string' },
} as const;

/** Runs `owh calls <action> …` (argv from `<action>` on); returns the exit code. */
export async function runCallsControl(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await run(argv, io);
  } catch (error) {
    return failed(io, error, true);
  }
}

async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.help) {
    io.out(`${CONTROL_USAGE}\n`);
    return 0;
  }
  const [action, callId, ...rest] = positionals;
  if (!isControlAction(action))
    throw new CliError(`Unknown action "${action}".\n\n${CONTROL_USAGE}`, 2);
  if (!callId) throw new CliError(`calls ${action} needs a call_id.`, 2);
  const body = commandBody(action as string, rest, values);
  const timeoutMs = values.timeout ? durationMs(values.timeout) : 10_000;
  const options = await endpointOf(values, io);
  const client = new CallControlClient(options);

  if (!values.yes) {
    if (!io.interactive)
      throw new CliError(
        'Not on a terminal: pass --yes to send the command without confirmation.',
        2,
      );
    const what = describe(body);
    if (!(await io.confirm(`Send to call ${callId} (${options.url}): ${what}? [y/N] `))) {
      io.err('Not sent.\n');
      return 3;
    }
  }
  const sent = await client.send(callId, body);
  if (!sent.ok) return refusal(io, values.json, sent);
  let answer: ControlAnswer = sent;
  if (values.wait) answer = await client.wait(callId, sent.command.id, timeoutMs);
  if (!answer.ok) return refusal(io, values.json, answer);
  const c = answer.command;
  if (values.json) io.out(`${JSON.stringify(c, null, 2)}\n`);
  else
    io.out(
      `${c.action} ${c.id}: ${c.status}${c.error ? ` (${c.error.code}: ${c.error.message})` : ''}${
        c.appliedBy ? ` by ${c.appliedBy}` : ''
      }${!values.wait && sent.command.routed === 'unheld' ? ' (no worker holds the call right now: the next one applies it on attach)' : ''}\n`,
    );
  if (!values.wait) return 0;
  switch (c.status) {
    case 'applied':
      return 0;
    case 'refused':
      return 3;
    case 'failed':
      return 1;
    default:
      io.err(`owh: still pending after ${timeoutMs} ms.\n`);
      return 4;
  }
}

function parse(argv: readonly string[]) {
  return parseCommandLine(argv, OPTIONS, CONTROL_USAGE);
}

type Values = ReturnType<typeof parse>['values'];

/** The API body from the arguments; the API validates it (the CLI only shapes it). */
function commandBody(action: string, rest: string[], values: Values): Record<string, unknown> {
  const noMore = (args: string[]) => {
    if (args.length > 0) throw new CliError(`Unexpected argument "${args[0]}".`, 2);
  };
  switch (action) {
    case 'say': {
      const [text, ...more] = rest;
      if (!text) throw new CliError('calls say needs the text to say.', 2);
      noMore(more);
      return {
        action,
        text,
        ...(values.role ? { role: values.role } : {}),
        ...(values['no-respond'] ? { respond: false } : {}),
      };
    }
    case 'update': {
      noMore(rest);
      const choice = values['tool-choice'];
      const body = {
        action,
        ...(values.instructions !== undefined ? { instructions: values.instructions } : {}),
        ...(values.tools !== undefined
          ? {
              tools: values.tools
                .split(',')
                .map((t) => t.trim())
                .filter((t) => t !== ''),
            }
          : {}),
        ...(choice !== undefined
          ? {
              tool_choice: ['auto', 'none', 'required'].includes(choice)
                ? choice
                : { type: 'function', name: choice },
            }
          : {}),
      };
      if (Object.keys(body).length === 1)
        throw new CliError('calls update needs --instructions, --tools or --tool-choice.', 2);
      return body;
    }
    case 'cancel':
      noMore(rest);
      return { action };
    case 'hangup':
      noMore(rest);
      return { action, ...(values.goodbye !== undefined ? { goodbye: values.goodbye } : {}) };
    case 'transfer': {
      const [target, ...more] = rest;
      if (!target)
        throw new CliError('calls transfer needs a target (a name from transferTargets).', 2);
      noMore(more);
      return {
        action,
        target,
        ...(values.announce !== undefined ? { announce: values.announce } : {}),
      };
    }
    default:
      throw new CliError(`Unknown action "${action}".`, 2);
  }
}

/** Where the API is: --url, local mode's state file, or the stack's CallControlUrl output. */
async function endpointOf(values: Values, io: CliIo): Promise<CallControlClientOptions> {
  const stack = values.stack ?? (values.local || values.url ? undefined : io.env.OWH_STACK);
  const sender = `owh@${safeUser()}`;
  if (values.url) return { url: values.url, sender };
  if (stack && values.local)
    throw new CliError('Choose one target: --stack NAME or --local, not both.', 2);
  if (values.local) {
    const stateFile = stateFileOf(values.state, io.env) ?? DEFAULT_STATE_FILE;
    let state: { callControlUrl?: unknown; pid?: unknown };
    try {
      state = JSON.parse(readFileSync(stateFile, 'utf8'));
    } catch {
      throw new CliError(`${NOT_RUNNING} (no readable ${stateFile}).`, 1);
    }
    if (typeof state.pid === 'number' && !processAlive(state.pid))
      throw new CliError(`${NOT_RUNNING} (${stateFile} was left by process ${state.pid}).`, 1);
    if (typeof state.callControlUrl !== 'string')
      throw new CliError('local mode runs without phone calls, so without call control.', 1);
    return { url: state.callControlUrl, sender };
  }
  if (!stack)
    throw new CliError(
      'No target: pass --stack NAME (a deployed stack) or --local (npm start), or set OWH_STACK.',
      2,
    );
  const cloudFormation = new CloudFormationClient({
    ...awsClientConfig(),
    ...(values.region ? { region: values.region } : {}),
  });
  try {
    const result = await cloudFormation.send(new DescribeStacksCommand({ StackName: stack }));
    const url = result.Stacks?.[0]?.Outputs?.find(
      (o) => o.OutputKey === 'CallControlUrl',
    )?.OutputValue;
    if (!url)
      throw new CliError(
        `Stack ${stack} has no CallControlUrl output: enable callControl in its config and deploy.`,
        1,
      );
    return { url, ...(values.region ? { region: values.region } : {}) };
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      `Could not describe stack ${stack}: ${error instanceof Error ? error.message : String(error)}`,
      1,
    );
  } finally {
    cloudFormation.destroy();
  }
}

function refusal(io: CliIo, json: boolean | undefined, answer: ControlAnswer): number {
  if (answer.ok) return 0;
  if (json) io.out(`${JSON.stringify({ status: answer.status, error: answer.error }, null, 2)}\n`);
  else io.err(`owh: ${answer.status} ${answer.error.code}: ${answer.error.message}\n`);
  // 400/409/413: refused as sent; 404 and the rest: failed.
  return answer.status === 400 || answer.status === 409 || answer.status === 413 ? 3 : 1;
}

function describe(body: Record<string, unknown>): string {
  const text = (value: unknown) => {
    const s = String(value);
    return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
  };
  switch (body.action) {
    case 'say':
      return `say ${text(body.text)}`;
    case 'transfer':
      // A target name, never a number; masked anyway should one look like one.
      return `transfer to ${maskPhoneNumbers(String(body.target))}`;
    case 'update':
      return `update ${Object.keys(body)
        .filter((k) => k !== 'action')
        .join(', ')}`;
    default:
      return String(body.action);
  }
}

function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m)
    throw new CliError(`--timeout must be a duration such as 10s or 500ms; got "${text}".`, 2);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

function safeUser(): string {
  try {
    return (
      userInfo()
        .username.replace(/[^\w.-]/g, '')
        .slice(0, 64) || 'unknown'
    );
  } catch {
    return 'unknown';
  }
}
