import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { awsClientConfig } from '../shared/adapters/aws-clients';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store';
import { DynamoWebhookLedger } from '../shared/adapters/dynamo-webhook-ledger';
import { LambdaUserHandler } from '../shared/adapters/lambda-user-handler';
import { DEFAULT_OPENAI_BASE_URL, OpenAiClient } from '../shared/adapters/openai-client';
import { CachedSecret, SecretsManagerSource } from '../shared/adapters/secrets-manager-source';
import { isCategory } from '../shared/core/categories';
import { ENV, numberEnv, requireEnv } from '../shared/env';
import { createLogger, parseLogLevel } from '../shared/logger';
import { OpenAiHydrator } from './hydration';
import { type ConsumerDeps, createConsumerHandler, type UserHandler } from './process-event';

/**
 * Builds a category consumer from its environment, once per cold start. `bundledUserHandler` is
 * the user's own code when it was bundled into this function (see the generated entry in lib/).
 */
export function consumerDepsFromEnv(
  env: NodeJS.ProcessEnv,
  bundledUserHandler?: UserHandler,
): ConsumerDeps {
  const category = requireEnv(env, ENV.category);
  if (!isCategory(category)) throw new Error(`Unknown category "${category}".`);
  const tableName = requireEnv(env, ENV.tableName);
  const dynamo = new DynamoDBClient(awsClientConfig());
  const documents = DynamoDBDocumentClient.from(dynamo, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const log = createLogger({
    service: `consumer-${category}`,
    level: parseLogLevel(env[ENV.logLevel]),
  });
  const openAi = openAiClientFromEnv(env);
  const userFunction = env[ENV.userHandlerFunction];
  const userHandler =
    bundledUserHandler ??
    (userFunction
      ? new LambdaUserHandler(new LambdaClient(awsClientConfig()), userFunction).handle
      : undefined);
  return {
    store: new DynamoEventStore(documents, tableName),
    ledger: new DynamoWebhookLedger(dynamo, tableName),
    ...(openAi && env[ENV.hydrate] !== 'false' ? { hydrator: new OpenAiHydrator(openAi) } : {}),
    ...(userHandler ? { userHandler } : {}),
    eventTtlSeconds: numberEnv(env, ENV.eventTtlSeconds, 90 * 24 * 3600),
    clock: Date.now,
    log,
  };
}

/** The OpenAI API key lives in Secrets Manager; no secret id means no OpenAI calls. */
export function openAiClientFromEnv(env: NodeJS.ProcessEnv): OpenAiClient | undefined {
  const secretId = env[ENV.openAiKeySecretId];
  if (!secretId) return undefined;
  const source = new SecretsManagerSource(new SecretsManagerClient(awsClientConfig()));
  const apiKey = new CachedSecret(
    async () => (await source.getSecretString(secretId)).trim(),
    300_000,
  );
  return new OpenAiClient({
    baseUrl: env[ENV.openAiBaseUrl] || DEFAULT_OPENAI_BASE_URL,
    apiKey: () => apiKey.get(),
  });
}

export function consumerHandlerFromEnv(env: NodeJS.ProcessEnv, bundledUserHandler?: UserHandler) {
  return createConsumerHandler(consumerDepsFromEnv(env, bundledUserHandler));
}
