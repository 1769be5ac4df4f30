/**
 * Rotates the webhook signing secret on a schedule, as a Secrets Manager rotation function, plus
 * the step 24 hours later that drops the old secret.
 *
 * Secrets Manager's contract ("Rotation by Lambda function" and the AWS rotation template,
 * aws-samples/aws-secrets-manager-rotation-lambdas SecretsManagerRotationTemplate): the function
 * is invoked with `{Step, SecretId, ClientRequestToken}` for `createSecret`, `setSecret`,
 * `testSecret` and `finishSecret` in turn; every step may be retried, so each is idempotent; the
 * token is the new version's id; AWSPENDING marks the version being made, AWSCURRENT the live one.
 *
 * Here the "service" is OpenAI, and OpenAI generates the secret:
 * - createSecret: `POST /v1/webhook_endpoints/{id}/rotate_secret` with
 *   `keep_old_secret_active_for_24_hours: true` (openai 7.55.0 `WebhookRotateSecretParams`), and
 *   the version `{current: new, previous: old, previousUntil: now + 24 h}` staged AWSPENDING.
 *   From then on OpenAI signs with both secrets, and the ingress still verifies with the old one.
 * - setSecret: nothing left to set (OpenAI already holds the new secret).
 * - testSecret: the pending value parses as the ingress reads it, and OpenAI's
 *   `signing_secret_hint` matches its `current`.
 * - finishSecret: AWSCURRENT moves to the new version; the ingress reloads it (its cache, or at
 *   once on the first signature that fails with the cached secrets).
 * - `{action: "expirePrevious"}` (an hourly schedule): once `previousUntil` has passed, stores
 *   `{current}` alone, so the old secret stops being accepted when OpenAI stops signing with it.
 * A failure counts `SecretRotationFailures` (EMF) before it is rethrown, which the alarm watches.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientConfig } from '#adapters/aws-clients';
import {
  explainEndpointError,
  type OpenAiWebhookEndpoints,
} from '#adapters/openai-webhook-endpoints';
import { webhookEndpointsFromEnv } from '#adapters/runtime/webhook-endpoints-from-env';
import {
  SecretsManagerWebhookSecret,
  type WebhookSecretStore,
} from '#adapters/secrets-manager-webhook-secret';
import { ENV, requireEnv } from '#core/env';
import { createLogger, errorMessage, type Logger, parseLogLevel } from '#core/observability/logger';
import { METRICS_NAMESPACE } from '#core/observability/metrics';
import {
  expirePrevious,
  hintMatches,
  ROTATION_METRICS,
  readStoredSecret,
  rotatedSecret,
  serialiseStoredSecret,
  WEBHOOK_ENDPOINT_ID_ENV,
} from '#core/webhooks/endpoint-lifecycle';
import { parseWebhookSecrets } from '#core/webhooks/signature';

export type RotationStep = 'createSecret' | 'setSecret' | 'testSecret' | 'finishSecret';
export type RotationEvent =
  | { Step: RotationStep; SecretId: string; ClientRequestToken: string }
  | { action: 'expirePrevious' };

export interface RotationDeps {
  readonly endpoints: OpenAiWebhookEndpoints;
  readonly endpointId: string;
  readonly store: WebhookSecretStore;
  readonly log: Logger;
  readonly now: () => number;
  /** One EMF line per call. @default stdout */
  readonly emit?: (line: string) => void;
  readonly stackName?: string;
}

