import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientConfig } from '#adapters/aws-clients';
import { CachedSecret, SecretsManagerSource } from '#adapters/secrets-manager-source';
import { ENV } from '#core/env';
import type { IngressDeps } from '#core/webhooks/receive-webhook';
import { parseWebhookSecrets } from '#core/webhooks/signature';
import type { LocalPipeline } from './pipeline';
import { secretVersions } from './stand-ins/secrets-manager-versions';

/**
 * What `owh webhooks … --local` needs in state.json to register local mode with its OpenAI and
 * hand the running pipeline the new secret: the Secrets Manager stand-in (now with versions, so
 * PutSecretValue works on it) and the webhook secret's id there, which the ingress reads (its
 * cache reloads at once when a signature fails with the cached secrets), and the API key.
 */
export function webhookEndpointState(pipeline: LocalPipeline): Record<string, string> {
  secretVersions(pipeline.aws);
  const apiKey = pipeline.options.openAiApiKey ?? pipeline.simulator?.apiKey;
  return {
    awsEndpoint: pipeline.aws.endpoint,
    webhookSecretId: String(pipeline.env[ENV.webhookSecretId]),
    ...(apiKey ? { openAiApiKey: apiKey } : {}),
  };
}

/**
 * Local mode's ingress, reading the webhook secret as the deployed one does (Secrets Manager, the
 * same loader and cache) but reloading it whenever a signature fails, without the deployed 30 s
 * limit on forced reloads: a secret `owh webhooks register|rotate --local` just stored is used by
 * the very next delivery. `secretId` is the pipeline's (`<prefix>/webhook-secret`).
 */
export function adoptNewSecretsAtOnce(secretId: string) {
  return (deps: IngressDeps): IngressDeps => {
    const source = new SecretsManagerSource(new SecretsManagerClient(awsClientConfig()));
    return {
      ...deps,
      secrets: new CachedSecret(
        async () => parseWebhookSecrets(await source.getSecretString(secretId)),
        300_000,
        Date.now,
        0,
      ),
    };
  };
}
