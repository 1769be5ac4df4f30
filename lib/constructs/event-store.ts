import { type CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { IMetric, Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  AttributeType,
  Billing,
  ProjectionType,
  TableEncryptionV2,
  TableV2,
} from 'aws-cdk-lib/aws-dynamodb';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { BlockPublicAccess, Bucket, BucketEncryption } from 'aws-cdk-lib/aws-s3';
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
  /**
   * How long a claim-checked body stays in the payload bucket: the stack's `eventRetention`, so
   * it lives as long as the event item that refers to it. @default Duration.days(90)
   */
  readonly eventRetention?: Duration;
}

/** Where claim-checked bodies live in the payload bucket (`adapters/s3-payload-store.ts`). */
const PAYLOAD_PREFIX = 'payloads/';

/** A function the store can bind: it gets the table's name in its environment. */
export type BindableFunction = IFunction & { addEnvironment(key: string, value: string): unknown };

/**
 * The DynamoDB table for events (a head, written once by the ingress as the dedupe record and
 * listing row, and a body with the payload and status), object state and call records: on-demand, encrypted with an
 * AWS managed key, point-in-time recovery on, TTL on `expiresAt`, and deletion protection on
 * whenever the table is retained. Beside it, the payload bucket for claim-checked bodies (those
 * too large for a queue message or an item): encrypted, TLS only, no public access, objects
 * expiring after `eventRetention`.
 */
export class EventStore extends Construct {
  readonly table: TableV2;
  readonly payloadBucket: Bucket;
  /** How long events are kept (their items' TTL and the payload bucket's lifecycle). */
  readonly eventRetention: Duration;

  constructor(scope: Construct, id: string, props: EventStoreProps = {}) {
    super(scope, id);
    const eventRetention = props.eventRetention ?? DEFAULTS.eventRetention;
    this.eventRetention = eventRetention;
    new PropsCheck('EventStore', id)
      .oneOf('removalPolicy', props.removalPolicy, Object.values(RemovalPolicy))
      .duration('eventRetention', props.eventRetention, { min: Duration.days(1) })
      .assert();
    const removalPolicy = props.removalPolicy ?? DEFAULTS.removalPolicy;
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE_SCHEMA.sortKey, type: AttributeType.STRING },
      billing: Billing.onDemand(),
      encryption: TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      removalPolicy,
      // A retained table is one that must not be lost: a stray `cdk destroy` or console click
      // must not delete it either.
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
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

    this.payloadBucket = new Bucket(this, 'Payloads', {
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      versioned: false,
      // The objects are content-addressed copies of event bodies: they expire with the events.
      lifecycleRules: [{ expiration: eventRetention }],
      // Follows the table. A non-empty bucket is left behind on DESTROY (CloudFormation cannot
      // delete it); its objects expire on their own.
      removalPolicy,
    });
    Validations.of(this.payloadBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        "The bucket holds copies of webhook bodies written and read only by the stack's own functions; the event table records every access that matters.",
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

  /**
   * Just what the ingress does with event heads (the dedupe records and listing rows): read one
   * (GetItem) and put one (PutItem). Also gives it the event retention, which the head shares
   * with the event.
   */
  bindWebhookLedger(fn: BindableFunction): Grant {
    fn.addEnvironment(ENV.tableName, this.table.tableName);
    fn.addEnvironment(ENV.eventTtlSeconds, String(this.eventRetention.toSeconds()));
    return this.table.grant(fn, 'dynamodb:GetItem', 'dynamodb:PutItem');
  }

  /** The ingress's claim check: PutObject on the payload bucket, and its name in the environment. */
  bindPayloadWriter(fn: BindableFunction): Grant {
    return this.bindPayloads(fn, 's3:PutObject');
  }

  /** A consumer's claim check: GetObject on the payload bucket, and its name in the environment. */
  bindPayloadReader(fn: BindableFunction): Grant {
    return this.bindPayloads(fn, 's3:GetObject');
  }

  private bindPayloads(fn: BindableFunction, action: string): Grant {
    fn.addEnvironment(ENV.payloadBucket, this.payloadBucket.bucketName);
    return Grant.addToPrincipal({
      grantee: fn,
      actions: [action],
      resourceArns: [this.payloadBucket.arnForObjects(`${PAYLOAD_PREFIX}*`)],
    });
  }

  /**
   * The payload grants name the bucket's `payloads/` keys, which cdk-nag reports as a wildcard:
   * this acknowledges that finding on `grantee` (the construct that holds the grantee's policy).
   */
  acknowledgePayloadGrant(grantee: Construct): void {
    const logicalId = Stack.of(this).getLogicalId(
      this.payloadBucket.node.defaultChild as CfnElement,
    );
    Validations.of(grantee).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>/${PAYLOAD_PREFIX}*]`,
      reason:
        "Claim-checked bodies are content-addressed objects under payloads/ in the stack's own bucket; their keys are not known in advance.",
    });
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

  /** Writes DynamoDB throttled (`WriteThrottleEvents`), one metric, for graphs. */
  metricWriteThrottles(): Metric {
    return this.table.metric('WriteThrottleEvents', {
      statistic: 'Sum',
      period: Duration.minutes(1),
    });
  }

  /** Reads DynamoDB throttled (`ReadThrottleEvents`), one metric, for graphs. */
  metricReadThrottles(): Metric {
    return this.table.metric('ReadThrottleEvents', {
      statistic: 'Sum',
      period: Duration.minutes(1),
    });
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
