/**
 * The webhook endpoint as a CloudFormation custom resource (a plain custom-resource Lambda, not
 * the Provider framework: the function answers CloudFormation itself, so no framework function
 * logs the request or the answer).
 *
 * - Create: registers the URL for the event types at OpenAI (`POST /v1/webhook_endpoints`), then
 *   writes the `signing_secret` it returns into the webhook secret. If that write fails, the
 *   endpoint is deleted again before failing: nothing is left half-registered.
 * - Update: `POST /v1/webhook_endpoints/{id}` with what changed (URL, name, event types). A
 *   different secret to write to gets a rotated secret (the old one kept 24 h). An endpoint that
 *   was deleted at OpenAI is registered again, under a new physical id.
 * - Delete: deletes the endpoint unless `Retain` is "true"; one already gone is fine.
 * The physical id is the endpoint id (`whe_…`), which `Ref` gives the stack output.
 *
 * The secret is never in the answer to CloudFormation (no `Data`, `NoEcho`), a log line or an
 * error message; the OpenAI key is read from Secrets Manager, never from a property.
 * Custom resource contract: AWS CloudFormation User Guide, "Custom resources" (request and
 * response objects: RequestType, ResponseURL, PhysicalResourceId, Status, Reason, NoEcho, Data).
 */

import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type {
  CloudFormationCustomResourceEvent,
  CloudFormationCustomResourceResponse,
} from 'aws-lambda';
import { awsClientConfig } from '#adapters/aws-clients';
import { OpenAiApiError } from '#adapters/openai-client';
import {
  explainEndpointError,
  type OpenAiWebhookEndpoints,
} from '#adapters/openai-webhook-endpoints';
import { webhookEndpointsFromEnv } from '#adapters/runtime/webhook-endpoints-from-env';
import {
  SecretsManagerWebhookSecret,
  type WebhookSecretStore,
} from '#adapters/secrets-manager-webhook-secret';
import { ENV } from '#core/env';
import { createLogger, errorMessage, type Logger, parseLogLevel } from '#core/observability/logger';
import {
  endpointChanges,
  hasChanges,
  issuedSecret,
  readStoredSecret,
  rotatedSecret,
  serialiseStoredSecret,
} from '#core/webhooks/endpoint-lifecycle';

/** The resource's properties (strings, as CloudFormation passes them). */
export interface EndpointProperties {
  readonly Url: string;
  readonly Name: string;
  readonly EventTypes: readonly string[];
  /** The Secrets Manager secret the signing secret is written to. */
  readonly WebhookSecretId: string;
  /** "true": Delete leaves the endpoint registered. */
  readonly Retain?: string;
}

export interface EndpointDeps {
  readonly endpoints: OpenAiWebhookEndpoints;
  readonly secretStore: (secretId: string) => WebhookSecretStore;
  readonly log: Logger;
  readonly now: () => number;
}

/** The physical id of a resource whose create failed before anything was registered. */
export const NOT_REGISTERED = 'not-registered';

export type EndpointEvent =
  | { RequestType: 'Create'; ResourceProperties: EndpointProperties }
  | {
      RequestType: 'Update';
      PhysicalResourceId: string;
      ResourceProperties: EndpointProperties;
      OldResourceProperties: EndpointProperties;
    }
  | { RequestType: 'Delete'; PhysicalResourceId: string; ResourceProperties: EndpointProperties };

