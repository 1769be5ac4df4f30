import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { awsClientConfig, QUICK_CALLS, sqsClientConfig } from '#adapters/aws-clients';
import { DynamoCallCommands } from '#adapters/dynamo-call-commands';
import { DynamoCallStore } from '#adapters/dynamo-call-store';
import { SqsControlQueue } from '#adapters/sqs-control-queue';
import { type CallControlDeps, commandLimitsOf } from '#core/calls/call-control';
import { parseCallsConfig } from '#core/calls/calls-config';
import { ENV, numberEnv, requireEnv } from '#core/env';
import { createLogger, type Logger, parseLogLevel } from '#core/observability/logger';

/** How long command items are kept: a day, long enough to read a result after the call. */
export const COMMAND_TTL_SECONDS = 24 * 3600;

/**
 * The call-control API's wiring (the Lambda, local mode, `sendCallCommand`): the table, the calls
 * config (for the tools and transfer targets a command may name), DynamoDB and SQS clients with
 * quick-call timeouts (each call answers in milliseconds in-region).
 */
export function callControlDepsFromEnv(
  env: NodeJS.ProcessEnv,
  log: Logger = createLogger({ service: 'call-control', level: parseLogLevel(env[ENV.logLevel]) }),
): CallControlDeps {
  const tableName = requireEnv(env, ENV.tableName);
  const config = parseCallsConfig(requireEnv(env, ENV.callsConfig));
  const documents = DynamoDBDocumentClient.from(
    new DynamoDBClient(awsClientConfig(undefined, QUICK_CALLS)),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  // The endpoint overrides (local mode) are the process's, as the SDK reads them.
  const sqs = new SQSClient(sqsClientConfig(process.env, QUICK_CALLS));
  const commands = new DynamoCallCommands(documents, tableName);
  return {
    calls: new DynamoCallStore(documents, tableName),
    commands,
    router: {
      ownerOf: (callId) => commands.ownerOf(callId),
      nudge: (address, nudge) =>
        SqsControlQueue.nudge(sqs, address, nudge).catch((error: unknown) => {
          // A queue that is gone (its worker stopped): not remembered any more.
          commands.forgetAddress(address);
          throw error;
        }),
    },
    limits: commandLimitsOf(config),
    clock: Date.now,
    random: () => randomBytes(6).toString('hex'),
    ttlSeconds: numberEnv(env, 'COMMAND_TTL_SECONDS', COMMAND_TTL_SECONDS),
    log,
  };
}
