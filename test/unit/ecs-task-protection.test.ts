import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EcsTaskProtection, TaskProtectionError } from '#adapters/ecs-task-protection';
import {
  DEFAULT_PROTECTION_BUDGET,
  decideProtection,
  type ProtectionBudget,
  type ProtectionStretch,
  protectionBudgetProblems,
  protectionEnded,
} from '#core/ports/task-protection';

/**
 * The task protection adapter against a loopback stand-in for the ECS agent endpoint, answering
 * as the ECS developer guide shows ("Task scale-in protection endpoint": response, failure and
 * error examples).
 */

const TASK = 'arn:aws:ecs:us-west-2:111122223333:task/cluster/1234567890abcdef0';
type Answer = { status: number; body: unknown } | 'hang';
let script: Answer[] = [];
const requests: { method: string; url: string; contentType: string | undefined; body: string }[] =
  [];
let server: Server;
let agentUri: string;
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        body,
      });
      const answer = script.shift() ?? {
        status: 200,
        body: { protection: { ExpirationDate: null, ProtectionEnabled: false, TaskArn: TASK } },
      };
      if (answer === 'hang') {
        hanging.push(res);
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  agentUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/task-id`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  script = [];
  requests.length = 0;
});

const protectedUntil = (date: string) => ({
  status: 200,
  body: { protection: { ExpirationDate: date, ProtectionEnabled: true, TaskArn: TASK } },
});

describe('EcsTaskProtection', () => {
  it('protects with a PUT of ProtectionEnabled and ExpiresInMinutes to the agent endpoint', async () => {
    script = [protectedUntil('2027-01-15T08:15:00Z')];
    const state = await new EcsTaskProtection(agentUri).protect(15);
    expect(state).toEqual({
      protectionEnabled: true,
      expirationDate: '2027-01-15T08:15:00Z',
      taskArn: TASK,
    });
    expect(requests).toEqual([
      {
        method: 'PUT',
        url: '/api/task-id/task-protection/v1/state',
        contentType: 'application/json',
        body: '{"ProtectionEnabled":true,"ExpiresInMinutes":15}',
      },
    ]);
  });

  it('unprotects with ProtectionEnabled false, and reads the state with a GET', async () => {
    const protection = new EcsTaskProtection(`${agentUri}/`);
    expect(await protection.unprotect()).toEqual({ protectionEnabled: false, taskArn: TASK });
    script = [protectedUntil('2027-01-15T08:15:00Z')];
    expect(await protection.state()).toMatchObject({ protectionEnabled: true });
    expect(requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ['PUT', '/api/task-id/task-protection/v1/state', '{"ProtectionEnabled":false}'],
      ['GET', '/api/task-id/task-protection/v1/state', ''],
    ]);
  });

  it('throws the failure reason the agent gives (a standalone task, say)', async () => {
    script = [
      { status: 400, body: { failure: { Arn: TASK, Detail: null, Reason: 'TASK_NOT_VALID' } } },
    ];
    const error = await new EcsTaskProtection(agentUri).protect(15).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskProtectionError);
    expect(error).toMatchObject({ code: 'TASK_NOT_VALID', status: 400 });
  });

  it('throws the error code the agent gives: a task role without the permission', async () => {
    script = [
      {
        status: 200,
        body: {
          requestID: '12345-abc',
          error: {
            Arn: TASK,
            Code: 'AccessDeniedException',
            Message: 'not authorized to perform: ecs:UpdateTaskProtection',
          },
        },
      },
    ];
    await expect(new EcsTaskProtection(agentUri).protect(15)).rejects.toMatchObject({
      code: 'AccessDeniedException',
      message: expect.stringContaining('ecs:UpdateTaskProtection'),
    });
  });

  it('throws on an answer that is not JSON, and on a timeout', async () => {
    script = [{ status: 500, body: 'agent exploded' }];
    await expect(new EcsTaskProtection(agentUri).unprotect()).rejects.toMatchObject({
      code: 'unexpected_answer',
      status: 500,
    });
    script = ['hang'];
    await expect(
      new EcsTaskProtection(agentUri, { timeoutMs: 100 }).protect(5),
    ).rejects.toMatchObject({ code: 'network_error' });
  });

  it.each([0, 2881, 1.5, Number.NaN])(
    'refuses ExpiresInMinutes %s without calling the agent',
    async (minutes) => {
      await expect(new EcsTaskProtection(agentUri).protect(minutes)).rejects.toThrow(RangeError);
      expect(requests).toEqual([]);
    },
  );

  it('is built from ECS_AGENT_URI, which ECS sets; none outside ECS', () => {
    expect(EcsTaskProtection.fromEnv({ ECS_AGENT_URI: agentUri })).toBeInstanceOf(
      EcsTaskProtection,
    );
    expect(EcsTaskProtection.fromEnv({})).toBeUndefined();
  });

  it('takes its budget from TASK_PROTECTION_MAX_MINUTES and TASK_PROTECTION_REST_MINUTES, and refuses a bad one at start', async () => {
    const env = {
      ECS_AGENT_URI: agentUri,
      TASK_PROTECTION_MAX_MINUTES: '20',
      TASK_PROTECTION_REST_MINUTES: '0',
    };
    const protection = EcsTaskProtection.fromEnv(env);
    // A grant of 30 minutes is cut to the 20 the budget allows.
    await protection?.protect(30);
    expect(requests.map((r) => r.body)).toEqual([
      '{"ProtectionEnabled":true,"ExpiresInMinutes":20}',
    ]);
    expect(() =>
      EcsTaskProtection.fromEnv({ ...env, TASK_PROTECTION_MAX_MINUTES: '2881' }),
    ).toThrow(
      /TASK_PROTECTION_MAX_MINUTES.*maxProtectedMinutes must be an integer from 1 to 2880; got 2881/,
    );
    expect(() => EcsTaskProtection.fromEnv({ ...env, TASK_PROTECTION_REST_MINUTES: '-1' })).toThrow(
      /restMinutes must be an integer from 0 to 2880; got -1/,
    );
    expect(() =>
      EcsTaskProtection.fromEnv({ ...env, TASK_PROTECTION_MAX_MINUTES: 'soon' }),
    ).toThrow(/TASK_PROTECTION_MAX_MINUTES must be a number/);
  });

  it('stops protecting a task that always holds calls once its budget is spent, so a deploy can replace it; protects again after the rest', async () => {
    let now = Date.parse('2027-01-15T08:00:00Z');
    const protection = new EcsTaskProtection(agentUri, {
      budget: { maxProtectedMinutes: 60, restMinutes: 15 },
      clock: () => now,
    });
    // The worker's renewal: 15-minute grants every 5 minutes, calls held throughout.
    const answers: (string | undefined)[] = [];
    for (let minute = 0; minute <= 80; minute += 5) {
      now = Date.parse('2027-01-15T08:00:00Z') + minute * 60_000;
      answers.push((await protection.protect(15)).heldBackUntil);
    }
    const asked = requests.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    // Minutes 0–45: full grants. 50 and 55: cut to end at the hour. 60–70: unprotected, resting
    // (a waiting deploy stops the task then). 75: the rest is over, a new stretch.
    expect(asked.map((a) => (a.ProtectionEnabled ? a.ExpiresInMinutes : 'off'))).toEqual([
      15,
      15,
      15,
      15,
      15,
      15,
      15,
      15,
      15,
      15,
      10,
      5,
      'off',
      'off',
      'off',
      15,
      15,
    ]);
    expect(answers.slice(12, 15)).toEqual(Array(3).fill('2027-01-15T09:15:00.000Z'));
    expect(answers.slice(15)).toEqual([undefined, undefined]);
  });

  it('counts a short idle gap inside the stretch: unprotecting does not reset the budget', async () => {
    let now = 0;
    const protection = new EcsTaskProtection(agentUri, {
      budget: { maxProtectedMinutes: 30, restMinutes: 10 },
      clock: () => now,
    });
    await protection.protect(15);
    now = 20 * 60_000;
    await protection.unprotect(); // the last call ended
    now = 22 * 60_000;
    await protection.protect(15); // a new call 2 minutes later: 8 minutes left of 30
    now = 45 * 60_000;
    await protection.unprotect();
    now = 56 * 60_000; // idle for 11 minutes (> rest): a new stretch
    await protection.protect(15);
    expect(requests.map((r) => r.body)).toEqual([
      '{"ProtectionEnabled":true,"ExpiresInMinutes":15}',
      '{"ProtectionEnabled":false}',
      '{"ProtectionEnabled":true,"ExpiresInMinutes":8}',
      '{"ProtectionEnabled":false}',
      '{"ProtectionEnabled":true,"ExpiresInMinutes":15}',
    ]);
  });

  it('refuses a budget outside the limits when constructed', () => {
    expect(
      () => new EcsTaskProtection(agentUri, { budget: { maxProtectedMinutes: 0, restMinutes: 5 } }),
    ).toThrow(
      /Task protection budget: maxProtectedMinutes must be an integer from 1 to 2880; got 0/,
    );
  });
});

describe('decideProtection (the budget, pure)', () => {
  const MIN = 60_000;
  const budget: ProtectionBudget = { maxProtectedMinutes: 60, restMinutes: 15 };

  /** Renews every `every` minutes with `grant`-minute asks while calls are held, from minute 0. */
  function renewals(until: number, every: number, grant: number) {
    let stretch: ProtectionStretch = {};
    const out: { minute: number; decision: ReturnType<typeof decideProtection> }[] = [];
    for (let minute = 0; minute <= until; minute += every) {
      const decision = decideProtection(stretch, minute * MIN, grant, budget);
      stretch = decision.stretch;
      out.push({ minute, decision });
    }
    return out;
  }

  it('opens a stretch on the first ask and grants what is asked while the budget lasts', () => {
    const d = decideProtection({}, 1000, 15, budget);
    expect(d).toEqual({
      action: 'protect',
      minutes: 15,
      stretch: { since: 1000, until: 1000 + 15 * MIN },
    });
  });

  it('never protects past maxProtectedMinutes, however often it is renewed', () => {
    for (const [every, grant] of [
      [5, 15],
      [1, 2880],
      [7, 3],
      [13, 45],
    ] as const) {
      let protectedUntil = 0;
      for (const { minute, decision } of renewals(600, every, grant)) {
        if (decision.action !== 'protect') continue;
        protectedUntil = Math.max(protectedUntil, minute * MIN + decision.minutes * MIN);
        const since = decision.stretch.since ?? 0;
        expect(minute * MIN + decision.minutes * MIN - since).toBeLessThanOrEqual(60 * MIN);
      }
      expect(protectedUntil).toBeGreaterThan(0);
    }
  });

  it('leaves at least restMinutes unprotected after a capped stretch, then opens a new one', () => {
    const out = renewals(200, 5, 15);
    const first = out.findIndex((o) => o.decision.action === 'unprotect');
    expect(out[first]?.minute).toBe(60);
    const unprotected = out.filter((o) => o.decision.action === 'unprotect' && o.minute < 80);
    expect(unprotected.map((o) => o.minute)).toEqual([60, 65, 70]);
    expect(out[first]?.decision).toMatchObject({ restUntil: 75 * MIN });
    // At minute 75 the rest is over: a new stretch, whose cap is minute 135.
    expect(out.find((o) => o.minute === 75)?.decision).toMatchObject({
      action: 'protect',
      minutes: 15,
      stretch: { since: 75 * MIN },
    });
    expect(out.find((o) => o.minute === 135)?.decision.action).toBe('unprotect');
  });

  it('unprotects at once when the cap falls inside a running grant (under a minute left)', () => {
    const d = decideProtection({ since: 0, until: 60 * MIN }, 59.5 * MIN, 15, budget);
    expect(d).toEqual({
      action: 'unprotect',
      restUntil: 59.5 * MIN + 15 * MIN,
      stretch: { since: 0, until: 59.5 * MIN },
    });
  });

  it('keeps the stretch over an idle gap shorter than the rest, and resets it after a longer one', () => {
    const ended = protectionEnded({ since: 0, until: 15 * MIN }, 10 * MIN);
    expect(ended).toEqual({ since: 0, until: 10 * MIN });
    expect(decideProtection(ended, 24 * MIN, 60, budget)).toMatchObject({
      action: 'protect',
      minutes: 36,
      stretch: { since: 0 },
    });
    expect(decideProtection(ended, 25 * MIN, 60, budget)).toMatchObject({
      action: 'protect',
      minutes: 60,
      stretch: { since: 25 * MIN },
    });
    expect(protectionEnded({}, 5)).toEqual({});
  });

  it('with no rest, a capped stretch ends and a new one opens at the next ask', () => {
    const noRest = { maxProtectedMinutes: 10, restMinutes: 0 };
    const capped = decideProtection({ since: 0, until: 10 * MIN }, 10 * MIN, 5, noRest);
    expect(capped).toMatchObject({ action: 'protect', stretch: { since: 10 * MIN } });
  });

  it('defaults to one hour, then 15 minutes of rest; checks budgets', () => {
    expect(DEFAULT_PROTECTION_BUDGET).toEqual({ maxProtectedMinutes: 60, restMinutes: 15 });
    expect(protectionBudgetProblems(DEFAULT_PROTECTION_BUDGET)).toEqual([]);
    expect(protectionBudgetProblems({ maxProtectedMinutes: 2881, restMinutes: 1.5 })).toEqual([
      'maxProtectedMinutes must be an integer from 1 to 2880; got 2881.',
      'restMinutes must be an integer from 0 to 2880; got 1.5.',
    ]);
  });
});
