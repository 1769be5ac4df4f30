import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { appConfig } from '../examples/app-config';
import { OpenAiWebhooksStack } from '../lib/openai-webhooks-stack';

/**
 * An app with phone calls on, for the template checks (scripts/synth-templates.ts): the default
 * app (bin/app.ts) leaves calls off, so its template has no sideband service, signal queue or
 * incoming-call handling. It is the examples' app config (examples/app-config.ts): its tools are
 * `CallTool.fromEntry` files, so the template has their Lambda functions and the sideband task
 * role's invoke grant on exactly those.
 */
const app = new App();

new OpenAiWebhooksStack(app, 'OpenAiWebhooksCalls', appConfig);

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
