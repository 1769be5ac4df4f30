import * as path from 'node:path';
import { CustomResource, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import { eventTypeProblems } from '#core/webhooks/endpoint-lifecycle';
import { DEFAULTS } from '../config';
import type { LoggingProps } from './logging';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { PropsCheck } from './validation';

export interface WebhookEndpointRegistrationProps {
  /** The URL OpenAI delivers to: the ingress's function URL. */
  readonly webhookUrl: string;
  /** Where the endpoint's signing secret is written (the secret the ingress verifies with). */
  readonly webhookSecret: ISecret;
  /** The OpenAI API key that registers the endpoint; read at deploy time, never a property. */
  readonly apiKeySecret: ISecret;
  /** Event types from the `openai` SDK's list (core/webhooks/endpoint-lifecycle.ts). */
  readonly eventTypes: readonly string[];
  /** Whether phone calls are on: `realtime.call.incoming` is refused without them. @default false */
  readonly callsEnabled?: boolean;
  /** The endpoint's name at OpenAI (1 to 100 characters). @default "<stack name> webhooks" */
  readonly name?: string;
  /** Leave the endpoint registered when this resource is deleted. @default false */
  readonly retainOnDelete?: boolean;
  /** OpenAI API base URL (an https:// URL). @default 'https://api.openai.com/v1' */
  readonly openAiBaseUrl?: string;
  /** Log group, `LOG_LEVEL` and tracing of the custom resource function. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/**
 * Registers the stack's webhook URL at OpenAI on deploy, as a custom resource
 * (lambdas/webhook-endpoint/handler.ts): create registers and writes the signing secret into
 * `webhookSecret`, update changes the URL, name and event types, delete deletes unless retained.
 * The secret never passes through CloudFormation: the function writes it to Secrets Manager
 * itself and answers with `NoEcho` and no `Data`.
 */
export class WebhookEndpointRegistration extends Construct {
  /** The custom resource function. */
  readonly fn: LambdaFunction;
  /** The endpoint id at OpenAI (`whe_…`): the resource's physical id. */
  readonly endpointId: string;

  constructor(scope: Construct, id: string, props: WebhookEndpointRegistrationProps) {
    super(scope, id);
    const check = new PropsCheck('WebhookEndpointRegistration', id);
    const name = props.name ?? `${Stack.of(this).stackName} webhooks`;
    check
      .problemsOf('eventTypes', eventTypeProblems(props.eventTypes, props.callsEnabled ?? false))
      .httpsUrl('openAiBaseUrl', props.openAiBaseUrl)
      .that(
        Token.isUnresolved(name) || (name.trim().length > 0 && name.length <= 100),
        'name',
        `must be 1 to 100 characters; got ${JSON.stringify(name)}.`,
      )
      .assert();

    const fn = new NodeFunction(this, 'Handler', {
      entry: path.join(PROJECT_ROOT, 'lambdas/webhook-endpoint/handler.ts'),
      description: 'OpenAI webhooks: registers the webhook endpoint at OpenAI (custom resource)',
      memorySize: 256,
      timeout: Duration.minutes(2),
      ...(props.logging ? { logging: props.logging } : {}),
      environment: {
        [ENV.openAiKeySecretId]: props.apiKeySecret.secretName,
        [ENV.openAiBaseUrl]: props.openAiBaseUrl ?? DEFAULTS.openAiBaseUrl,
      },
    });
    this.fn = fn.fn;
    props.apiKeySecret.grantRead(this.fn);
    props.webhookSecret.grantRead(this.fn);
    props.webhookSecret.grantWrite(this.fn);

    const resource = new CustomResource(this, 'Endpoint', {
      serviceToken: this.fn.functionArn,
      resourceType: 'Custom::OpenAiWebhookEndpoint',
      properties: {
        Url: props.webhookUrl,
        Name: name,
        EventTypes: [...props.eventTypes],
        WebhookSecretId: props.webhookSecret.secretName,
        Retain: String(props.retainOnDelete ?? false),
      },
    });
    // The secret's write access must be in place before the function first runs.
    resource.node.addDependency(fn);
    this.endpointId = resource.ref;
  }

  /** Failed invocations of the custom resource function (a failed deploy step). */
  metricErrors(): Metric {
    return this.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' });
  }
}

export interface WebhookSigningSecretProps {
  /** The secret's name (the stack's `webhookSecretName`). */
  readonly secretName: string;
  /** What happens to the secret when it leaves the stack. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Whether a rotation schedule is attached (else the missing rotation is acknowledged). @default false */
  readonly rotated?: boolean;
}

/**
 * The webhook secret, made by the stack when it registers its own endpoint: it starts with a
 * random placeholder (never a usable `whsec_…`) until the registration writes the endpoint's
 * signing secret into it, in the same deploy. Its value is never in the template.
 */
export class WebhookSigningSecret extends Construct {
  readonly secret: Secret;

  constructor(scope: Construct, id: string, props: WebhookSigningSecretProps) {
    super(scope, id);
    new PropsCheck('WebhookSigningSecret', id)
      .that(
        Token.isUnresolved(props.secretName) || /^[\w/+=.@-]{1,512}$/.test(props.secretName),
        'secretName',
        `must be 1 to 512 letters, digits and /_+=.@-; got ${JSON.stringify(props.secretName)}.`,
      )
      .assert();
    this.secret = new Secret(this, 'Secret', {
      secretName: props.secretName,
      description:
        'OpenAI webhook signing secret (current, and previous during a rotation). Written by the webhook endpoint registration.',
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    if (!props.rotated)
      Validations.of(this.secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'OpenAI issues this secret, not Secrets Manager; rotation is the opt-in webhookEndpoint.rotation (or owh webhooks rotate).',
      });
  }
}
