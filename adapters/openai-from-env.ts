import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ENV } from '#core/env';
import { awsClientConfig } from './aws-clients';
import { DEFAULT_OPENAI_BASE_URL, OpenAiClient } from './openai-client';
import { CachedSecret, SecretsManagerSource } from './secrets-manager-source';

export interface OpenAiFromEnv {
  readonly client: OpenAiClient;
  /** The API key, cached and reloaded every 5 minutes, so a rotated key is picked up. */
  readonly apiKey: () => Promise<string>;
  readonly baseUrl: string;
}

/**
 * The OpenAI API client for Lambdas and the sideband worker alike. The key lives in Secrets
 * Manager; no secret id means no OpenAI calls.
 */
export function openAiFromEnv(env: NodeJS.ProcessEnv): OpenAiFromEnv | undefined {
  const secretId = env[ENV.openAiKeySecretId];
  if (!secretId) return undefined;
  const source = new SecretsManagerSource(new SecretsManagerClient(awsClientConfig()));
  const key = new CachedSecret(
    async () => (await source.getSecretString(secretId)).trim(),
    300_000,
  );
  const apiKey = () => key.get();
  const baseUrl = env[ENV.openAiBaseUrl] || DEFAULT_OPENAI_BASE_URL;
  return { client: new OpenAiClient({ baseUrl, apiKey }), apiKey, baseUrl };
}
