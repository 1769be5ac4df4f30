import {
  CreateTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { TABLE_SCHEMA } from '#core/table-schema';
import { CATEGORIES, type Category } from '#core/webhooks/categories';

/** Creates the table with the same schema the CDK construct deploys (both read TABLE_SCHEMA). */
export async function createTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const index = TABLE_SCHEMA.eventsByCategoryIndex;
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: TABLE_SCHEMA.partitionKey, AttributeType: 'S' },
          { AttributeName: TABLE_SCHEMA.sortKey, AttributeType: 'S' },
          { AttributeName: index.partitionKey, AttributeType: 'S' },
          { AttributeName: index.sortKey, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
          { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: index.name,
            KeySchema: [
              { AttributeName: index.partitionKey, KeyType: 'HASH' },
              { AttributeName: index.sortKey, KeyType: 'RANGE' },
            ],
            Projection: {
              ProjectionType: 'INCLUDE',
              NonKeyAttributes: [...index.projectedAttributes],
            },
          },
        ],
      }),
    );
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
      }),
    );
  } catch (error) {
    // Local mode keeps its table across restarts.
    if (!(error instanceof ResourceInUseException)) throw error;
  }
}

export interface QueuePair {
  readonly queueUrl: string;
  readonly queueArn: string;
  readonly dlqUrl: string;
  readonly dlqArn: string;
}

export interface QueueOptions {
  readonly maxReceiveCount: number;
  readonly visibilityTimeoutSeconds: number;
}

/** A queue and its DLQ per category, with the redrive policy the CDK construct sets. */
/** One queue with its DLQ. */
export async function createQueue(
  client: SQSClient,
  name: string,
  options: QueueOptions,
): Promise<QueuePair> {
  const dlqUrl = await createNamedQueue(client, `${name}-dlq`, {});
  const dlqArn = await queueArn(client, dlqUrl);
  const queueUrl = await createNamedQueue(client, name, {
    VisibilityTimeout: String(options.visibilityTimeoutSeconds),
    RedrivePolicy: JSON.stringify({
      deadLetterTargetArn: dlqArn,
      maxReceiveCount: options.maxReceiveCount,
    }),
  });
  return { queueUrl, queueArn: await queueArn(client, queueUrl), dlqUrl, dlqArn };
}

export async function createQueues(
  client: SQSClient,
  prefix: string,
  options: QueueOptions,
): Promise<Record<Category, QueuePair>> {
  const pairs = {} as Record<Category, QueuePair>;
  for (const category of CATEGORIES) {
    pairs[category] = await createQueue(client, `${prefix}-${category}`, options);
  }
  return pairs;
}

async function createNamedQueue(
  client: SQSClient,
  name: string,
  attributes: Record<string, string>,
): Promise<string> {
  const result = await client.send(
    new CreateQueueCommand({ QueueName: name, Attributes: attributes }),
  );
  if (!result.QueueUrl) throw new Error(`CreateQueue ${name} returned no URL.`);
  return result.QueueUrl;
}

async function queueArn(client: SQSClient, queueUrl: string): Promise<string> {
  const result = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  const arn = result.Attributes?.QueueArn;
  if (!arn) throw new Error(`No ARN for ${queueUrl}.`);
  return arn;
}
