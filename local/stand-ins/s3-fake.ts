import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/**
 * A loopback stand-in for S3, speaking enough of its REST protocol (path-style addressing) for
 * the claim check: CreateBucket (`PUT /bucket`), PutObject (`PUT /bucket/key`), GetObject and
 * HeadObject (`GET`/`HEAD /bucket/key`), with S3's XML errors (`NoSuchBucket`, `NoSuchKey`). The
 * real SDK client talks to it through `AWS_ENDPOINT_URL_S3` with `forcePathStyle`. Signatures are
 * not checked. Objects live in memory.
 */
export interface S3Fake {
  readonly endpoint: string;
  /** Objects by bucket, then key. */
  readonly buckets: Map<string, Map<string, Buffer>>;
  readonly requests: { method: string; bucket: string; key: string }[];
  /** Makes the next `count` requests (of `method`, or any) fail with a 503 SlowDown. */
  failNext(count: number, method?: string): void;
  stop(): Promise<void>;
}

export async function startS3Fake(options: { unref?: boolean } = {}): Promise<S3Fake> {
  const buckets = new Map<string, Map<string, Buffer>>();
  const requests: S3Fake['requests'] = [];
  let failures: { count: number; method: string | undefined } = { count: 0, method: undefined };

  const error = (res: ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`,
    );
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://s3.local');
    const [bucketName = '', ...rest] = url.pathname.slice(1).split('/');
    const bucket = decodeURIComponent(bucketName);
    const key = rest.map(decodeURIComponent).join('/');
    const method = req.method ?? 'GET';
    requests.push({ method, bucket, key });
    if (failures.count > 0 && (failures.method === undefined || failures.method === method)) {
      failures = { ...failures, count: failures.count - 1 };
      error(res, 503, 'SlowDown', 'Please reduce your request rate.');
      return;
    }
    if (key === '') {
      if (method === 'PUT') {
        if (!buckets.has(bucket)) buckets.set(bucket, new Map());
        res.writeHead(200, { location: `/${bucket}` });
        res.end();
        return;
      }
      error(res, 405, 'MethodNotAllowed', 'Only CreateBucket is supported on a bucket.');
      return;
    }
    const objects = buckets.get(bucket);
    if (!objects) {
      error(res, 404, 'NoSuchBucket', 'The specified bucket does not exist.');
      return;
    }
    if (method === 'PUT') {
      const content = decodeContent(req, body);
      objects.set(key, content);
      res.writeHead(200, { etag: etagOf(content) });
      res.end();
      return;
    }
    if (method === 'GET' || method === 'HEAD') {
      const content = objects.get(key);
      if (!content) {
        if (method === 'HEAD') {
          res.writeHead(404);
          res.end();
        } else error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': String(content.length),
        etag: etagOf(content),
        'last-modified': new Date().toUTCString(),
      });
      res.end(method === 'HEAD' ? undefined : content);
      return;
    }
    error(res, 405, 'MethodNotAllowed', `${method} is not supported here.`);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  if (options.unref) server.unref();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    buckets,
    requests,
    failNext(count, method) {
      failures = { count, method };
    },
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function etagOf(content: Buffer): string {
  return `"${createHash('md5').update(content).digest('hex')}"`;
}

/**
 * The object's bytes: the body as sent, or decoded from `aws-chunked` framing
 * (`<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n<trailers>\r\n\r\n`), which SDKs use when
 * they send a checksum as a trailer.
 */
function decodeContent(req: IncomingMessage, body: Buffer): Buffer {
  const encoding = String(req.headers['content-encoding'] ?? '');
  if (!encoding.split(',').some((e) => e.trim() === 'aws-chunked')) return body;
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', offset);
    if (lineEnd === -1) break;
    const size = Number.parseInt(
      body.subarray(offset, lineEnd).toString('latin1').split(';')[0] ?? '0',
      16,
    );
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
