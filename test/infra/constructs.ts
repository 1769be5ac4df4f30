import * as path from 'node:path';
import { App, CfnElement, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { IConstruct } from 'constructs';
import { expect } from 'vitest';
import type { CallsConfig } from '#core/calls/calls-config';
import { type CallsProps, resolveCalls } from '../../lib/calls-config';
import { CategoryFanout, type CategoryFanoutProps } from '../../lib/constructs/category-fanout';
import { EventStore } from '../../lib/constructs/event-store';
import { PROJECT_ROOT } from '../../lib/constructs/node-function';
import { WebhookIngress } from '../../lib/constructs/webhook-ingress';

/** A bare stack in an app that skips asset bundling: each construct test starts from one. */
export function bareStack(): { app: App; stack: Stack } {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return { app, stack: new Stack(app, 'Bare') };
}

/**
 * Every resource and output in `stack` lies under `construct`: the construct added nothing to
 * its parent. (`also` lists other constructs of the test whose resources are expected.)
 */
export function expectContained(
  stack: Stack,
  construct: IConstruct,
  also: readonly IConstruct[] = [],
): void {
  const outputs = stack.node.findAll().filter((c) => c instanceof CfnOutput);
  expect(outputs.map((o) => o.node.path)).toEqual([]);
  const owners = [construct, ...also].map((c) => `${c.node.path}/`);
  // The synthesizer's own bootstrap-version parameter and rule belong to every stack.
  const synthesizer = ['BootstrapVersion', 'CheckBootstrapVersion'].map(
    (id) => `${stack.node.path}/${id}`,
  );
  const strays = stack.node
    .findAll()
    .filter((c) => CfnElement.isCfnElement(c))
    .map((c) => c.node.path)
    .filter((p) => !synthesizer.includes(p) && !owners.some((owner) => p.startsWith(owner)));
  expect(strays).toEqual([]);
}

/** An ingress's and a fan-out's dependencies and themselves, in a bare stack. */
export function webhookParts(
  stack: Stack,
  fanoutProps: Partial<CategoryFanoutProps> = {},
): { store: EventStore; fanout: CategoryFanout; secret: ISecret; ingress: WebhookIngress } {
  const store = new EventStore(stack, 'Store');
  const fanout = new CategoryFanout(stack, 'Fanout', { store, ...fanoutProps });
  const secret = Secret.fromSecretNameV2(stack, 'WebhookSecret', 'webhook-secret');
  const ingress = new WebhookIngress(stack, 'Ingress', { store, fanout, webhookSecret: secret });
  return { store, fanout, secret, ingress };
}

/** A tool function and a calls config that uses it, as the stack builds them. */
export function callsFixture(
  stack: Stack,
  props: Partial<CallsProps> = {},
): { config: CallsConfig; tool: LambdaFunction } {
  const tool = new LambdaFunction(stack, 'LookupOrder', {
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('exports.handler = async () => ({})'),
  });
  const { resolved, problems } = resolveCalls({
    sessions: {
      default: {
        model: 'gpt-realtime-2.1',
        instructions: 'Be brief.',
        voice: 'marin',
        tools: ['lookup_order'],
      },
    },
    tools: [
      {
        name: 'lookup_order',
        description: 'Find an order.',
        parameters: { type: 'object', properties: { id: { type: 'string' } } },
        function: tool,
        timeout: Duration.seconds(3),
      },
    ],
    transferTargets: { support: 'sip:support@example.com' },
    ...props,
  });
  expect(problems).toEqual([]);
  return { config: resolved.config, tool };
}

/** A handler file that exists, for NodeFunction tests. */
export const INGRESS_ENTRY = path.join(PROJECT_ROOT, 'lambdas/ingress/handler.ts');
