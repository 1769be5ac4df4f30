/**
 * The call-control API (issue 16), as pure functions over ports: `POST /calls/{call_id}/commands`
 * (validate, store the command as pending, nudge the worker holding the call) and
 * `GET /calls/{call_id}/commands/{id}` (its status). The Lambda (lambdas/call-control/handler.ts),
 * local mode (local/call-control.ts) and `sendCallCommand` run this same code.
 *
 * Routing: the command is stored first, durably, then the worker holding the call's lease is
 * nudged on its own queue. If no worker holds the call (a hand-off or a sweep under way) nobody is
 * nudged: the worker that claims the call reads its pending commands when it attaches. The store
 * write happens before the lease is read, and a worker claims the call before it reads the
 * commands, so a command is either seen by the attach's read or routed to a worker that holds the
 * lease; the claim of a command (pending → applied) is guarded by the lease's owner and epoch, so
 * it is applied once, by the worker that holds the call.
 */
import { errorMessage, type Logger } from '../observability/logger';
import type { CommandNudge, CommandRouter, CommandStore } from '../ports/call-control';
import type { CallStore } from '../ports/calls';
import {
  type CommandError,
  type CommandErrorCode,
  type CommandLimits,
  type CommandStatus,
  newCommandId,
  parseCommandBody,
  type StoredCommand,
  senderLabel,
  storedCommandOf,
  wireBodyOf,
} from '../sideband/call-commands';
import { isFinal } from './call-state';

export interface CallControlDeps {
  readonly calls: Pick<CallStore, 'get'>;
  readonly commands: CommandStore;
  readonly router: CommandRouter;
  readonly limits: CommandLimits;
  readonly clock: () => number;
  /** A few random characters for command ids. */
  readonly random: () => string;
  /** How long command items are kept (seconds). */
  readonly ttlSeconds: number;
  readonly log: Logger;
}

export interface ControlResponse {
  readonly statusCode: number;
  readonly body: Record<string, unknown>;
}

/** What `GET` answers (and `POST` too, pending). */
export interface CommandView {
  readonly id: string;
  readonly callId: string;
  readonly action: string;
  readonly status: CommandStatus;
  readonly sender: string;
  readonly createdAt: number;
  readonly appliedBy?: string;
  readonly appliedAt?: number;
  readonly error?: CommandError;
}

function failure(statusCode: number, code: CommandErrorCode, message: string): ControlResponse {
  return { statusCode, body: { error: { code, message } } };
}

/** A call id as OpenAI gives them (`rtc_…`), or anything of that shape: never used as a path. */
const CALL_ID = /^[A-Za-z0-9_-]{1,128}$/;
const COMMAND_ID = /^cmd_[0-9a-z]{9}[0-9a-f]{1,32}$/;

export async function submitCommand(
  deps: CallControlDeps,
  request: { readonly callId: string; readonly body: string; readonly sender: string },
): Promise<ControlResponse> {
  const { callId } = request;
  if (!CALL_ID.test(callId)) return failure(404, 'call_not_found', 'No such call.');
  const parsed = parseCommandBody(request.body, deps.limits);
  if (!parsed.ok) return failure(parsed.status, parsed.code, parsed.message);
  const command = parsed.value;
  let record: Awaited<ReturnType<CallStore['get']>>;
  try {
    record = await deps.calls.get(callId);
  } catch (error) {
    deps.log.error('call control: call record unreadable', { error: errorMessage(error) });
    return failure(503, 'store_unavailable', 'The call store is unavailable; try again.');
  }
  if (!record) return failure(404, 'call_not_found', `No call ${callId}.`);
  if (isFinal(record.status))
    return failure(409, 'call_ended', `Call ${callId} has ended (${record.status}).`);
  const { channel } = record;
  if (command.action === 'transfer' && channel !== undefined && channel !== 'sip')
    return failure(409, 'not_sip', 'Only a SIP (phone) call can be transferred.');
  const now = deps.clock();
  const stored: StoredCommand = {
    id: newCommandId(now, deps.random()),
    callId,
    command,
    sender: senderLabel(request.sender),
    createdAt: now,
    status: 'pending',
  };
  try {
    await deps.commands.create(stored, Math.floor(now / 1000) + deps.ttlSeconds);
  } catch (error) {
    deps.log.error('call control: command not stored', { error: errorMessage(error) });
    return failure(503, 'store_unavailable', 'The command could not be stored; try again.');
  }
  const routed = await route(deps, {
    callId,
    commandId: stored.id,
    sentAt: now,
    item: { ...stored, command: wireBodyOf(stored.command) },
  });
  deps.log.info('call command accepted', {
    callId,
    commandId: stored.id,
    action: command.action,
    sender: stored.sender,
    routed,
  });
  return { statusCode: 202, body: { ...viewOf(stored), routed } };
}

