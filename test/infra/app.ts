import { App, type Stack } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import {
  OpenAiWebhooksStack,
  type OpenAiWebhooksStackProps,
} from '../../lib/openai-webhooks-stack';

/** A stack with asset bundling skipped: the construct tests check the template, not the bundles. */
export function synthStack(props: OpenAiWebhooksStackProps = {}): {
  app: App;
  stack: OpenAiWebhooksStack;
} {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new OpenAiWebhooksStack(app, 'Test', props);
  return { app, stack };
}

/** AwsSolutions findings that no acknowledgement covers, as "RuleId at path". */
export function nagFindings(scope: IConstruct): string[] {
  const report = new AwsSolutionsChecks(scope).validateScope(scope);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath ?? r.resourceLogicalId}`),
  );
}

export type { Stack };
