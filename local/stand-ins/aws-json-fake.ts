import { createServer, type Server } from 'node:http';

/**
 * A loopback stand-in for AWS services that speak the awsJson protocol and have no emulator here
 * (Secrets Manager now; ECS for the sideband service). It dispatches on `X-Amz-Target`, so the
 * real SDK clients talk to it over the real wire format.
 */
export type AwsJsonHandler = (input: Record<string, unknown>) => unknown;

export class AwsServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface AwsJsonFake {
  readonly endpoint: string;
  readonly secrets: Map<string, string>;
  /** Lambda functions by name, for `Invoke` (the REST-JSON protocol). A throw is a function error. */
  readonly functions: Map<string, (payload: unknown) => Promise<unknown>>;
  /** ECS services by name: their desired count, changed by `UpdateService`. */
  readonly services: Map<string, { desiredCount: number; runningCount: number }>;
  /** CloudFormation stacks by name, with their outputs, for `DescribeStacks` (the query protocol). */
  readonly stacks: Map<string, Record<string, string>>;
  /** Adds or replaces an operation, keyed like `AmazonEC2ContainerServiceV20141113.UpdateService`. */
  on(target: string, handler: AwsJsonHandler): void;
  readonly calls: { target: string; input: Record<string, unknown> }[];
  stop(): Promise<void>;
}

export async function startAwsJsonFake(
  options: {
    /** Listen without keeping the process alive: for a fake that lives as long as the process. */
    unref?: boolean;
  } = {},
): Promise<AwsJsonFake> {
  const handlers = new Map<string, AwsJsonHandler>();
  const secrets = new Map<string, string>();
  const calls: { target: string; input: Record<string, unknown> }[] = [];
  const functions = new Map<string, (payload: unknown) => Promise<unknown>>();
  const services = new Map<string, { desiredCount: number; runningCount: number }>();
  const stacks = new Map<string, Record<string, string>>();
  const ecs = 'AmazonEC2ContainerServiceV20141113';
  handlers.set(`${ecs}.DescribeServices`, (input) => ({
    services: ((input.services as string[]) ?? []).flatMap((name) => {
      const service = services.get(name);
      return service ? [{ serviceName: name, status: 'ACTIVE', ...service }] : [];
    }),
    failures: [],
  }));
  handlers.set(`${ecs}.UpdateService`, (input) => {
    const service = services.get(String(input.service));
    if (!service) throw new AwsServiceError('ServiceNotFoundException', 'Service not found.');
    if (typeof input.desiredCount === 'number') service.desiredCount = input.desiredCount;
    return { service: { serviceName: input.service, status: 'ACTIVE', ...service } };
  });
  handlers.set('secretsmanager.GetSecretValue', (input) => {
    const id = String(input.SecretId);
    const value = secrets.get(id);
    if (value === undefined) {
      throw new AwsServiceError(
        'ResourceNotFoundException',
        "Secrets Manager can't find the specified secret.",
      );
    }
    return {
      ARN: `arn:aws:secretsmanager:us-east-1:000000000000:secret:${id}`,
      Name: id,
      SecretString: value,
      VersionId: 'v1',
    };
  });
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(request.url ?? '');
      if (invoke) {
        const name = decodeURIComponent(invoke[1] ?? '');
        const fn = functions.get(name);
        calls.push({ target: `lambda.Invoke:${name}`, input: {} });
        if (!fn) {
          response.writeHead(404, {
            'content-type': 'application/json',
            'x-amzn-errortype': 'ResourceNotFoundException',
          });
          response.end(JSON.stringify({ Type: 'User', message: `Function not found: ${name}` }));
          return;
        }
        try {
          const result = await fn(JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'));
          response.writeHead(200, {
            'content-type': 'application/json',
            'x-amz-executed-version': '$LATEST',
          });
          response.end(JSON.stringify(result ?? null));
        } catch (error) {
          response.writeHead(200, {
            'content-type': 'application/json',
            'x-amz-function-error': 'Unhandled',
          });
          response.end(JSON.stringify({ errorType: 'Error', errorMessage: String(error) }));
        }
        return;
      }
      if (String(request.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const action = form.get('Action') ?? '';
        calls.push({ target: `cloudformation.${action}`, input: Object.fromEntries(form) });
        const [status, xml] = describeStacks(action, form.get('StackName') ?? '', stacks);
        response.writeHead(status, { 'content-type': 'text/xml' });
        response.end(xml);
        return;
      }
      const target = String(request.headers['x-amz-target'] ?? '');
      const reply = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        response.end(JSON.stringify(body));
      };
      try {
        const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<
          string,
          unknown
        >;
        calls.push({ target, input });
        const handler = handlers.get(target);
        if (!handler)
          throw new AwsServiceError('UnknownOperationException', `No fake for ${target}.`);
        reply(200, handler(input) ?? {});
      } catch (error) {
        if (error instanceof AwsServiceError)
          reply(error.status, { __type: error.type, message: error.message });
        else reply(500, { __type: 'InternalFailure', message: String(error) });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  if (options.unref) server.unref();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    secrets,
    functions,
    services,
    stacks,
    calls,
    on: (target, handler) => handlers.set(target, handler),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** CloudFormation's `DescribeStacks` in the awsQuery wire format (form in, XML out). */
function describeStacks(
  action: string,
  stackName: string,
  stacks: Map<string, Record<string, string>>,
): [number, string] {
  const error = (code: string, message: string): [number, string] => [
    400,
    `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error><RequestId>fake</RequestId></ErrorResponse>`,
  ];
  if (action !== 'DescribeStacks') return error('InvalidAction', `No fake for ${action}.`);
  const outputs = stacks.get(stackName);
  if (!outputs) return error('ValidationError', `Stack with id ${stackName} does not exist`);
  const members = Object.entries(outputs)
    .map(
      ([key, value]) =>
        `<member><OutputKey>${escapeXml(key)}</OutputKey><OutputValue>${escapeXml(value)}</OutputValue></member>`,
    )
    .join('');
  return [
    200,
    `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>${escapeXml(stackName)}</StackName><StackStatus>CREATE_COMPLETE</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime><Outputs>${members}</Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></DescribeStacksResponse>`,
  ];
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