/**
 * Nudges the worker holding the call. Never fails the request: the command is stored, and a
 * worker that attaches later reads it. `held`: nudged; `unheld`: nobody holds the call now (a
 * hand-off or a sweep: the next owner reads it on attach); `unrouted`: the nudge failed.
 */
async function route(
  deps: CallControlDeps,
  nudge: CommandNudge,
): Promise<'held' | 'unheld' | 'unrouted'> {
  try {
    const owner = await deps.router.ownerOf(nudge.callId);
    if (!owner?.address) return 'unheld';
    await deps.router.nudge(owner.address, nudge);
    return 'held';
  } catch (error) {
    deps.log.warn('call control: nudge failed', {
      callId: nudge.callId,
      error: errorMessage(error),
    });
    return 'unrouted';
  }
}

export async function commandStatus(
  deps: CallControlDeps,
  request: { readonly callId: string; readonly commandId: string },
): Promise<ControlResponse> {
  const { callId, commandId } = request;
  if (!CALL_ID.test(callId) || !COMMAND_ID.test(commandId))
    return failure(404, 'command_not_found', 'No such command.');
  let item: unknown;
  try {
    item = await deps.commands.get(callId, commandId);
  } catch (error) {
    deps.log.error('call control: command unreadable', { error: errorMessage(error) });
    return failure(503, 'store_unavailable', 'The command store is unavailable; try again.');
  }
  const stored = item === undefined ? undefined : storedCommandOf(item, deps.limits);
  if (!stored) return failure(404, 'command_not_found', `No command ${commandId} for ${callId}.`);
  if (stored.status === 'pending') {
    // A command whose call ended before any worker applied it: failed, and said so once.
    const record = await deps.calls.get(callId).catch(() => undefined);
    if (!record || isFinal(record.status)) {
      const error = {
        code: 'call_ended',
        message: 'The call ended before the command could be applied.',
      } as const;
      const at = deps.clock();
      await deps.commands
        .transition(callId, commandId, 'pending', 'failed', { at, error })
        .catch(() => false);
      return { statusCode: 200, body: { ...viewOf(stored), status: 'failed', error } };
    }
  }
  return { statusCode: 200, body: { ...viewOf(stored) } };
}

function viewOf(stored: StoredCommand): CommandView {
  return {
    id: stored.id,
    callId: stored.callId,
    action: stored.command.action,
    status: stored.status,
    sender: stored.sender,
    createdAt: stored.createdAt,
    ...(stored.appliedBy ? { appliedBy: stored.appliedBy } : {}),
    ...(stored.appliedAt !== undefined ? { appliedAt: stored.appliedAt } : {}),
    ...(stored.error ? { error: stored.error } : {}),
  };
}

/** The validation limits from the calls config: its tools and transfer targets. */
export function commandLimitsOf(config: {
  readonly tools: readonly { readonly name: string }[];
  readonly transferTargets: Readonly<Record<string, string>>;
}): CommandLimits {
  return { toolNames: config.tools.map((t) => t.name), transferTargets: config.transferTargets };
}
