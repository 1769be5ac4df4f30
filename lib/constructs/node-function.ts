import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ENV } from '#core/env';
import { type LoggingProps, resolveLogging } from './logging';
import { LAMBDA_MEMORY, PropsCheck } from './validation';

export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Variables NodeFunction sets itself; `environment` may not set them. */
const OWN_VARIABLES = ['NODE_OPTIONS', ENV.stackName, ENV.logLevel] as const;

export interface NodeFunctionProps {
  /** The handler's source file (TypeScript or JavaScript), which exports `handler`. */
  readonly entry: string;
  /** The function's description (at most 256 characters); its role gets it too. */
  readonly description: string;
  /**
   * The handler's own variables. They follow `NODE_OPTIONS` and `STACK_NAME` and precede
   * `LOG_LEVEL` (from `logging.logLevel`), which NodeFunction sets itself. @default none
   */
  readonly environment?: Readonly<Record<string, string>>;
  /** Memory in MiB (128 to 10240); CPU grows with it. @default 128 */
  readonly memorySize?: number;
  /** 1 second to 15 minutes. @default Duration.seconds(3) */
  readonly timeout?: Duration;
  /** Concurrency reserved for (and capping) the function. @default none: the account's pool */
  readonly reservedConcurrentExecutions?: number;
  /** Log group retention and removal policy, `LOG_LEVEL` and X-Ray tracing. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/**
 * The one way this project builds a Lambda function: Node 22 on ARM64 (cheaper per ms), an ESM
 * bundle with the AWS SDK clients bundled in (pinned versions, tree-shaken, instead of whatever
 * the runtime ships), source maps on, and a log group with a retention.
 */
export class NodeFunction extends Construct {
  readonly fn: NodejsFunction;
  readonly logGroup: LogGroup;
  readonly role: Role;

  constructor(scope: Construct, id: string, props: NodeFunctionProps) {
    super(scope, id);
    const check = new PropsCheck('NodeFunction', id);
    const logging = resolveLogging(props.logging, check);
    check
      .that(
        Token.isUnresolved(props.entry) || fs.existsSync(props.entry),
        'entry',
        `must be an existing file; ${props.entry} does not exist.`,
      )
      .that(
        Token.isUnresolved(props.description) || props.description.length <= 256,
        'description',
        `must be at most 256 characters; it has ${props.description.length}.`,
      )
      .integer('memorySize', props.memorySize, LAMBDA_MEMORY.min, LAMBDA_MEMORY.max)
      .duration('timeout', props.timeout, { min: Duration.seconds(1), max: Duration.minutes(15) })
      .integer('reservedConcurrentExecutions', props.reservedConcurrentExecutions, 0);
    for (const name of Object.keys(props.environment ?? {})) {
      check
        .that(
          /^[a-zA-Z]\w*$/.test(name),
          `environment.${name}`,
          'is not a valid variable name (a letter, then letters, digits and _).',
        )
        .that(
          !(OWN_VARIABLES as readonly string[]).includes(name),
          `environment.${name}`,
          'is set by NodeFunction itself (LOG_LEVEL comes from logging.logLevel).',
        )
        .that(!name.startsWith('AWS_'), `environment.${name}`, 'is reserved by Lambda.');
    }
    check.assert();

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: logging.logRetention,
      removalPolicy: logging.logRemovalPolicy,
    });
    // Our own role instead of AWSLambdaBasicExecutionRole: it may write to this log group only.
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.logGroup.grantWrite(this.role);
    this.fn = new NodejsFunction(this, 'Function', {
      role: this.role,
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 128,
      timeout: props.timeout ?? Duration.seconds(3),
      logGroup: this.logGroup,
      // Our handlers write JSON lines themselves (and EMF later); keep the text format so Lambda
      // passes them through unwrapped.
      loggingFormat: LoggingFormat.TEXT,
      ...(logging.tracing ? { tracing: Tracing.ACTIVE } : {}),
      ...(props.reservedConcurrentExecutions !== undefined
        ? { reservedConcurrentExecutions: props.reservedConcurrentExecutions }
        : {}),
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        // The `Stack` dimension of every metric the function emits.
        [ENV.stackName]: Stack.of(this).stackName,
        ...props.environment,
        [ENV.logLevel]: logging.logLevel,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        mainFields: ['module', 'main'],
        externalModules: [],
        // Some CommonJS dependencies call require(); give the ESM bundle one.
        banner:
          "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
    });
    if (logging.tracing) {
      Validations.of(this.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords accept only Resource "*".',
      });
    }
    Validations.of(this.fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Pinned to nodejs22.x on purpose: the sideband container and local mode run Node 22 too, so one runtime is tested everywhere.',
    });
  }
}

export const seconds = (value: number) => Duration.seconds(value);
