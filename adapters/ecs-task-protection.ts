import { numberEnv } from '#core/env';
import {
  DEFAULT_PROTECTION_BUDGET,
  decideProtection,
  MAX_PROTECTION_MINUTES,
  type ProtectionBudget,
  type ProtectionStretch,
  protectionBudgetProblems,
  protectionEnded,
  type TaskProtection,
  type TaskProtectionState,
} from '#core/ports/task-protection';

/** The environment variables that set the protection budget (README "Sideband worker settings"). */
export const TASK_PROTECTION_ENV = {
  maxProtectedMinutes: 'TASK_PROTECTION_MAX_MINUTES',
  restMinutes: 'TASK_PROTECTION_REST_MINUTES',
} as const;

/**
 * The ECS container agent's task scale-in protection endpoint, `${ECS_AGENT_URI}/task-protection/v1/state`:
 * PUT `{"ProtectionEnabled":true,"ExpiresInMinutes":n}` protects, PUT
 * `{"ProtectionEnabled":false}` unprotects, GET reads. The agent answers
 * `{"protection":{"ProtectionEnabled","ExpirationDate","TaskArn"}}`, or `{"failure":{"Arn","Detail","Reason"}}`,
 * or `{"error":{"Arn","Code","Message"}}` (for instance `AccessDeniedException` when the task role
 * lacks ecs:UpdateTaskProtection / ecs:GetTaskProtection: the agent calls those APIs with the task
 * role's credentials). Source: the ECS developer guide, "Task scale-in protection endpoint"
 * (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html)
 * and its section "IAM permissions required for task scale-in protection".
 *
 * Protection is bounded by a budget (`ProtectionBudget`, core/ports/task-protection.ts): a
 * deployment waits for protected tasks, so a worker that always holds some call and renews for
 * ever would hold every deploy up. A `protect()` past the budget unprotects instead and answers
 * with `heldBackUntil`; the calls the task still holds are handed off when ECS stops it.
 */
export class EcsTaskProtection implements TaskProtection {
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly budget: ProtectionBudget;
  private readonly clock: () => number;
  private stretch: ProtectionStretch = {};

  /** `agentUri` is `ECS_AGENT_URI`, which the ECS agent sets in every container of the task. */
  constructor(
    agentUri: string,
    options: {
      timeoutMs?: number;
      fetch?: typeof fetch;
      /** How long the task may stay protected at a stretch. @default DEFAULT_PROTECTION_BUDGET: 60 minutes, then 15 minutes' rest */
      budget?: ProtectionBudget;
      /** Epoch ms. @default Date.now */
      clock?: () => number;
    } = {},
  ) {
    this.url = `${agentUri.replace(/\/+$/, '')}/task-protection/v1/state`;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.budget = options.budget ?? DEFAULT_PROTECTION_BUDGET;
    const problems = protectionBudgetProblems(this.budget);
    if (problems.length > 0) throw new RangeError(`Task protection budget: ${problems.join(' ')}`);
    this.clock = options.clock ?? Date.now;
  }

  /**
   * From the environment ECS gives the container; `undefined` outside ECS (local mode). The
   * budget comes from TASK_PROTECTION_MAX_MINUTES (default 60) and TASK_PROTECTION_REST_MINUTES
   * (default 15); a bad value throws at start.
   */
  static fromEnv(env: NodeJS.ProcessEnv): EcsTaskProtection | undefined {
    const agentUri = env.ECS_AGENT_URI;
    if (!agentUri) return undefined;
    const budget: ProtectionBudget = {
      maxProtectedMinutes: numberEnv(
        env,
        TASK_PROTECTION_ENV.maxProtectedMinutes,
        DEFAULT_PROTECTION_BUDGET.maxProtectedMinutes,
      ),
      restMinutes: numberEnv(
        env,
        TASK_PROTECTION_ENV.restMinutes,
        DEFAULT_PROTECTION_BUDGET.restMinutes,
      ),
    };
    const problems = protectionBudgetProblems(budget);
    if (problems.length > 0)
      throw new Error(
        `${TASK_PROTECTION_ENV.maxProtectedMinutes}/${TASK_PROTECTION_ENV.restMinutes}: ${problems.join(' ')}`,
      );
    return new EcsTaskProtection(agentUri, { budget });
  }

