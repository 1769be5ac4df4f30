/**
 * The public entry: everything your own code and your app config need, from one place. Import it
 * by the package's name, which package.json `exports` maps here:
 *
 * ```ts
 * import type { ConsumedEvent, ToolHandler } from 'openai-webhooks-cdk';   // your handler and tool files
 * import { CallTool, UserHandler } from 'openai-webhooks-cdk';             // your app config
 * ```
 *
 * Handler and tool files should import types only (`import type`): they are bundled into Lambda
 * functions, and a value import from here would bundle the CDK with them.
 */

import type { UserHandler as ConsumerUserHandler } from '#core/webhooks/process-event';

export type { CallerSource } from '#core/calls/sip';
// Your own code: the contracts.
export type {
  ToolCallContext,
  ToolError,
  ToolHandler,
  ToolInput,
  ToolOutput,
} from '#core/calls/tool-contract';
export type { ToolContext } from '#core/ports/sideband';
export type { Category } from '#core/webhooks/categories';
export type { Malformed } from '#core/webhooks/envelope';
export type { ConsumedEvent } from '#core/webhooks/process-event';
export type { ObjectState } from '#core/webhooks/projection';

/**
 * A category handler's code: the export (`handler` unless you name another) of a
 * `UserHandler.fromEntry` file. It is called once per stored event of its category, after the
 * event is stored and its object hydrated; a throw fails the message, which is retried, then
 * moves to the category's DLQ. Deliveries repeat (at-least-once): make it idempotent on
 * `event.eventId`.
 */
export type EventHandler = ConsumerUserHandler;

export type { SessionConfig, Voice } from '#core/calls/session-config';
// Your app config.
export type {
  CallsProps,
  CallToolOptions,
  CallToolProps,
  NumberListProps,
  SidebandServiceOptions,
  TaskProtectionOptions,
} from './calls-config';
export { CallTool } from './calls-config';
export type { AlarmThresholds, CategoryOptions, OpenAiWebhooksConfig } from './config';
export { UserHandler } from './config';
// The `webrtc` prop (browser voice sessions) and who may open a session or attach.
export type { ApiAuth } from './constructs/api-auth';
export type {
  RouteThrottle,
  WebRtcSessionEndpointProps,
  WebRtcSessionOptions,
} from './constructs/webrtc-session-endpoint';
export type { OpenAiWebhooksStackProps } from './openai-webhooks-stack';
export { OpenAiWebhooksStack } from './openai-webhooks-stack';
// The `webhookEndpoint` prop (the endpoint registered at OpenAI, and its secret's rotation).
export type { WebhookEndpointProps, WebhookRotationProps } from './webhook-endpoint-config';
