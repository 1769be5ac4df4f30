import { type CfnElement, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
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
import { DEFAULTS } from '../config';
import { PropsCheck } from './validation';

export interface EventStoreProps {
  /**
   * What happens to the table (and every event, object state and call record in it) when it
   * leaves the stack. @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** A function the store can bind: it gets the table's name in its environment. */
export type BindableFunction = IFunction & { addEnvironment(key: string, value: string): unknown };

/**
 * The DynamoDB table for dedupe records, events and object state: on-demand, encrypted with an
 * AWS managed key, point-in-time recovery on, and TTL on `expiresAt`.
 */
export class EventStore extends Construct {
  readonly table: TableV2;

  constructor(scope: Construct, id: string, props: EventStoreProps = {}) {
    super(scope, id);
    new PropsCheck('EventStore', id)
      .oneOf('removalPolicy', props.removalPolicy, Object.values(RemovalPolicy))
      .assert();
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE_SCHEMA.sortKey, type: AttributeType.STRING },
      billing: Billing.onDemand(),
      encryption: TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      removalPolicy: props.removalPolicy ?? DEFAULTS.removalPolicy,
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

  /** The table's name. */
  get tableName(): string {
    return this.table.tableName;
  }

  /** Read/write on the table and its index, plus `TABLE_NAME` in the function's environment. */
  bindReadWrite(fn: BindableFunction): Grant {
    fn.addEnvironment(ENV.tableName, this.table.tableName);
    return this.table.grantReadWriteData(fn);
  }

  /** Just what the ingress does: claim (PutItem) and release (DeleteItem) dedupe records. */
  bindWebhookLedger(fn: BindableFunction): Grant {
    fn.addEnvironment(ENV.tableName, this.table.tableName);
    return this.table.grant(fn, 'dynamodb:PutItem', 'dynamodb:DeleteItem');
  }

  /** Read access to the table and its index (the operator's view). */
  grantReadData(grantee: IGrantable): Grant {
    return this.table.grantReadData(grantee);
  }

  /** Read/write access to the table and its index, for a grantee that is not a function. */
  grantReadWriteData(grantee: IGrantable): Grant {
    return this.table.grantReadWriteData(grantee);
  }

  /** Requests DynamoDB throttled, summed over the table's operations. */
  metricThrottledRequests(): IMetric {
    return this.table.metricThrottledRequestsForOperations();
  }

  /** DynamoDB system errors (5xx), summed over the table's operations. */
  metricSystemErrors(): IMetric {
    return this.table.metricSystemErrorsForOperations();
  }

  /**
   * The grants above cover the table's indexes too, which cdk-nag reports as a wildcard: this
   * acknowledges that finding on `grantee` (the construct that holds the grantee's policy).
   */
  acknowledgeIndexGrant(grantee: Construct): void {
    const logicalId = Stack.of(this).getLogicalId(this.table.node.defaultChild as CfnElement);
    Validations.of(grantee).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>/index/*]`,
      reason:
        'Access to the event table includes its own indexes (the category listing index), nothing else.',
    });
  }
}
