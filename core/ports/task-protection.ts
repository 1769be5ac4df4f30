/**
 * Scale-in protection of the task this process runs in: while protected, neither service auto
 * scaling nor a deployment stops the task, so the calls it holds are not cut off. Protection
 * expires by itself (1 minute to 48 hours after it was last set), so a process that dies or hangs
 * never pins a task for long. Amazon ECS task scale-in protection:
 * https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html
 */
export interface TaskProtection {
  /** Protects the task for `expiresInMinutes` (an integer from 1 to 2880), counted from now. */
  protect(expiresInMinutes: number): Promise<TaskProtectionState>;
  /** Lets scale-in and deployments stop the task again. */
  unprotect(): Promise<TaskProtectionState>;
  /** The task's protection as ECS has it. */
  state(): Promise<TaskProtectionState>;
}

export interface TaskProtectionState {
  readonly protectionEnabled: boolean;
  /** ISO 8601, while protected. */
  readonly expirationDate?: string;
  readonly taskArn?: string;
  /**
   * Set when protection was asked for but the task's budget was spent (`ProtectionBudget`): the
   * task was left unprotected, and stays so until this time (ISO 8601).
   */
  readonly heldBackUntil?: string;
}

/** The most a protection may last, in minutes (48 hours). */
export const MAX_PROTECTION_MINUTES = 2880;

/**
 * How long a task may stay protected, so that protection cannot hold up a deployment for good.
 * A deployment does not stop a protected task until its protection is removed or expires ("Protect
 * your Amazon ECS tasks from being terminated by scale-in events": protection guards a task from
 * scale-in by service auto scaling *and* by deployments; `ExpiresInMinutes` is 1 to 2880, and each
 * call resets it, so a task that keeps renewing stays protected as long as it likes). A worker that
 * always holds some call would renew for ever; this budget bounds it. (A task cannot tell from its
 * own metadata that a deployment is waiting for it: the task metadata endpoint v4 gives the task's
 * own `Family`, `Revision` and `DesiredStatus`, not the service's current task definition. So the
 * bound is on time, not on deployments.)
 */
export interface ProtectionBudget {
  /**
   * The longest one protected stretch lasts, in minutes (1 to 2880). Grants are cut so that
   * protection ends then even while calls are still held: the task may then be stopped, and its
   * calls are handed off on SIGTERM as in any deploy.
   */
  readonly maxProtectedMinutes: number;
  /**
   * How long the task stays unprotected before a new stretch may begin, in minutes (0 to 2880).
   * A stretch that ends early (no call held) only ends for good once the task has stayed
   * unprotected this long, so short idle gaps do not reset the budget. This is also the window a
   * waiting deployment has to stop the task after a capped stretch.
   */
  readonly restMinutes: number;
}

/** The budget when nothing is configured: one hour protected at most, then 15 minutes' rest. */
export const DEFAULT_PROTECTION_BUDGET: ProtectionBudget = {
  maxProtectedMinutes: 60,
  restMinutes: 15,
};

/** Where a task stands in its budget (epoch ms; the policy below is the only writer). */
export interface ProtectionStretch {
  /** When the current protected stretch began; undefined when no stretch is open. */
  readonly since?: number;
  /** When the protection last granted ends (or ended: an unprotect, a cap). */
  readonly until?: number;
}

export type ProtectionDecision =
  /** Protect for `minutes` (at most what was asked, cut to what the stretch has left). */
  | { readonly action: 'protect'; readonly minutes: number; readonly stretch: ProtectionStretch }
  /** The stretch has used its budget: unprotect, and stay unprotected until `restUntil`. */
  | {
      readonly action: 'unprotect';
      readonly restUntil: number;
      readonly stretch: ProtectionStretch;
    };

const MINUTE_MS = 60_000;

/**
 * What to do when the worker asks for `requestedMinutes` of protection at `now`. Pure.
 * - No open stretch, or the last protection ended at least `restMinutes` ago: a stretch begins now.
 * - Otherwise the grant is cut to the whole minutes the stretch has left before
 *   `since + maxProtectedMinutes`; under one minute left, the answer is to unprotect and rest.
 * So a task is never protected longer than `maxProtectedMinutes` at a stretch, and after a capped
 * stretch it is unprotected for at least `restMinutes`.
 */
export function decideProtection(
  stretch: ProtectionStretch,
  now: number,
  requestedMinutes: number,
  budget: ProtectionBudget = DEFAULT_PROTECTION_BUDGET,
): ProtectionDecision {
  const restMs = budget.restMinutes * MINUTE_MS;
  const open =
    stretch.since !== undefined && !(stretch.until !== undefined && now >= stretch.until + restMs);
  const since = open && stretch.since !== undefined ? stretch.since : now;
  const capEnd = since + budget.maxProtectedMinutes * MINUTE_MS;
  const minutes = Math.min(requestedMinutes, Math.floor((capEnd - now) / MINUTE_MS));
  if (minutes >= 1) {
    return { action: 'protect', minutes, stretch: { since, until: now + minutes * MINUTE_MS } };
  }
  // Out of budget: protection ends now (if a grant still runs) and the rest counts from then.
  const until = Math.min(stretch.until ?? now, now);
  return { action: 'unprotect', restUntil: until + restMs, stretch: { since, until } };
}

/** The stretch after the worker unprotects at `now` (no call held): protection ends now. */
export function protectionEnded(stretch: ProtectionStretch, now: number): ProtectionStretch {
  if (stretch.since === undefined) return stretch;
  return { since: stretch.since, until: Math.min(stretch.until ?? now, now) };
}

/** Checks a budget: integers, `maxProtectedMinutes` 1 to 2880 and `restMinutes` 0 to 2880. */
export function protectionBudgetProblems(budget: ProtectionBudget): string[] {
  const problems: string[] = [];
  const { maxProtectedMinutes: max, restMinutes: rest } = budget;
  if (!Number.isInteger(max) || max < 1 || max > MAX_PROTECTION_MINUTES)
    problems.push(
      `maxProtectedMinutes must be an integer from 1 to ${MAX_PROTECTION_MINUTES}; got ${max}.`,
    );
  if (!Number.isInteger(rest) || rest < 0 || rest > MAX_PROTECTION_MINUTES)
    problems.push(
      `restMinutes must be an integer from 0 to ${MAX_PROTECTION_MINUTES}; got ${rest}.`,
    );
  return problems;
}