/** Does the work; returns the physical id. Throws an Error whose message is safe to show. */
export async function applyEndpoint(event: EndpointEvent, deps: EndpointDeps): Promise<string> {
  const props = properties(event.ResourceProperties);
  const desired = { url: props.Url, name: props.Name, eventTypes: props.EventTypes };
  if (event.RequestType === 'Create') return register(desired, props.WebhookSecretId, deps);
  const id = event.PhysicalResourceId;
  if (event.RequestType === 'Delete') {
    if (props.Retain === 'true' || !id.startsWith('whe_')) {
      deps.log.info('endpoint left registered', {
        endpointId: id,
        retained: props.Retain === 'true',
      });
      return id;
    }
    try {
      await deps.endpoints.delete(id);
      deps.log.info('endpoint deleted', { endpointId: id });
    } catch (error) {
      if (error instanceof OpenAiApiError && error.status === 404) return id;
      throw new Error(explainEndpointError(error, `delete webhook endpoint ${id}`));
    }
    return id;
  }
  // Update.
  let current: Awaited<ReturnType<OpenAiWebhookEndpoints['retrieve']>>;
  try {
    if (!id.startsWith('whe_')) throw new OpenAiApiError(404, 'not_found', 'never registered');
    current = await deps.endpoints.retrieve(id);
  } catch (error) {
    if (error instanceof OpenAiApiError && error.status === 404) {
      deps.log.warn('endpoint gone at OpenAI; registering again', { endpointId: id });
      return register(desired, props.WebhookSecretId, deps);
    }
    throw new Error(explainEndpointError(error, `read webhook endpoint ${id}`));
  }
  const changes = endpointChanges(current, desired);
  if (hasChanges(changes)) {
    try {
      await deps.endpoints.update(id, changes);
    } catch (error) {
      throw new Error(explainEndpointError(error, `update webhook endpoint ${id}`));
    }
    deps.log.info('endpoint updated', { endpointId: id, changed: Object.keys(changes) });
  }
  const oldSecretId = event.OldResourceProperties.WebhookSecretId;
  if (oldSecretId !== props.WebhookSecretId) {
    // The new secret has never held this endpoint's secret: issue one (the old one stays valid
    // 24 h, so the previous secret keeps verifying until the stack reads the new one).
    const store = deps.secretStore(props.WebhookSecretId);
    let rotated: string;
    try {
      rotated = (
        await deps.endpoints.rotateSecret(id, { keep_old_secret_active_for_24_hours: true })
      ).signing_secret;
    } catch (error) {
      throw new Error(explainEndpointError(error, `rotate the secret of webhook endpoint ${id}`));
    }
    const before = await deps
      .secretStore(oldSecretId)
      .current()
      .catch(() => undefined);
    const value = before
      ? rotatedSecret(readStoredSecret(before), rotated, deps.now())
      : issuedSecret(rotated, deps.now());
    await writeSecret(store, serialiseStoredSecret(value), props.WebhookSecretId);
    deps.log.info('endpoint secret moved to another secret', { endpointId: id });
  }
  return id;
}

async function register(
  desired: { url: string; name: string; eventTypes: readonly string[] },
  secretId: string,
  deps: EndpointDeps,
): Promise<string> {
  let created: Awaited<ReturnType<OpenAiWebhookEndpoints['create']>>;
  try {
    created = await deps.endpoints.create({
      url: desired.url,
      name: desired.name,
      event_types: desired.eventTypes,
    });
  } catch (error) {
    throw new Error(
      explainEndpointError(error, `register the webhook endpoint for ${desired.url}`),
    );
  }
  try {
    await writeSecret(
      deps.secretStore(secretId),
      serialiseStoredSecret(issuedSecret(created.signing_secret, deps.now())),
      secretId,
    );
  } catch (error) {
    // Undo: an endpoint whose secret we could not keep would sign deliveries nobody can verify.
    await deps.endpoints.delete(created.id).catch((undo: unknown) =>
      deps.log.error('could not delete the endpoint after a failed secret write', {
        endpointId: created.id,
        error: errorMessage(undo),
      }),
    );
    throw error;
  }
  deps.log.info('endpoint registered', {
    endpointId: created.id,
    eventTypes: created.event_types,
  });
  return created.id;
}

async function writeSecret(store: WebhookSecretStore, value: string, secretId: string) {
  try {
    await store.putCurrent(value);
  } catch (error) {
    // The SDK's message names the secret and the operation, never the value.
    throw new Error(
      `Could not write the signing secret into Secrets Manager secret ${secretId}: ${errorMessage(error)}`,
    );
  }
}

