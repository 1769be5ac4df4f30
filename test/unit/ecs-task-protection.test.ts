import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EcsTaskProtection, TaskProtectionError } from '#adapters/ecs-task-protection';

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
});
