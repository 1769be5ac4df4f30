import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { OpenAiWebhooksStack } from '../lib/openai-webhooks-stack';

/**
 * The app. Every prop has a documented default (lib/config.ts, README "Configuration"); set
 * yours here. The stack is environment-agnostic, so synth needs no credentials.
 */
const app = new App();

new OpenAiWebhooksStack(app, 'OpenAiWebhooks', {
  description: 'Receives and acts on OpenAI webhooks',
  // webhookSecretName: 'openai-webhooks/webhook-secret',
  // openAiApiKeySecretName: 'openai-webhooks/api-key',
  // alarmEmail: 'oncall@example.com',
  // alarms: { signatureFailures: 20, oldestMessageAge: Duration.minutes(15), acceptLatencyP95: Duration.seconds(2) },
  // logLevel: 'info', tracing: false,
  // categories: { batch: { userHandler: UserHandler.fromEntry('handlers/batch.ts') } },
  // Phone calls (needs Docker at deploy for the sideband image; README "Phone calls"):
  // calls: {
  //   sessions: { default: { model: 'gpt-realtime-2.1', voice: 'marin', instructions: 'You are…', greeting: 'Hi!' } },
  //   transferTargets: { support: 'sip:support@example.com' },
  // },
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
