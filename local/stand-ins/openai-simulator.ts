import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/**
 * A loopback OpenAI API that follows the documented shapes for the endpoints this project calls.
 * Tests steer it (objects, injected faults) and read what it received.
 */
export interface SimulatedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly body: unknown;
  readonly at: number;
}

export interface Fault {
  readonly status: number;
  readonly body?: unknown;
  /** How many matching requests fail. */
  remaining: number;
}

export type RouteHandler = (
  request: SimulatedRequest,
  match: RegExpExecArray,
) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }>;

export class OpenAiSimulator {
  readonly requests: SimulatedRequest[] = [];
  readonly objects = new Map<string, Record<string, unknown>>();
  private readonly faults: { prefix: string; fault: Fault }[] = [];
  private readonly routes: { method: string; pattern: RegExp; handler: RouteHandler }[] = [];
  private server: Server | undefined;
  baseUrl = '';

  constructor(readonly apiKey: string = `sk-local-${randomBytes(8).toString('hex')}`) {
    this.route('GET', /^\/v1\/batches\/([^/]+)$/, (_r, m) =>
      this.object(`batch:${m[1]}`, () => defaultBatch(m[1] ?? '')),
    );
    this.route('GET', /^\/v1\/fine_tuning\/jobs\/([^/]+)$/, (_r, m) =>
      this.object(`fine_tuning.job:${m[1]}`, () => defaultJob(m[1] ?? '')),
    );
    this.route('GET', /^\/v1\/responses\/([^/]+)$/, (_r, m) =>
      this.object(`response:${m[1]}`, () => defaultResponse(m[1] ?? '')),
    );
    // Control route (local tools only, like the other /_sim/ routes): `npm run send` sets the
    // object an event talks about first, so a `batch.failed` hydrates as a failed batch.
    this.route('PUT', /^\/_sim\/objects\/(batch|fine_tuning\.job|response)\/([^/]+)$/, (r, m) => {
      if (typeof r.body !== 'object' || r.body === null || Array.isArray(r.body))
        return { status: 400, body: apiError('invalid_value', 'The body must be the object.') };
      const kind = m[1] as 'batch' | 'fine_tuning.job' | 'response';
      const id = decodeURIComponent(m[2] ?? '');
      this.setObject(kind, id, { ...(r.body as Record<string, unknown>), id });
      return { status: 200, body: this.objects.get(`${kind}:${id}`) };
    });
  }

  /** Adds an endpoint (the calls API adds its own). Later routes win. */
  route(method: string, pattern: RegExp, handler: RouteHandler): void {
    this.routes.unshift({ method, pattern, handler });
  }

  /** Makes the next `count` requests whose path starts with `prefix` fail with `status`. */
  failNext(prefix: string, status: number, count = 1, body?: unknown): void {
    this.faults.push({
      prefix,
      fault: { status, remaining: count, ...(body !== undefined ? { body } : {}) },
    });
  }

  setObject(
    kind: 'batch' | 'fine_tuning.job' | 'response',
    id: string,
    object: Record<string, unknown>,
  ): void {
    this.objects.set(`${kind}:${id}`, object);
  }

  requestsTo(prefix: string): SimulatedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) =>
        send(res, 500, { error: { message: String(error), type: 'server_error', code: null } }),
      );
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    const address = this.server.address();
    this.baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1`;
    return this.baseUrl;
  }

  /** The underlying server, for attaching the sideband WebSocket. */
  get httpServer(): Server | undefined {
    return this.server;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private object(key: string, fallback: () => Record<string, unknown>) {
    return { status: 200, body: this.objects.get(key) ?? fallback() };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return send(
        res,
        400,
        apiError('invalid_json', 'We could not parse the JSON body of your request.'),
      );
    }
    const request: SimulatedRequest = {
      method: req.method ?? 'GET',
      path,
      authorization: req.headers.authorization,
      body,
      at: Date.now(),
    };
    this.requests.push(request);
    // The /_sim/ control routes drive the simulated caller (local tools only); the rest is the API.
    if (!path.startsWith('/_sim/') && req.headers.authorization !== `Bearer ${this.apiKey}`) {
      return send(res, 401, apiError('invalid_api_key', 'Incorrect API key provided.'));
    }
    const fault = this.faults.find((f) => f.fault.remaining > 0 && path.startsWith(f.prefix));
    if (fault) {
      fault.fault.remaining--;
      return send(
        res,
        fault.fault.status,
        fault.fault.body ?? apiError('server_error', 'Simulated failure.'),
      );
    }
    for (const route of this.routes) {
      const match = route.method === request.method ? route.pattern.exec(path) : null;
      if (match) {
        const result = await route.handler(request, match);
        return send(res, result.status, result.body);
      }
    }
    return send(res, 404, apiError('not_found', `No route for ${request.method} ${path}.`));
  }
}

export function apiError(code: string, message: string, type = 'invalid_request_error') {
  return { error: { message, type, param: null, code } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function defaultBatch(id: string) {
  return {
    id,
    object: 'batch',
    endpoint: '/v1/responses',
    status: 'completed',
    request_counts: { total: 100, completed: 98, failed: 2 },
    output_file_id: `file-out-${id.slice(-6)}`,
    error_file_id: `file-err-${id.slice(-6)}`,
    created_at: nowSeconds() - 3600,
    completed_at: nowSeconds(),
  };
}

function defaultJob(id: string) {
  return {
    id,
    object: 'fine_tuning.job',
    status: 'succeeded',
    model: 'gpt-4.1-mini-2025-04-14',
    fine_tuned_model: `ft:gpt-4.1-mini-2025-04-14:local::${id.slice(-8)}`,
    trained_tokens: 123_456,
    error: null,
  };
}

function defaultResponse(id: string) {
  return {
    id,
    object: 'response',
    status: 'completed',
    usage: { input_tokens: 120, output_tokens: 480, total_tokens: 600 },
    error: null,
  };
}
