import type { OpenAiWebhooksStackProps } from 'openai-webhooks-cdk';

/**
 * THE app config: one object with every prop of the app (your handlers per category, phone-call
 * sessions, tools, transfer targets, caller policy, alarms). `cdk deploy` (bin/app.ts) deploys
 * it, and `npm start` (local/main.ts) runs it on this machine: the same handlers and tools, on the
 * same code path. `OWH_APP_CONFIG=examples/app-config.ts` makes both use another file instead
 * (the examples: their handlers and tools).
 *
 * Why a module of its own in bin/: the project's top level is fixed (bin, lib, lambdas, …), bin/
 * holds the app's entry points, and the config is what a user edits, apart from bin/app.ts's
 * wiring (App, cdk-nag) and local/main.ts's, which both import it. Plain data, no constructs: it
 * is loaded outside a CDK app too (local mode), so no prop here may need a construct scope; write
 * your code as files (`UserHandler.fromEntry`, `CallTool.fromEntry`).
 *
 * Every prop has a documented default (lib/config.ts, README "Configuration"). Unknown props and
 * invalid values are refused at synth and by `npm start`, with a suggestion for typos.
 */
export const appConfig: OpenAiWebhooksStackProps = {
  description: 'Receives and acts on OpenAI webhooks',
  // webhookSecretName: 'openai-webhooks/webhook-secret',
  // openAiApiKeySecretName: 'openai-webhooks/api-key',
  // alarmEmail: 'oncall@example.com',
  // alarms: { signatureFailures: 20, oldestMessageAge: Duration.minutes(15), acceptLatencyP95: Duration.seconds(2) },
  // logLevel: 'info', tracing: false,
  // Your code per category (import { UserHandler } from 'openai-webhooks-cdk'):
  // categories: { batch: { userHandler: UserHandler.fromEntry('handlers/batch.ts') } },
  // Phone calls (needs Docker at deploy for the sideband image; README "Phone calls"); your tools
  // with CallTool.fromEntry (import { CallTool } from 'openai-webhooks-cdk'):
  // calls: {
  //   sessions: { default: { model: 'gpt-realtime-2.1', voice: 'marin', instructions: 'You are…', greeting: 'Hi!', tools: ['lookup_order'] } },
  //   tools: [
  //     CallTool.fromEntry('examples/tools/lookup-order.ts', {
  //       description: 'Look up an order by its number.',
  //       parameters: { type: 'object', properties: { order_number: { type: 'string' } }, required: ['order_number'] },
  //       timeout: Duration.seconds(3),
  //     }),
  //   ],
  //   transferTargets: { support: 'sip:support@example.com' },
  // },
};
