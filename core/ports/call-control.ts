import type { CommandError, CommandStatus, StoredCommand } from '../sideband/call-commands';

/**
 * What call control (issue 16) needs from the outside world: the durable command items, and the
 * route to the worker holding a call. The adapters implement them on DynamoDB and SQS
 * (adapters/dynamo-call-commands.ts, adapters/sqs-control-queue.ts).
 */

/** The lease guard of a `pending` transition: only the worker holding the call, under its epoch. */
export interface CommandGuard {
  readonly owner: string;
  readonly epoch: number;
}

export interface CommandTransition {
  /** Required from `pending`: the worker must hold the call's lease under this epoch. */
  readonly guard?: CommandGuard;
  /** The worker acting (kept as `appliedBy`). */
  readonly by?: string;
  readonly at: number;
  readonly error?: CommandError;
  /**
   * The command as the worker got it (from a nudge, without reading the item): the transition
   * happens only if the stored command is this one (its digest), so a nudge cannot make a worker
   * apply anything that was not stored.
   */
  readonly expected?: StoredCommand;
}

/** The commands of each call, durable: written by the API, moved on by the owning worker. */
export interface CommandStore {
  /** Stores a new pending command (its id is fresh: never overwrites). */
  create(command: StoredCommand, expiresAt: number): Promise<void>;
  /** The stored item, unchecked (`storedCommandOf` checks it); undefined if there is none. */
  get(callId: string, id: string): Promise<unknown>;
  /** Every command of the call, oldest first (a consistent read). */
  list(callId: string): Promise<unknown[]>;
  /**
   * Moves a command from `from` to `to` if it is still `from` (and, with a guard, only while the
   * guard's worker holds the call's lease under the guard's epoch). False when a condition failed.
   */
  transition(
    callId: string,
    id: string,
    from: CommandStatus,
    to: CommandStatus,
    options: CommandTransition,
  ): Promise<boolean>;
}

/**
 * A nudge: "a command for this call is pending". It carries the command too, which saves the
 * worker a read; the worker applies it only if the stored item is the same (`expected`).
 */
export interface CommandNudge {
  readonly callId: string;
  readonly commandId: string;
  /** Epoch ms the API sent it (for the latency measurement). */
  readonly sentAt: number;
  /** The stored item's fields (`id`, `callId`, `command` in its API form, `sender`, `createdAt`). */
  readonly item?: Record<string, unknown>;
}

/** Finds the worker holding a call and nudges it. */
export interface CommandRouter {
  /** The control address of the worker holding the call now; undefined if none holds it. */
  ownerOf(
    callId: string,
  ): Promise<{ readonly owner: string; readonly address?: string } | undefined>;
  nudge(address: string, nudge: CommandNudge): Promise<void>;
}
