import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DEFAULT_OPENAI_BASE_URL } from '#adapters/openai-client';
import { OpenAiWebhookEndpoints } from '#adapters/openai-webhook-endpoints';
import { CachedSecret, SecretsManagerSource } from '#adapters/secrets-manager-source';
import { ENV, requireEnv } from '#core/env';

/**
 * OpenAI's webhook-endpoint API for the Lambdas that manage the endpoint (the custom resource in
 * lambdas/webhook-endpoint, the rotation function in lambdas/webhook-secret-rotation): the API
 * key read from Secrets Manager (`ENV.openAiKeySecretId`, required) and cached a minute, the base
 * URL from `ENV.openAiBaseUrl` (default: the public API).
 */
export function webhookEndpointsFromEnv(
  env: NodeJS.ProcessEnv,
  client: SecretsManagerClient,
): OpenAiWebhookEndpoints {
  const apiKeySecretId = requireEnv(env, ENV.openAiKeySecretId);
  const source = new SecretsManagerSource(client);
  const key = new CachedSecret(
    async () => (await source.getSecretString(apiKeySecretId)).trim(),
    60_000,
  );
  return new OpenAiWebhookEndpoints({
    baseUrl: env[ENV.openAiBaseUrl] || DEFAULT_OPENAI_BASE_URL,
    apiKey: () => key.get(),
  });
}