function properties(raw: EndpointProperties): EndpointProperties {
  const types = raw.EventTypes;
  if (typeof raw.Url !== 'string' || typeof raw.Name !== 'string')
    throw new Error('The custom resource needs Url and Name.');
  if (!Array.isArray(types) || types.some((t) => typeof t !== 'string'))
    throw new Error('The custom resource needs EventTypes, a list of strings.');
  if (typeof raw.WebhookSecretId !== 'string' || raw.WebhookSecretId === '')
    throw new Error('The custom resource needs WebhookSecretId.');
  return raw;
}

// ---------------------------------------------------------------------------------------------
// The Lambda: answers CloudFormation at ResponseURL.

/** What CloudFormation is told. Never `Data`: the only value it needs is the physical id. */
export function responseFor(
  event: CloudFormationCustomResourceEvent,
  outcome: { ok: true; physicalId: string } | { ok: false; reason: string },
): CloudFormationCustomResourceResponse {
  const physical =
    'PhysicalResourceId' in event && event.PhysicalResourceId
      ? event.PhysicalResourceId
      : NOT_REGISTERED;
  return {
    Status: outcome.ok ? 'SUCCESS' : 'FAILED',
    // CloudFormation shows the reason in the stack events: it must never carry a secret.
    Reason: outcome.ok ? 'OK' : outcome.reason.slice(0, 1000),
    PhysicalResourceId: outcome.ok ? outcome.physicalId : physical,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
    NoEcho: true,
  } as CloudFormationCustomResourceResponse;
}

export function createHandler(deps: EndpointDeps, put: typeof fetch = fetch) {
  return async (event: CloudFormationCustomResourceEvent): Promise<void> => {
    const log = deps.log.with({
      requestType: event.RequestType,
      resource: event.LogicalResourceId,
    });
    let outcome: { ok: true; physicalId: string } | { ok: false; reason: string };
    try {
      const physicalId = await applyEndpoint(event as unknown as EndpointEvent, { ...deps, log });
      outcome = { ok: true, physicalId };
    } catch (error) {
      const reason = errorMessage(error);
      log.error('webhook endpoint change failed', { reason });
      outcome = { ok: false, reason };
    }
    await answer(event, outcome, put);
  };
}

/** Puts the answer at the pre-signed S3 URL, with an empty content-type as cfn-response does. */
async function answer(
  event: CloudFormationCustomResourceEvent,
  outcome: { ok: true; physicalId: string } | { ok: false; reason: string },
  put: typeof fetch,
): Promise<void> {
  const body = JSON.stringify(responseFor(event, outcome));
  const response = await put(event.ResponseURL, {
    method: 'PUT',
    headers: { 'content-type': '', 'content-length': String(Buffer.byteLength(body)) },
    body,
  });
  if (!response.ok) throw new Error(`CloudFormation refused the answer: ${response.status}`);
}

function depsFromEnv(env: NodeJS.ProcessEnv): EndpointDeps {
  const client = new SecretsManagerClient(awsClientConfig());
  return {
    endpoints: webhookEndpointsFromEnv(env, client),
    secretStore: (secretId) => new SecretsManagerWebhookSecret(client, secretId),
    log: createLogger({ service: 'webhook-endpoint', level: parseLogLevel(env[ENV.logLevel]) }),
    now: Date.now,
  };
}

let built: ((event: CloudFormationCustomResourceEvent) => Promise<void>) | undefined;
export const handler = async (event: CloudFormationCustomResourceEvent) => {
  try {
    built ??= createHandler(depsFromEnv(process.env));
  } catch (error) {
    // Still answer: otherwise CloudFormation waits an hour for a function that cannot start.
    return answer(event, { ok: false, reason: errorMessage(error) }, fetch);
  }
  return built(event);
};
