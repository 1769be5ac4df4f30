import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECSClient } from '@aws-sdk/client-ecs';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type CallsConfig, parseCallsConfig } from '#core/calls/calls-config';
import { handleIncomingCall, type IncomingCallDeps } from '#core/calls/incoming-call';
import { ENV, numberEnv, requireEnv } from '#core/env';
import { createLogger, parseLogLevel } from '#core/observability/logger';
import type { MetricsPublisher } from '#core/observability/metrics';
import { isCategory } from '#core/webhooks/categories';
import {
  type ConsumerDeps,
  createConsumerHandler,
  type UserHandler,
} from '#core/webhooks/process-event';
import { awsClientConfig, hooked, QUICK_CALLS, sqsClientConfig } from '../aws-clients';
import { DynamoCallStore } from '../dynamo-call-store';
import { DynamoEventStore } from '../dynamo-event-store';
import { EcsServiceScaler } from '../ecs-service-scaler';
import { LambdaUserHandler } from '../lambda-user-handler';
import { metricsFromEnv } from '../metrics-from-env';
import { OpenAiCallsApi } from '../openai-calls-api';
import type { OpenAiClient } from '../openai-client';
import { openAiFromEnv } from '../openai-from-env';
import { OpenAiHydrator } from '../openai-hydrator';
import { SqsSignalPublisher } from '../sqs-signal-publisher';
import { payloadStoreFromEnv } from './payload-store-from-env';

/**
 * Builds a category consumer from its environment, once per cold start. `bundledUserHandler` is
 * the user's own code when it was bundled into this function (see the generated entry in lib/).
 */
export function consumerDepsFromEnv(
  env: NodeJS.ProcessEnv,
  bundledUserHandler?: UserHandler,
  metricsPublisher?: MetricsPublisher,
): ConsumerDeps {
  const category = requireEnv(env, ENV.category);
  if (!isCategory(category)) throw new Error(`Unknown category "${category}".`);
  const tableName = requireEnv(env, ENV.tableName);
  const dynamo = hooked(new DynamoDBClient(awsClientConfig(undefined, QUICK_CALLS)), 'dynamodb');
  const documents = DynamoDBDocumentClient.from(dynamo, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const log = createLogger({
    service: `consumer-${category}`,
    level: parseLogLevel(env[ENV.logLevel]),
  });
  const metrics = metricsPublisher ?? metricsFromEnv(env, `consumer-${category}`);
  const openAi = openAiFromEnv(env)?.client;
  const userFunction = env[ENV.userHandlerFunction];
  const userHandler =
    bundledUserHandler ??
    (userFunction
      ? new LambdaUserHandler(new LambdaClient(awsClientConfig()), userFunction).handle
      : undefined);
  const callsJson = env[ENV.callsConfig];
  const incomingCalls =
    category === 'realtime' && callsJson && openAi
      ? incomingCallDepsFromEnv(env, parseCallsConfig(callsJson), {
          documents,
          tableName,
          openAi,
          metrics,
        })
      : undefined;
  return {
    ...(incomingCalls
      ? {
          categoryHandler: async (event, eventLog) =>
            void (await handleIncomingCall(incomingCalls, event, eventLog)),
        }
      : {}),
    store: new DynamoEventStore(documents, tableName),
    ...(openAi && env[ENV.hydrate] !== 'false' ? { hydrator: new OpenAiHydrator(openAi) } : {}),
    ...(userHandler ? { userHandler } : {}),
    ...payloadStoreFromEnv(env),
    eventTtlSeconds: numberEnv(env, ENV.eventTtlSeconds, 90 * 24 * 3600),
    clock: Date.now,
    log,
    metrics,
    ...maxReceiveCountFromEnv(env),
  };
}

/**
 * The queue's `maxReceiveCount`, which the fan-out sets beside the redrive policy: with it, a
 * failure on the last receive is logged (`event dead-lettered`) and counted
 * (`EventsDeadLettered`). Unset, nothing is said of the DLQ; a value that is not an integer from
 * 1 to 1000 (the SQS range) fails the cold start rather than silently never matching.
 */
export function maxReceiveCountFromEnv(env: NodeJS.ProcessEnv): { maxReceiveCount?: number } {
  const raw = env[ENV.maxReceiveCount];
  if (raw === undefined || raw === '') return {};
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 1000)
    throw new Error(
      `Environment variable ${ENV.maxReceiveCount} must be an integer from 1 to 1000; got "${raw}".`,
    );
  return { maxReceiveCount: value };
}

function incomingCallDepsFromEnv(
  env: NodeJS.ProcessEnv,
  config: CallsConfig,
  shared: {
    documents: DynamoDBDocumentClient;
    tableName: string;
    openAi: OpenAiClient;
    metrics: MetricsPublisher;
  },
): IncomingCallDeps {
  const { documents, tableName, openAi, metrics } = shared;
  const cluster = env[ENV.ecsCluster];
  const service = env[ENV.ecsService];
  return {
    store: new DynamoCallStore(documents, tableName),
    api: new OpenAiCallsApi(openAi),
    signals: new SqsSignalPublisher(
      hooked(new SQSClient(sqsClientConfig(process.env, QUICK_CALLS)), 'sqs'),
      requireEnv(env, ENV.signalQueueUrl),
    ),
    ...(cluster && service
      ? { scaler: new EcsServiceScaler(new ECSClient(awsClientConfig()), cluster, service) }
      : {}),
    policy: config.policy,
    userTools: config.tools.map(({ name, description, parameters }) => ({
      name,
      description,
      parameters,
    })),
    transferTargets: Object.keys(config.transferTargets),
    callTtlSeconds: config.recordTtlSeconds,
    clock: Date.now,
    metrics,
  };
}

export function consumerHandlerFromEnv(env: NodeJS.ProcessEnv, bundledUserHandler?: UserHandler) {
  return createConsumerHandler(consumerDepsFromEnv(env, bundledUserHandler));
}
