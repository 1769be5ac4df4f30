import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { FilesSimulator } from './files-route';
import { WebhookEndpointsSimulator } from './webhook-endpoints-route';

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
  /** The query string, without `?` (list endpoints page with it). */
  readonly query?: string;
  /** The request's content type, and its body as sent when that is not JSON (SDP, multipart). */
  readonly contentType?: string;
  readonly rawBody?: string;
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
) => RouteResult | Promise<RouteResult>;

/** A JSON `body`, or a raw `text` with its own `headers` (`POST /v1/realtime/calls` answers SDP). */
export type RouteResult = {
  status: number;
  body?: unknown;
  text?: string;
  headers?: Record<string, string>;
};

export class OpenAiSimulator {
  readonly requests: SimulatedRequest[] = [];
  readonly objects = new Map<string, Record<string, unknown>>();
  private readonly faults: { prefix: string; fault: Fault }[] = [];
  private readonly routes: { method: string; pattern: RegExp; handler: RouteHandler }[] = [];
  private server: Server | undefined;
  baseUrl = '';
  /** `/v1/webhook_endpoints` and `/v1/webhook_event_types` (webhook-endpoints-route.ts). */
  readonly webhookEndpoints = new WebhookEndpointsSimulator();
  /** `GET|DELETE /v1/files/{id}` (files-route.ts): the files put there and those batches name. */
  readonly files = new FilesSimulator(this.objects);

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
    this.webhookEndpoints.install(this);
    this.files.install(this);
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
    // Once served, an object stays as served (its times, its file ids), as the API's does.
    if (!this.objects.has(key)) this.objects.set(key, fallback());
    return { status: 200, body: this.objects.get(key) };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    let body: unknown;
    const contentType = req.headers['content-type'];
    // SDP offers and multipart forms (realtime-calls-route.ts) are kept as sent, not parsed.
    const raw = /^(multipart\/|application\/sdp)/i.test(contentType ?? '');
    try {
      body = text && !raw ? JSON.parse(text) : undefined;
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
      query: (req.url ?? '').split('?')[1] ?? '',
      ...(contentType ? { contentType } : {}),
      ...(raw ? { rawBody: text } : {}),
      at: Date.now(),
    };
    this.requests.push(request);
    // The /_sim/ control routes drive the simulated caller (local tools only); the rest is the API.
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    // A restricted key (webhook-endpoints-route.ts) passes here; the webhook routes refuse it.
    const restricted = this.webhookEndpoints.keysWithoutWebhookScope.has(bearer ?? '');
    if (!path.startsWith('/_sim/') && bearer !== this.apiKey && !restricted) {
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
        if (result.text !== undefined) {
          if (res.headersSent) return;
          res.writeHead(result.status, {
            ...result.headers,
            'content-length': Buffer.byteLength(result.text),
          });
          res.end(result.text);
          return;
        }
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
