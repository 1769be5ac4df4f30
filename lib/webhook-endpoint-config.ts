import { Duration, Token } from 'aws-cdk-lib';
import {
  defaultEventTypes,
  eventTypeProblems,
  type WebhookEventType,
} from '#core/webhooks/endpoint-lifecycle';
import { type KnownKeys, unknownKeyProblems } from './props-keys';

/**
 * The stack's own webhook endpoint at OpenAI (the `webhookEndpoint` prop): registered on deploy
 * and, optionally, its signing secret rotated on a schedule. Without this prop the endpoint is
 * registered by hand in the OpenAI dashboard (README "Deploy", the manual path).
 */
export interface WebhookEndpointProps {
  /** Register the webhook URL at OpenAI on deploy (needs `openAiApiKeySecretName`). */
  readonly register: boolean;
  /**
   * The event types to subscribe, from the `openai` SDK's list; `realtime.call.incoming` only
   * with `calls` on. @default every batch, response, eval and fine-tuning type, plus
   * `realtime.call.incoming` when calls are on
   */
  readonly eventTypes?: readonly WebhookEventType[];
  /** The endpoint's name in the OpenAI dashboard (at most 100 characters). @default "<stack name> webhooks" */
  readonly name?: string;
  /** Leave the endpoint registered when it is removed from the stack or the stack is deleted. @default false */
  readonly retainOnDelete?: boolean;
  /**
   * Rotate the signing secret on this schedule (Secrets Manager rotation), keeping the old secret
   * valid for 24 hours. @default no scheduled rotation (`owh webhooks rotate` still works)
   */
  readonly rotation?: WebhookRotationProps;
  /**
   * Write the signing secret into an existing secret named `webhookSecretName` (one created by
   * hand for the manual path) instead of a secret the stack creates. @default false
   */
  readonly adoptExistingSecret?: boolean;
}

export interface WebhookRotationProps {
  /** Time between rotations (1 to 365 days). @default Duration.days(30) */
  readonly every?: Duration;
}

export const WEBHOOK_ENDPOINT_KEYS: KnownKeys<WebhookEndpointProps> = {
  register: true,
  eventTypes: true,
  name: true,
  retainOnDelete: true,
  rotation: true,
  adoptExistingSecret: true,
};
const ROTATION_KEYS: KnownKeys<WebhookRotationProps> = { every: true };

export interface ResolvedWebhookEndpoint {
  readonly eventTypes: readonly string[];
  /** undefined: the stack's name decides. */
  readonly name: string | undefined;
  readonly retainOnDelete: boolean;
  readonly rotationEvery: Duration | undefined;
  readonly adoptExistingSecret: boolean;
}

export const DEFAULT_ROTATION = Duration.days(30);

/** Defaults and checks; `undefined` when registration is off. */
export function resolveWebhookEndpoint(
  props: WebhookEndpointProps | undefined,
  context: { readonly callsOn: boolean; readonly apiKeyOn: boolean },
): { resolved: ResolvedWebhookEndpoint | undefined; problems: string[] } {
  if (props === undefined) return { resolved: undefined, problems: [] };
  const problems = [
    ...unknownKeyProblems(props, WEBHOOK_ENDPOINT_KEYS, 'webhookEndpoint'),
    ...unknownKeyProblems(props.rotation, ROTATION_KEYS, 'webhookEndpoint.rotation'),
  ];
  if (typeof props.register !== 'boolean')
    problems.push('webhookEndpoint.register must be true or false.');
  if (props.register !== true) return { resolved: undefined, problems };
  if (!context.apiKeyOn)
    problems.push(
      'webhookEndpoint.register needs openAiApiKeySecretName (the key registers the endpoint); it is null.',
    );
  const eventTypes = props.eventTypes ?? defaultEventTypes(context.callsOn);
  for (const problem of eventTypeProblems(eventTypes, context.callsOn))
    problems.push(`webhookEndpoint.eventTypes: ${problem}`);
  const name = props.name;
  if (name !== undefined && !Token.isUnresolved(name) && (name.trim() === '' || name.length > 100))
    problems.push('webhookEndpoint.name must be 1 to 100 characters.');
  const every = props.rotation ? (props.rotation.every ?? DEFAULT_ROTATION) : undefined;
  if (every && !every.isUnresolved()) {
    const days = every.toHours({ integral: false }) / 24;
    if (days < 1 || days > 365)
      problems.push(
        `webhookEndpoint.rotation.every must be 1 to 365 days (an old secret lives 24 h after each rotation); got ${every.toHumanString()}.`,
      );
  }
  return {
    resolved: {
      eventTypes: [...eventTypes],
      name,
      retainOnDelete: props.retainOnDelete ?? false,
      rotationEvery: every,
      adoptExistingSecret: props.adoptExistingSecret ?? false,
    },
    problems,
  };
}
