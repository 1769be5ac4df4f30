import { type CfnElement, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  AttributeType,
  Billing,
  ProjectionType,
  TableEncryptionV2,
  TableV2,
} from 'aws-cdk-lib/aws-dynamodb';
import type { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import { TABLE_SCHEMA } from '#core/table-schema';

export interface EventStoreProps {
  /** @default RemovalPolicy.RETAIN (set by the stack's config) */
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The DynamoDB table for dedupe records, events and object state: on-demand, encrypted with an
 * AWS managed key, point-in-time recovery on, and TTL on `expiresAt`.
 */
export class EventStore extends Construct {
  readonly table: TableV2;

  constructor(scope: Construct, id: string, props: EventStoreProps) {
    super(scope, id);
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE_SCHEMA.sortKey, type: AttributeType.STRING },
      billing: Billing.onDemand(),
      encryption: TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      removalPolicy: props.removalPolicy,
      deletionProtection: false,
      globalSecondaryIndexes: [
        {
          indexName: TABLE_SCHEMA.eventsByCategoryIndex.name,
          partitionKey: {
            name: TABLE_SCHEMA.eventsByCategoryIndex.partitionKey,
            type: AttributeType.STRING,
          },
          sortKey: { name: TABLE_SCHEMA.eventsByCategoryIndex.sortKey, type: AttributeType.STRING },
          projectionType: ProjectionType.INCLUDE,
          nonKeyAttributes: [...TABLE_SCHEMA.eventsByCategoryIndex.projectedAttributes],
        },
      ],
    });
  }

  /** Read/write on the table and its index, plus `TABLE_NAME` in the function's environment. */
  bindReadWrite(fn: IFunction & { addEnvironment(key: string, value: string): unknown }): Grant {
    fn.addEnvironment(ENV.tableName, this.table.tableName);
    return this.table.grantReadWriteData(fn);
  }

  /** Just what the ingress does: claim (PutItem) and release (DeleteItem) dedupe records. */
  bindWebhookLedger(
    fn: IFunction & { addEnvironment(key: string, value: string): unknown },
  ): Grant {
    fn.addEnvironment(ENV.tableName, this.table.tableName);
    return this.table.grant(fn, 'dynamodb:PutItem', 'dynamodb:DeleteItem');
  }

  grantReadData(grantee: IGrantable): Grant {
    return this.table.grantReadData(grantee);
  }

  metricThrottledRequests(): IMetric {
    return this.table.metricThrottledRequestsForOperations();
  }

  metricSystemErrors(): IMetric {
    return this.table.metricSystemErrorsForOperations();
  }

  /** The grants above cover the table's indexes too, which cdk-nag reports as a wildcard. */
  acknowledgeIndexGrant(grantee: Construct): void {
    const logicalId = Stack.of(this).getLogicalId(this.table.node.defaultChild as CfnElement);
    Validations.of(grantee).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>/index/*]`,
      reason:
        'Access to the event table includes its own indexes (the category listing index), nothing else.',
    });
  }
}
