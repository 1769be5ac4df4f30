import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { awsClientConfig, sqsClientConfig } from '#adapters/aws-clients';

/** What the CLI operates on: the stack's `OperatorConfig` output, or local mode's state file. */
export interface OperatorConfig {
  readonly tableName: string;
  /** Category queues, and `signals` when phone calls are on. */
  readonly queues: Readonly<Record<string, { readonly queueUrl: string; readonly dlqUrl: string }>>;
  readonly dashboardName?: string;
}

export interface Target {
  readonly config: OperatorConfig;
  readonly documents: DynamoDBDocumentClient;
  readonly sqs: SQSClient;
  /** "stack OpenAiWebhooks (eu-west-1)" or "local mode". */
  readonly label: string;
}

/** A failure the user can act on: printed without a stack trace, with an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface TargetOptions {
  readonly stack?: string | undefined;
  readonly region?: string | undefined;
  readonly local?: boolean | undefined;
  readonly state?: string | undefined;
}

export const DEFAULT_STATE_FILE = path.resolve(import.meta.dirname, '..', '.local', 'state.json');

/** What `owh --local` and `npm run send` say when `npm start` is not running (exit code 1). */
export const NOT_RUNNING = 'local mode is not running: start it with `npm start`';

/** Whether a process with this pid exists (EPERM: it does, but is someone else's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function resolveTarget(options: TargetOptions): Promise<Target> {
  if (options.stack && options.local)
    throw new CliError('Choose one target: --stack NAME or --local, not both.', 2);
  if (options.stack) return stackTarget(options.stack, options.region);
  if (options.local) return localTarget(options.state ?? DEFAULT_STATE_FILE);
  throw new CliError(
    'No target: pass --stack NAME (a deployed stack) or --local (npm start), or set OWH_STACK.',
    2,
  );
}

async function stackTarget(stackName: string, region: string | undefined): Promise<Target> {
  const clientConfig = { ...awsClientConfig(), ...(region ? { region } : {}) };
  const cloudFormation = new CloudFormationClient(clientConfig);
  const where = region ?? (await cloudFormation.config.region().catch(() => 'no region'));
  let outputs: { OutputKey?: string | undefined; OutputValue?: string | undefined }[];
  try {
    const result = await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    outputs = result.Stacks?.[0]?.Outputs ?? [];
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/does not exist/i.test(message))
      throw new CliError(
        `Stack ${stackName} was not found in ${where}. Check --stack and --region.`,
      );
    throw new CliError(`Could not describe stack ${stackName} in ${where}: ${message}`);
  } finally {
    cloudFormation.destroy();
  }
  const raw = outputs.find((o) => o.OutputKey === 'OperatorConfig')?.OutputValue;
  if (!raw)
    throw new CliError(
      `Stack ${stackName} has no OperatorConfig output: deploy this version of the app first.`,
    );
  return {
    config: parseOperatorConfig(raw, `stack ${stackName}`),
    documents: documentClient(new DynamoDBClient(clientConfig)),
    sqs: new SQSClient({ ...sqsClientConfig(), ...(region ? { region } : {}) }),
    label: `stack ${stackName} (${where})`,
  };
}

function localTarget(stateFile: string): Target {
  let state: { dynamoEndpoint?: string; sqsEndpoint?: string; pid?: unknown } & Record<
    string,
    unknown
  >;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch {
    throw new CliError(`${NOT_RUNNING} (no readable ${stateFile}).`);
  }
  // npm start writes its pid; a file whose process is gone is stale (a crash, a kill -9).
  if (typeof state.pid === 'number' && !processAlive(state.pid))
    throw new CliError(
      `${NOT_RUNNING} (${stateFile} was left by process ${state.pid}, which has exited).`,
    );
  if (!state.dynamoEndpoint || !state.sqsEndpoint)
    throw new CliError(`${stateFile} lacks the stand-in endpoints; restart npm start.`);
  // The stand-ins accept any credentials; these keep the SDK from searching for real ones.
  const local = {
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  };
  return {
    config: parseOperatorConfig(JSON.stringify(state), stateFile),
    documents: documentClient(
      new DynamoDBClient({ ...awsClientConfig(state.dynamoEndpoint), ...local }),
    ),
    sqs: new SQSClient({
      ...awsClientConfig(state.sqsEndpoint),
      ...local,
      useQueueUrlAsEndpoint: false,
    }),
    label: 'local mode',
  };
}

export function parseOperatorConfig(raw: string, source: string): OperatorConfig {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new CliError(`The operator config of ${source} is not JSON.`);
  }
  const config = value as Partial<OperatorConfig>;
  const queuesOk =
    typeof config.queues === 'object' &&
    config.queues !== null &&
    Object.values(config.queues).every(
      (q) => typeof q?.queueUrl === 'string' && typeof q?.dlqUrl === 'string',
    );
  if (typeof config.tableName !== 'string' || !queuesOk)
    throw new CliError(`The operator config of ${source} lacks tableName or queues.`);
  return {
    tableName: config.tableName,
    queues: config.queues as OperatorConfig['queues'],
    ...(config.dashboardName ? { dashboardName: config.dashboardName } : {}),
  };
}

function documentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}
