import { DescribeServicesCommand, type ECSClient, UpdateServiceCommand } from '@aws-sdk/client-ecs';
import type { ServiceScaler } from '#core/ports/calls';

/** Raises a scaled-to-zero sideband service to one task when a call arrives. */
export class EcsServiceScaler implements ServiceScaler {
  constructor(
    private readonly client: ECSClient,
    private readonly cluster: string,
    private readonly service: string,
  ) {}

  async ensureRunning(): Promise<boolean> {
    const described = await this.client.send(
      new DescribeServicesCommand({ cluster: this.cluster, services: [this.service] }),
    );
    const service = described.services?.[0];
    if (!service) throw new Error(`ECS service ${this.service} not found in ${this.cluster}.`);
    if ((service.desiredCount ?? 0) > 0) return (service.runningCount ?? 0) === 0;
    await this.client.send(
      new UpdateServiceCommand({ cluster: this.cluster, service: this.service, desiredCount: 1 }),
    );
    return true;
  }
}
