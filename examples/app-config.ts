import { Duration } from 'aws-cdk-lib';
import { CallTool, type OpenAiWebhooksStackProps, UserHandler } from 'openai-webhooks-cdk';

/**
 * The examples as one app config: run them with `OWH_APP_CONFIG=examples/app-config.ts npm start`
 * (then `npm run send -- call`, or `npm run send -- batch.completed` for the batch handler), deploy them with `OWH_APP_CONFIG=examples/app-config.ts npx cdk
 * deploy`. The template checks (scripts/calls-app.ts) synthesize it as the app with phone calls.
 */
export const appConfig: OpenAiWebhooksStackProps = {
  description: 'Receives and acts on OpenAI webhooks: the examples, phone calls included',
  // The example handlers (examples/handlers/), each the `handler` export of its file: a batch's
  // output and error file metadata, a response's token usage.
  categories: {
    batch: { userHandler: UserHandler.fromEntry('examples/handlers/batch-completed.ts') },
    response: { userHandler: UserHandler.fromEntry('examples/handlers/response-completed.ts') },
  },
  calls: {
    sessions: {
      default: {
        model: 'gpt-realtime-2.1',
        voice: 'marin',
        instructions:
          'You are the phone assistant of Example Co. Be brief. Look orders up with lookup_order and warranties with check_warranty; if a tool fails, say so and offer a transfer to support.',
        greeting: 'Thanks for calling Example Co. How can I help?',
        tools: ['lookup_order', 'check_warranty'],
      },
    },
    tools: [
      // Named after its file: lookup_order.
      CallTool.fromEntry('examples/tools/lookup-order.ts', {
        description: 'Look up an order by its number: its status and expected delivery.',
        parameters: {
          type: 'object',
          properties: { order_number: { type: 'string', description: 'The order number.' } },
          required: ['order_number'],
        },
        timeout: Duration.seconds(3),
      }),
      // A tool that always fails, to show what the model hears then.
      CallTool.fromEntry('examples/tools/failing-tool.ts', {
        name: 'check_warranty',
        description: 'Check the warranty of a product by its serial number.',
        parameters: {
          type: 'object',
          properties: { serial_number: { type: 'string' } },
          required: ['serial_number'],
        },
        timeout: Duration.seconds(3),
      }),
    ],
    transferTargets: { support: 'sip:support@example.com' },
  },
  // Browser voice sessions (README "WebRTC"): your backend signs its requests with SigV4, so
  // grant it with `stack.webrtc.grantOpenSession(role)`; a JWT authorizer is the other choice.
  webrtc: { auth: 'iam' },
  // Live call control (README "Call control"): `POST /calls/{call_id}/commands`, IAM (SigV4) by
  // default; `owh calls say|update|cancel|hangup|transfer` reads its URL from the stack outputs.
  callControl: {},
  // Register the webhook URL at OpenAI on deploy, and rotate its signing secret every 30 days
  // (the old secret stays valid for 24 hours).
  webhookEndpoint: { register: true, rotation: { every: Duration.days(30) } },
};
