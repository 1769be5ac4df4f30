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
  /** Adds or replaces an operation, keyed like `AmazonEC2ContainerServiceV20141113.UpdateService`. */
  on(target: string, handler: AwsJsonHandler): void;
  readonly calls: { target: string; input: Record<string, unknown> }[];
  stop(): Promise<void>;
}

export async function startAwsJsonFake(): Promise<AwsJsonFake> {
  const handlers = new Map<string, AwsJsonHandler>();
  const secrets = new Map<string, string>();
  const calls: { target: string; input: Record<string, unknown> }[] = [];
  const functions = new Map<string, (payload: unknown) => Promise<unknown>>();
  const services = new Map<string, { desiredCount: number; runningCount: number }>();
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
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    secrets,
    functions,
    services,
    calls,
    on: (target, handler) => handlers.set(target, handler),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