/** Runs one step. Returns what it did, for logs and tests. */
export async function rotationStep(event: RotationEvent, deps: RotationDeps): Promise<string> {
  if ('action' in event) {
    if (event.action !== 'expirePrevious') throw new Error('Unknown action.');
    return dropExpiredPrevious(deps);
  }
  const { Step: step, ClientRequestToken: token } = event;
  const info = await deps.store.describe();
  if (!info.rotationEnabled) throw new Error('Rotation is not enabled for the webhook secret.');
  const stages = info.versions[token];
  if (!stages) throw new Error(`Version ${token} of the webhook secret has no stage.`);
  if (stages.includes('AWSCURRENT')) return 'already current';
  if (!stages.includes('AWSPENDING') && step !== 'createSecret')
    throw new Error(`Version ${token} of the webhook secret is not AWSPENDING.`);

  switch (step) {
    case 'createSecret': {
      if ((await deps.store.version(token, 'AWSPENDING')) !== undefined) return 'already created';
      const before = await deps.store.current();
      if (before === undefined) throw new Error('The webhook secret has no current value.');
      const stored = readStoredSecret(before);
      let next: string;
      try {
        next = (
          await deps.endpoints.rotateSecret(deps.endpointId, {
            keep_old_secret_active_for_24_hours: true,
          })
        ).signing_secret;
      } catch (error) {
        throw new Error(
          explainEndpointError(error, `rotate the secret of webhook endpoint ${deps.endpointId}`),
        );
      }
      await deps.store.putPending(
        token,
        serialiseStoredSecret(rotatedSecret(stored, next, deps.now())),
      );
      return 'created';
    }
    case 'setSecret':
      return 'nothing to set: OpenAI issued the secret';
    case 'testSecret': {
      const pending = await deps.store.version(token, 'AWSPENDING');
      if (pending === undefined) throw new Error(`Version ${token} has no value.`);
      // What the ingress will do with it: throws if it could not verify with it.
      parseWebhookSecrets(pending);
      const endpoint = await deps.endpoints.retrieve(deps.endpointId);
      if (!hintMatches(endpoint.signing_secret_hint, readStoredSecret(pending).current))
        throw new Error(
          `OpenAI's signing secret hint for ${deps.endpointId} does not match the new secret: another rotation may have happened meanwhile.`,
        );
      return 'tested';
    }
    case 'finishSecret': {
      const current = Object.entries(info.versions).find(([, s]) => s.includes('AWSCURRENT'));
      if (!current) throw new Error('The webhook secret has no AWSCURRENT version.');
      await deps.store.promote(token, current[0]);
      count(deps, ROTATION_METRICS.rotations);
      return 'finished';
    }
  }
}

async function dropExpiredPrevious(deps: RotationDeps): Promise<string> {
  const info = await deps.store.describe();
  const versions = Object.values(info.versions);
  // A rotation under way owns the secret until it finishes.
  if (versions.some((s) => s.includes('AWSPENDING') && !s.includes('AWSCURRENT')))
    return 'rotation in progress';
  const value = await deps.store.current();
  if (value === undefined) return 'no value';
  const next = expirePrevious(readStoredSecret(value), deps.now());
  if (!next) return 'nothing due';
  await deps.store.putCurrent(serialiseStoredSecret(next));
  count(deps, ROTATION_METRICS.expired);
  return 'previous dropped';
}

function count(deps: RotationDeps, name: string): void {
  const line = JSON.stringify({
    _aws: {
      Timestamp: deps.now(),
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [['Stack']],
          Metrics: [{ Name: name, Unit: 'Count' }],
        },
      ],
    },
    Stack: deps.stackName ?? 'unknown',
    [name]: 1,
  });
  (deps.emit ?? ((l: string) => process.stdout.write(`${l}\n`)))(line);
}

export function createRotationHandler(deps: RotationDeps) {
  return async (event: RotationEvent): Promise<void> => {
    const step = 'action' in event ? event.action : event.Step;
    try {
      const did = await rotationStep(event, deps);
      deps.log.info('webhook secret rotation step', { step, did });
    } catch (error) {
      deps.log.error('webhook secret rotation failed', { step, error: errorMessage(error) });
      count(deps, ROTATION_METRICS.failures);
      throw error;
    }
  };
}

function depsFromEnv(env: NodeJS.ProcessEnv): RotationDeps {
  const client = new SecretsManagerClient(awsClientConfig());
  return {
    endpoints: webhookEndpointsFromEnv(env, client),
    endpointId: requireEnv(env, WEBHOOK_ENDPOINT_ID_ENV),
    store: new SecretsManagerWebhookSecret(client, requireEnv(env, ENV.webhookSecretId)),
    log: createLogger({
      service: 'webhook-secret-rotation',
      level: parseLogLevel(env[ENV.logLevel]),
    }),
    now: Date.now,
    ...(env[ENV.stackName] ? { stackName: env[ENV.stackName] } : {}),
  };
}

let built: ((event: RotationEvent) => Promise<void>) | undefined;
export const handler = (event: RotationEvent) => {
  built ??= createRotationHandler(depsFromEnv(process.env));
  return built(event);
};
