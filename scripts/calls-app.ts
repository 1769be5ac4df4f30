import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { OpenAiWebhooksStack } from '../lib/openai-webhooks-stack';

/**
 * An app with phone calls on, for the template checks (scripts/synth-templates.ts): the default
 * app (bin/app.ts) leaves calls off, so its template has no sideband service, signal queue or
 * incoming-call handling. Like test/infra/sideband.test.ts, a tool Lambda in a stack of its own.
 */
const app = new App();
const tools = new Stack(app, 'CallTools');
const lookupOrder = new LambdaFunction(tools, 'LookupOrder', {
  runtime: Runtime.NODEJS_22_X,
  handler: 'index.handler',
  code: Code.fromInline('exports.handler = async () => ({ status: "shipped" });'),
});
// A stand-in for the user's own tool, synthesized for the checks and never deployed.
Validations.of(lookupOrder).acknowledge(
  {
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason: 'A stand-in tool for the template checks, never deployed: the default role will do.',
  },
  {
    id: 'AwsSolutions-L1',
    reason: 'A stand-in tool for the template checks, never deployed: its runtime is irrelevant.',
  },
);

const stack = new OpenAiWebhooksStack(app, 'OpenAiWebhooksCalls', {
  description: 'Receives and acts on OpenAI webhooks, phone calls included',
  calls: {
    sessions: {
      default: {
        model: 'gpt-realtime-2.1',
        voice: 'marin',
        instructions: 'You are the phone assistant of Example Co. Be brief.',
        greeting: 'Thanks for calling Example Co. How can I help?',
        tools: ['lookup_order'],
      },
    },
    tools: [
      {
        name: 'lookup_order',
        description: 'Look up an order by its number.',
        parameters: {
          type: 'object',
          properties: { order_number: { type: 'string' } },
          required: ['order_number'],
        },
        function: lookupOrder,
        timeout: Duration.seconds(3),
      },
    ],
    transferTargets: { support: 'sip:support@example.com' },
  },
});

// The tool's ARN crosses stacks, as a user's tool stack would; the default (strong) is what a
// stack of the user's would get too.
Validations.of(stack).acknowledge({
  id: 'Annotation::@aws-cdk/core:crossStackReferencesDefaultStrong',
  reason: 'The stand-in tool stack is never deployed; strong references are the default users get.',
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
