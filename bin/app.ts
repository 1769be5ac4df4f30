import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadAppConfig } from '../lib/app-config-file';
import { OpenAiWebhooksStack } from '../lib/openai-webhooks-stack';

/**
 * The app: deploys the app config, bin/app-config.ts (or the file `OWH_APP_CONFIG` names), the
 * same config `npm start` runs. Set your props there, not here. The stack is
 * environment-agnostic, so synth needs no credentials.
 */
const app = new App();
const { props } = await loadAppConfig(process.env, path.resolve(import.meta.dirname, '..'));

new OpenAiWebhooksStack(app, 'OpenAiWebhooks', props);

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
