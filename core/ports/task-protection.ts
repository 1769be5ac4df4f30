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
}

/** The most a protection may last, in minutes (48 hours). */
export const MAX_PROTECTION_MINUTES = 2880;
