import { createServer, type Server } from 'node:http';
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';

/**
 * Serves a function-URL handler over HTTP on loopback, building the payload-2.0 event the way
 * Lambda does: lower-cased headers (repeats comma-joined), `rawQueryString` without `?`, and a
 * base64 body unless the content type is textual.
 */
export type FunctionUrlHandler = (
  event: LambdaFunctionURLEvent,
) => Promise<LambdaFunctionURLResult>;

const TEXT_TYPES = /^(text\/|application\/(json|xml|x-www-form-urlencoded|javascript))/i;
// Lambda's request payload limit; larger requests never reach the function.
const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

export async function serveFunctionUrl(
  handler: FunctionUrlHandler,
  port = 0,
): Promise<{ url: string; server: Server; stop(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on('end', async () => {
      if (size > MAX_REQUEST_BYTES) {
        res.writeHead(413, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            Message: 'Request must be smaller than 6291456 bytes for the InvokeFunction operation',
          }),
        );
        return;
      }
      const body = Buffer.concat(chunks);
      const [rawPath = '/', rawQueryString = ''] = (req.url ?? '/').split(/\?(.*)/s);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined)
          headers[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
      }
      const textual = body.length === 0 || TEXT_TYPES.test(headers['content-type'] ?? '');
      const now = Date.now();
      const event: LambdaFunctionURLEvent = {
        version: '2.0',
        routeKey: '$default',
        rawPath,
        rawQueryString,
        headers,
        requestContext: {
          accountId: 'anonymous',
          apiId: 'local',
          domainName: headers.host ?? '127.0.0.1',
          domainPrefix: 'local',
          http: {
            method: req.method ?? 'GET',
            path: rawPath,
            protocol: 'HTTP/1.1',
            sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
            userAgent: headers['user-agent'] ?? '',
          },
          requestId: `local-${now}-${Math.random().toString(36).slice(2)}`,
          routeKey: '$default',
          stage: '$default',
          time: new Date(now).toUTCString(),
          timeEpoch: now,
        },
        ...(body.length > 0
          ? { body: textual ? body.toString('utf8') : body.toString('base64') }
          : {}),
        isBase64Encoded: !textual,
      };
      try {
        const returned = await handler(event);
        // The bare-string shorthand means 200 with that body as JSON, as Lambda treats it.
        const result =
          typeof returned === 'string'
            ? { statusCode: 200, headers: { 'content-type': 'application/json' }, body: returned }
            : returned;
        const responseBody = result.body ?? '';
        res.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>);
        res.end(result.isBase64Encoded ? Buffer.from(responseBody, 'base64') : responseBody);
      } catch {
        // What Lambda returns when the function itself throws.
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Message: 'Internal Server Error' }));
      }
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => reject(listenError(error, port));
    server.once('error', failed);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', failed);
      resolve();
    });
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
  return {
    url,
    server,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A listen failure as one line that names the port and the fix, keeping `code` and `port` (local
 * mode's crash handler prints the same line for an `EADDRINUSE` from anywhere).
 */
export function listenError(
  error: NodeJS.ErrnoException,
  port: number,
): Error & { code?: string; port: number } {
  const next = port === 0 || port >= 65535 ? 8788 : port + 1;
  const message =
    error.code === 'EADDRINUSE'
      ? `port ${port} is in use (another npm start, or another program): stop it, or choose another port: PORT=${next} npm start`
      : error.code === 'EACCES'
        ? `port ${port} needs privileges this user lacks: choose a port above 1023: PORT=8787 npm start`
        : `cannot listen on 127.0.0.1:${port}: ${error.code ?? error.message}`;
  return Object.assign(new Error(message), {
    ...(error.code ? { code: error.code } : {}),
    port,
  });
}
