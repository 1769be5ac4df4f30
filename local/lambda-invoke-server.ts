import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startNodeChild } from './node-child';

/**
 * Local mode's Lambda: serves functions whose code is a file of this app (`CallTool.fromEntry`)
 * behind the Lambda `Invoke` wire protocol, so the sideband worker's tool runner
 * (adapters/lambda-tool-runner.ts, the AWS SDK's LambdaClient) reaches them exactly as it reaches
 * Lambda, pointed here by its endpoint variable (`AWS_ENDPOINT_URL_LAMBDA`). It runs in a process
 * of its own, as a function is isolated from its caller in AWS: a tool that blocks its event loop
 * or crashes does not take local mode down.
 *
 * The protocol, as the Lambda API reference's Invoke describes it: `POST
 * /2015-03-31/functions/{FunctionName}/invocations` with the event as the JSON body; `200` with the
 * function's JSON result; for a function error still `200`, with `X-Amz-Function-Error: Unhandled`
 * and `{ errorType, errorMessage, trace }` as the payload (the Node.js runtime's shape for a thrown
 * error); a timeout is such an error too (`Task timed out after N seconds`); an unknown function
 * is `404` `ResourceNotFoundException`.
 */

export interface LocalFunction {
  /** The function's source file, relative to the working directory or absolute. */
  readonly entry: string;
  /** The export Lambda calls. @default 'handler' */
  readonly exportName?: string;
  /** The function's timeout. @default 3000 (Lambda's default) */
  readonly timeoutMs?: number;
}

type Handler = (event: unknown, context: Record<string, unknown>) => unknown;

/** Imports each function's entry; throws naming the file when its export is not a function. */
export async function loadFunctions(
  functions: Readonly<Record<string, LocalFunction>>,
): Promise<Map<string, { handler: Handler; timeoutMs: number }>> {
  const loaded = new Map<string, { handler: Handler; timeoutMs: number }>();
  for (const [name, fn] of Object.entries(functions)) {
    const exportName = fn.exportName ?? 'handler';
    const module = (await import(pathToFileURL(path.resolve(fn.entry)).href)) as Record<
      string,
      unknown
    >;
    const handler = module[exportName];
    if (typeof handler !== 'function')
      throw new Error(`${fn.entry} does not export a function named ${exportName}.`);
    loaded.set(name, { handler: handler as Handler, timeoutMs: fn.timeoutMs ?? 3000 });
  }
  return loaded;
}

/** Serves the loaded functions on loopback; resolves with the endpoint. */
export async function serveFunctions(
  functions: Map<string, { handler: Handler; timeoutMs: number }>,
  port = 0,
): Promise<{ endpoint: string; server: Server }> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        response.writeHead(status, { 'content-type': 'application/json', ...headers });
        response.end(JSON.stringify(body));
      };
      const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations(?:\?|$)/.exec(
        request.url ?? '',
      );
      if (request.method !== 'POST' || !invoke) {
        json(404, { Type: 'User', message: 'Only Invoke is served here.' });
        return;
      }
      // A function ARN names the function in its last part (arn:aws:lambda:…:function:NAME).
      const name = decodeURIComponent(invoke[1] ?? '')
        .split(':')
        .at(-1);
      const fn = name !== undefined ? functions.get(name) : undefined;
      if (!fn) {
        json(
          404,
          { Type: 'User', message: `Function not found: ${name}` },
          { 'x-amzn-errortype': 'ResourceNotFoundException' },
        );
        return;
      }
      let event: unknown;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
      } catch {
        json(
          400,
          { Type: 'User', message: 'Could not parse request body into json.' },
          { 'x-amzn-errortype': 'InvalidRequestContentException' },
        );
        return;
      }
      const started = Date.now();
      const context = {
        functionName: name,
        functionVersion: '$LATEST',
        invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${name}`,
        memoryLimitInMB: '256',
        awsRequestId: randomUUID(),
        getRemainingTimeInMillis: () => Math.max(0, fn.timeoutMs - (Date.now() - started)),
      };
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          const error = new Error(
            `Task timed out after ${(fn.timeoutMs / 1000).toFixed(2)} seconds`,
          );
          error.name = 'Sandbox.Timedout';
          reject(error);
        }, fn.timeoutMs);
      });
      try {
        const result = await Promise.race([
          Promise.resolve().then(() => fn.handler(event, context)),
          timedOut,
        ]);
        json(200, result ?? null, { 'x-amz-executed-version': '$LATEST' });
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        // What a person running `npm start` needs: which tool failed, and why.
        process.stderr.write(`lambda ${name}: ${e.name}: ${e.message}\n`);
        json(
          200,
          {
            errorType: e.name,
            errorMessage: e.message,
            trace: (e.stack ?? '').split('\n'),
          },
          { 'x-amz-function-error': 'Unhandled', 'x-amz-executed-version': '$LATEST' },
        );
      } finally {
        clearTimeout(timer);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return { endpoint: `http://127.0.0.1:${bound}`, server };
}

/** The variable the child reads its functions from (JSON: name → LocalFunction). */
const FUNCTIONS_VARIABLE = 'OWH_LOCAL_FUNCTIONS';

export interface LambdaProcess {
  /** Where the Lambda `Invoke` API is served: the value for `AWS_ENDPOINT_URL_LAMBDA`. */
  readonly endpoint: string;
  stop(): Promise<void>;
}

/**
 * Runs the functions in a child process (this file), which dies with this process. Rejects
 * naming the file when an entry cannot be loaded. The functions' own output (console.log) is
 * passed to `onLine`.
 */
export async function startLambdaProcess(
  functions: Readonly<Record<string, LocalFunction>>,
  options: {
    readonly cwd?: string;
    readonly onLine?: (line: string) => void;
    readonly port?: number;
  } = {},
): Promise<LambdaProcess> {
  let stderr = '';
  const child = await startNodeChild(import.meta.filename, {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: {
      ...process.env,
      [FUNCTIONS_VARIABLE]: JSON.stringify(functions),
      OWH_LAMBDA_PORT: String(options.port ?? 0),
    },
    stderr: 'pipe',
    onStderr: (chunk) => {
      stderr += chunk;
      if (stderr.length > 8192) stderr = stderr.slice(-8192);
      process.stderr.write(chunk);
    },
    onLine: (line) => {
      if (!line.startsWith('{"lambdaEndpoint"')) options.onLine?.(line);
    },
    ready: (line) =>
      line.startsWith('{"lambdaEndpoint"')
        ? (JSON.parse(line) as { lambdaEndpoint: string }).lambdaEndpoint
        : undefined,
    exitedEarly: (code) =>
      new Error(
        `the local Lambda process exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ') || 'no output'}`,
      ),
  });
  return {
    endpoint: child.ready,
    async stop() {
      await child.stop();
    },
  };
}

// Run as the child: load, serve, announce.
if (process.env[FUNCTIONS_VARIABLE] && process.argv[1] === import.meta.filename) {
  try {
    const functions = await loadFunctions(
      JSON.parse(process.env[FUNCTIONS_VARIABLE]) as Record<string, LocalFunction>,
    );
    const { endpoint, server } = await serveFunctions(
      functions,
      Number(process.env.OWH_LAMBDA_PORT || 0),
    );
    process.on('SIGTERM', () => {
      server.close(() => process.exit(0));
      // The SDK keeps connections alive: close them, or close() waits for them.
      server.closeAllConnections();
    });
    process.stdout.write(`${JSON.stringify({ lambdaEndpoint: endpoint })}\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