  /**
   * Protects for `expiresInMinutes`, cut to what the budget's current stretch has left; past the
   * budget, unprotects instead (the answer then carries `heldBackUntil`).
   */
  async protect(expiresInMinutes: number): Promise<TaskProtectionState> {
    if (
      !Number.isInteger(expiresInMinutes) ||
      expiresInMinutes < 1 ||
      expiresInMinutes > MAX_PROTECTION_MINUTES
    ) {
      throw new RangeError(
        `expiresInMinutes must be an integer from 1 to ${MAX_PROTECTION_MINUTES}; got ${expiresInMinutes}.`,
      );
    }
    // The attempt counts against the budget whether or not the agent answers.
    const decision = decideProtection(this.stretch, this.clock(), expiresInMinutes, this.budget);
    this.stretch = decision.stretch;
    if (decision.action === 'unprotect') {
      const state = await this.call('PUT', { ProtectionEnabled: false });
      return { ...state, heldBackUntil: new Date(decision.restUntil).toISOString() };
    }
    return this.call('PUT', { ProtectionEnabled: true, ExpiresInMinutes: decision.minutes });
  }

  unprotect(): Promise<TaskProtectionState> {
    this.stretch = protectionEnded(this.stretch, this.clock());
    return this.call('PUT', { ProtectionEnabled: false });
  }

  state(): Promise<TaskProtectionState> {
    return this.call('GET');
  }

  private async call(method: 'GET' | 'PUT', body?: unknown): Promise<TaskProtectionState> {
    let response: Response;
    try {
      response = await this.fetch(this.url, {
        method,
        ...(body !== undefined
          ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
          : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const reason = error instanceof Error ? error.name : 'network error';
      throw new TaskProtectionError('network_error', `${method} task protection failed: ${reason}`);
    }
    const text = await response.text();
    let parsed: AgentAnswer | undefined;
    try {
      parsed = text.length > 0 ? (JSON.parse(text) as AgentAnswer) : undefined;
    } catch {
      parsed = undefined;
    }
    if (parsed?.failure) {
      const { Reason, Detail } = parsed.failure;
      throw new TaskProtectionError(
        Reason ?? 'failure',
        `${Reason ?? 'failure'}: ${Detail ?? ''}`.trim(),
        response.status,
      );
    }
    if (parsed?.error) {
      const { Code, Message } = parsed.error;
      throw new TaskProtectionError(
        Code ?? 'error',
        `${Code ?? 'error'}: ${Message ?? ''}`.trim(),
        response.status,
      );
    }
    const protection = parsed?.protection;
    if (!response.ok || !protection || typeof protection.ProtectionEnabled !== 'boolean') {
      throw new TaskProtectionError(
        'unexpected_answer',
        `${method} task protection answered ${response.status}: ${text.slice(0, 200)}`,
        response.status,
      );
    }
    return {
      protectionEnabled: protection.ProtectionEnabled,
      ...(typeof protection.ExpirationDate === 'string'
        ? { expirationDate: protection.ExpirationDate }
        : {}),
      ...(typeof protection.TaskArn === 'string' ? { taskArn: protection.TaskArn } : {}),
    };
  }
}

/** What the agent answers (task-scale-in-protection-endpoint, "endpoint response"). */
interface AgentAnswer {
  readonly protection?: {
    readonly ProtectionEnabled?: unknown;
    readonly ExpirationDate?: unknown;
    readonly TaskArn?: unknown;
  };
  readonly failure?: {
    readonly Arn?: string;
    readonly Detail?: string | null;
    readonly Reason?: string;
  };
  readonly error?: { readonly Arn?: string; readonly Code?: string; readonly Message?: string };
}

/** The agent refused or failed: `code` is its `Reason` or `Code` (`TASK_NOT_VALID`, `AccessDeniedException`, …). */
export class TaskProtectionError extends Error {
  override readonly name = 'TaskProtectionError';
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}
