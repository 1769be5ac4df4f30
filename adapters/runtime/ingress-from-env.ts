import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { ENV, numberEnv, requireEnv } from '#core/env';
import { createLogger, parseLogLevel } from '#core/observability/logger';
import { parseQueueUrls } from '#core/queue-urls';
import type { IngressDeps } from '#core/webhooks/receive-webhook';
import { DEFAULT_TOLERANCE_SECONDS, parseWebhookSecrets } from '#core/webhooks/signature';
import { awsClientConfig, hooked, QUICK_CALLS, sqsClientConfig } from '../aws-clients';
import { DynamoWebhookLedger } from '../dynamo-webhook-ledger';
import { metricsFromEnv } from '../metrics-from-env';
import { CachedSecret, SecretsManagerSource } from '../secrets-manager-source';
import { SqsEventPublisher } from '../sqs-event-publisher';
import { payloadStoreFromEnv } from './payload-store-from-env';

/** Builds the ingress from its environment, once per cold start. */
export function ingressDepsFromEnv(env: NodeJS.ProcessEnv): IngressDeps {
  const log = createLogger({ service: 'ingress', level: parseLogLevel(env[ENV.logLevel]) });
  const secretSource = new SecretsManagerSource(
    new SecretsManagerClient(awsClientConfig(undefined, QUICK_CALLS)),
  );
  const secretId = requireEnv(env, ENV.webhookSecretId);
  const secrets = new CachedSecret(
    async () => parseWebhookSecrets(await secretSource.getSecretString(secretId)),
    numberEnv(env, ENV.secretCacheSeconds, 300) * 1000,
  );
  // Start loading during init so the first request does not wait for it.
  secrets
    .get()
    .catch((error: unknown) => log.error('secret prefetch failed', { error: String(error) }));
  return {
    config: {
      toleranceSeconds: numberEnv(env, ENV.toleranceSeconds, DEFAULT_TOLERANCE_SECONDS),
      maxBodyBytes: numberEnv(env, ENV.maxBodyBytes, 1024 * 1024),
      dedupeTtlSeconds: numberEnv(env, ENV.dedupeTtlSeconds, 7 * 24 * 3600),
      // How long the event head (listing row) is kept: set by EventStore.bindWebhookLedger.
      eventTtlSeconds: numberEnv(env, ENV.eventTtlSeconds, 90 * 24 * 3600),
    },
    secrets,
    ledger: new DynamoWebhookLedger(
      hooked(new DynamoDBClient(awsClientConfig(undefined, QUICK_CALLS)), 'dynamodb'),
      requireEnv(env, ENV.tableName),
    ),
    publisher: new SqsEventPublisher(
      hooked(new SQSClient(sqsClientConfig(process.env, QUICK_CALLS)), 'sqs'),
      parseQueueUrls(env),
    ),
    ...payloadStoreFromEnv(env),
    clock: Date.now,
    newToken: randomUUID,
    log,
    metrics: metricsFromEnv(env, 'ingress'),
  };
}
