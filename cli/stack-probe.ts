import {
  CloudFormationClient,
  ListStackResourcesCommand,
  type StackResourceSummary,
} from '@aws-sdk/client-cloudformation';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import { awsClientConfig } from '#adapters/aws-clients';
import type { Check } from './doctor';

/** What `owh doctor` reads about a deployed stack besides its outputs. */
export interface StackProbe {
  /** The stack's resources: type and physical id. */
  resources(): Promise<{ type: string; physicalId: string }[]>;
  /** An ECS service's desired and running task counts. */
  service(
    cluster: string,
    service: string,
  ): Promise<{ desired: number; running: number } | undefined>;
}

export function awsStackProbe(stackName: string, region: string | undefined): StackProbe {
  const config = { ...awsClientConfig(), ...(region ? { region } : {}) };
  return {
    resources: async () => {
      const cloudFormation = new CloudFormationClient(config);
      try {
        const all: StackResourceSummary[] = [];
        let token: string | undefined;
        do {
          const page = await cloudFormation.send(
            new ListStackResourcesCommand({ StackName: stackName, NextToken: token }),
          );
          all.push(...(page.StackResourceSummaries ?? []));
          token = page.NextToken;
        } while (token);
        return all.map((r) => ({
          type: r.ResourceType ?? '',
          physicalId: r.PhysicalResourceId ?? '',
        }));
      } finally {
        cloudFormation.destroy();
      }
    },
    service: async (cluster, service) => {
      const ecs = new ECSClient(config);
      try {
        const result = await ecs.send(
          new DescribeServicesCommand({ cluster, services: [service] }),
        );
        const found = result.services?.[0];
        return found
          ? { desired: found.desiredCount ?? 0, running: found.runningCount ?? 0 }
          : undefined;
      } finally {
        ecs.destroy();
      }
    },
  };
}

/**
 * The alarm topic's subscriber and the sideband's tasks, from the stack's resources. A
 * subscription made outside the stack is not seen: the fix says so.
 */
export async function stackChecks(
  probe: StackProbe,
  options: { callsOn: boolean; where: string },
): Promise<Check[]> {
  let resources: { type: string; physicalId: string }[];
  try {
    resources = await probe.resources();
  } catch (error) {
    const detail = `could not list the stack's resources (${error instanceof Error ? error.message : String(error)})`;
    return [
      { name: 'alarm topic', result: 'skip', detail },
      { name: 'sideband', result: 'skip', detail },
    ];
  }
  const checks: Check[] = [];
  const subscriptions = resources.filter((r) => r.type === 'AWS::SNS::Subscription');
  checks.push(
    subscriptions.length > 0
      ? {
          name: 'alarm topic',
          result: 'ok',
          detail: `${subscriptions.length} subscription(s) in the stack (an e-mail one must be confirmed from its e-mail)`,
        }
      : {
          name: 'alarm topic',
          result: 'fail',
          detail: 'the stack subscribes nobody to the alarm topic',
          fix: 'set alarmEmail and deploy, or subscribe to the AlarmTopicArn output (a subscription made outside the stack is not seen here)',
        },
  );
  if (!options.callsOn) {
    checks.push({ name: 'sideband', result: 'skip', detail: 'calls are off' });
    return checks;
  }
  const cluster = resources.find((r) => r.type === 'AWS::ECS::Cluster')?.physicalId;
  const service = resources.find((r) => r.type === 'AWS::ECS::Service')?.physicalId;
  if (!cluster || !service) {
    checks.push({
      name: 'sideband',
      result: 'fail',
      detail: 'calls are on but the stack has no sideband service',
      fix: `deploy this version of the app (cdk deploy), then owh doctor${options.where}`,
    });
    return checks;
  }
  const counts = await probe.service(cluster, service).catch(() => undefined);
  checks.push(
    !counts
      ? {
          name: 'sideband',
          result: 'fail',
          detail: `ECS service ${service} was not found`,
          fix: 'check the ECS console for the service',
        }
      : counts.running > 0 || counts.desired === 0
        ? {
            name: 'sideband',
            result: 'ok',
            detail:
              counts.desired === 0
                ? 'scaled to zero: the first call starts a task'
                : `${counts.running} of ${counts.desired} task(s) running`,
          }
        : {
            name: 'sideband',
            result: 'fail',
            detail: `0 of ${counts.desired} task(s) running`,
            fix: 'read the sideband service events in the ECS console (image pull, secrets, subnets), and its logs',
          },
  );
  return checks;
}
