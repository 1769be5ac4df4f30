import { startFauxqs } from 'fauxqs';
import type { TestProject } from 'vitest/node';
import { startDynamoDbLocal } from '../../local/stand-ins/dynamodb-local';

/** One DynamoDB Local (real jar, in memory) and one SQS emulator for the whole run. */
export default async function setup(project: TestProject) {
  const [dynamo, sqs] = await Promise.all([
    startDynamoDbLocal(),
    startFauxqs({ port: 0, host: '127.0.0.1', logger: false }),
  ]);
  project.provide('dynamoEndpoint', dynamo.endpoint);
  project.provide('sqsEndpoint', `http://127.0.0.1:${sqs.port}`);
  return async () => {
    await Promise.allSettled([dynamo.stop(), sqs.stop()]);
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoEndpoint: string;
    sqsEndpoint: string;
  }
}
