import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/**
 * A loopback HTTP proxy in front of DynamoDB Local that injects the two ways DynamoDB fails a
 * `BatchWriteItem` under load, which DynamoDB Local never does (API reference, BatchWriteItem):
 *
 * - `throttle`: the whole request is answered `400 ProvisionedThroughputExceededException`, as
 *   DynamoDB answers when none of the items can be written for lack of throughput. Nothing
 *   reaches the table.
 * - `{ keep: n }`: only the first `n` put requests reach DynamoDB Local; the rest come back in
 *   `UnprocessedItems`, as DynamoDB returns the writes it did not get to. They are really not
 *   written: a client that does not resend them loses them.
 *
 * Every other request passes through untouched. Point a client's endpoint at `endpoint`; `fault`
 * decides per BatchWriteItem request (and can change while it runs).
 */
export type BatchWriteFault = 'pass' | 'throttle' | { readonly keep: number };

export interface WriteFaultProxy {
  readonly endpoint: string;
  /** Decides each BatchWriteItem request's fault. @default always 'pass' */
  fault: (request: { readonly requests: number }) => BatchWriteFault;
  readonly stats: {
    /** BatchWriteItem requests seen. */
    batches: number;
    throttled: number;
    /** Put requests handed back in UnprocessedItems. */
    withheld: number;
  };
  stop(): Promise<void>;
}

interface WriteRequest {
  readonly PutRequest?: unknown;
  readonly DeleteRequest?: unknown;
}

export async function startWriteFaultProxy(target: string): Promise<WriteFaultProxy> {
  const upstream = new URL(target);
  const proxy: Omit<WriteFaultProxy, 'endpoint' | 'stop'> = {
    fault: () => 'pass',
    stats: { batches: 0, throttled: 0, withheld: 0 },
  };

  const forward = async (req: IncomingMessage, body: Buffer) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || ['host', 'content-length', 'connection'].includes(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    // DynamoDB Local does not check the request signature, so a body cut here still passes.
    const response = await fetch(new URL(req.url ?? '/', upstream), {
      method: req.method ?? 'POST',
      headers,
      body: new Uint8Array(body),
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };

  const reply = (res: ServerResponse, status: number, json: unknown) => {
    const text = JSON.stringify(json);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.0',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': `fault-${Math.random().toString(36).slice(2)}`,
    });
    res.end(text);
  };

  // fetch has decoded the body: its length and encoding are set again here.
  const passBack = (
    res: ServerResponse,
    answer: { status: number; headers: Headers; text: string },
  ) => {
    const headers: Record<string, string> = {};
    answer.headers.forEach((value, name) => {
      if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(name))
        headers[name] = value;
    });
    headers['content-length'] = String(Buffer.byteLength(answer.text));
    res.writeHead(answer.status, headers);
    res.end(answer.text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const operation = String(req.headers['x-amz-target'] ?? '');
    if (!operation.endsWith('.BatchWriteItem')) {
      passBack(res, await forward(req, body));
      return;
    }
    proxy.stats.batches++;
    const input = JSON.parse(body.toString('utf8')) as {
      RequestItems: Record<string, WriteRequest[]>;
    };
    const tables = Object.entries(input.RequestItems);
    const fault = proxy.fault({
      requests: tables.reduce((sum, [, requests]) => sum + requests.length, 0),
    });
    if (fault === 'throttle') {
      proxy.stats.throttled++;
      // The JSON 1.0 error shape: the SDK reads the exception's name from `__type`.
      reply(res, 400, {
        __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
        message:
          'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.',
      });
      return;
    }
    if (fault === 'pass') {
      passBack(res, await forward(req, body));
      return;
    }
    // Keep the first `keep` requests (across tables, in order); hand the rest back.
    let left = Math.max(0, fault.keep);
    const kept: Record<string, WriteRequest[]> = {};
    const unprocessed: Record<string, WriteRequest[]> = {};
    for (const [table, requests] of tables) {
      const take = requests.slice(0, left);
      left -= take.length;
      if (take.length > 0) kept[table] = take;
      const rest = requests.slice(take.length);
      if (rest.length > 0) unprocessed[table] = rest;
      proxy.stats.withheld += rest.length;
    }
    let upstreamUnprocessed: Record<string, WriteRequest[]> = {};
    if (Object.keys(kept).length > 0) {
      const answer = await forward(
        req,
        Buffer.from(JSON.stringify({ ...input, RequestItems: kept })),
      );
      if (answer.status !== 200) {
        passBack(res, answer);
        return;
      }
      upstreamUnprocessed =
        (JSON.parse(answer.text) as { UnprocessedItems?: Record<string, WriteRequest[]> })
          .UnprocessedItems ?? {};
    }
    for (const [table, requests] of Object.entries(upstreamUnprocessed))
      unprocessed[table] = [...requests, ...(unprocessed[table] ?? [])];
    reply(res, 200, { UnprocessedItems: unprocessed });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent)
        reply(res, 500, { __type: 'InternalServerError', message: String(error) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
