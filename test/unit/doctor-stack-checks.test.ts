import { describe, expect, it } from 'vitest';
import { type StackProbe, stackChecks } from '../../cli/stack-probe';

/** A stack's resources and its ECS service, in memory. */
function probe(
  resources: { type: string; physicalId: string }[],
  counts?: { desired: number; running: number },
): StackProbe {
  return {
    resources: async () => resources,
    service: async () => counts,
  };
}

const CLUSTER = { type: 'AWS::ECS::Cluster', physicalId: 'stack-cluster' };
const SERVICE = { type: 'AWS::ECS::Service', physicalId: 'arn:aws:ecs:eu-west-1:1:service/c/s' };
const SUBSCRIPTION = { type: 'AWS::SNS::Subscription', physicalId: 'arn:sub' };
const where = ' --stack S';

describe('owh doctor: the checks read from a deployed stack', () => {
  it('passes with a subscription and running tasks', async () => {
    const checks = await stackChecks(
      probe([SUBSCRIPTION, CLUSTER, SERVICE], { desired: 2, running: 2 }),
      {
        callsOn: true,
        where,
      },
    );
    expect(checks.map((c) => [c.name, c.result])).toEqual([
      ['alarm topic', 'ok'],
      ['sideband', 'ok'],
    ]);
    expect(checks[1]?.detail).toBe('2 of 2 task(s) running');
  });

  it('names a fix for no subscriber and for no running task', async () => {
    const checks = await stackChecks(probe([CLUSTER, SERVICE], { desired: 1, running: 0 }), {
      callsOn: true,
      where,
    });
    expect(checks[0]).toMatchObject({ result: 'fail', fix: expect.stringMatching(/alarmEmail/) });
    expect(checks[1]).toMatchObject({
      result: 'fail',
      detail: '0 of 1 task(s) running',
      fix: expect.stringMatching(/ECS console/),
    });
  });

  it('accepts a service scaled to zero, skips the sideband without calls, and skips both when the stack cannot be read', async () => {
    const zero = await stackChecks(
      probe([SUBSCRIPTION, CLUSTER, SERVICE], { desired: 0, running: 0 }),
      {
        callsOn: true,
        where,
      },
    );
    expect(zero[1]).toMatchObject({
      result: 'ok',
      detail: expect.stringMatching(/scaled to zero/),
    });
    const noCalls = await stackChecks(probe([SUBSCRIPTION]), { callsOn: false, where });
    expect(noCalls[1]).toMatchObject({ result: 'skip', detail: 'calls are off' });
    const missing = await stackChecks(probe([SUBSCRIPTION]), { callsOn: true, where });
    expect(missing[1]).toMatchObject({
      result: 'fail',
      detail: expect.stringMatching(/no sideband service/),
    });
    const unreadable = await stackChecks(
      {
        resources: async () => Promise.reject(new Error('AccessDenied')),
        service: async () => undefined,
      },
      { callsOn: true, where },
    );
    expect(unreadable.map((c) => c.result)).toEqual(['skip', 'skip']);
  });
});
