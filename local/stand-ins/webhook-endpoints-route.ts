import { createHmac, randomBytes } from 'node:crypto';

/**
 * The simulator's `/v1/webhook_endpoints` and `/v1/webhook_event_types`: OpenAI's webhook endpoint
 * management API, written from the `openai` package's types (7.55.0,
 * resources/webhooks/webhooks.d.ts and event-types.d.ts; the SDK's request paths are in
 * webhooks.js), not from this project's own code:
 * - `POST /webhook_endpoints` {event_types, name, url} → `WebhookEndpointWithSecret` (the only
 *   response besides rotate_secret that carries `signing_secret`);
 * - `GET /webhook_endpoints/{id}` → `WebhookEndpoint` (`signing_secret_hint`, never the secret);
 * - `POST /webhook_endpoints/{id}` {event_types?, name?, url?}: `event_types` is "the complete
 *   set"; `updated_at` moves only when something changed ("unchanged updates do not advance it");
 * - `GET /webhook_endpoints?limit&after` → a cursor page, "newest-first";
 * - `DELETE /webhook_endpoints/{id}` → `{id, deleted: true, object: 'webhook_endpoint.deleted'}`;
 * - `POST /webhook_endpoints/{id}/rotate_secret` {keep_old_secret_active_for_24_hours?} (default
 *   false: the old secret stops at once);
 * - `POST /webhook_endpoints/{id}/test` {event_type} → `WebhookEndpointTestResult` after really
 *   delivering a signed sample event to the endpoint's URL, as the dashboard's "send test event"
 *   does; `success` is always true, `status_code` is what the endpoint answered;
 * - `GET /webhook_event_types` → `{object: 'list', data: string[]}`.
 * Deliveries are signed as Standard Webhooks v1 (https://www.standardwebhooks.com, "Signature
 * scheme"): `v1,` + base64 HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}` with the
 * base64-decoded part of `whsec_…`; while an old secret is kept, the header carries one signature
 * per secret, space-separated, which is how the spec does zero-downtime rotation.
 *
 * Guesses, because nothing public documents them: the error bodies (OpenAI's usual
 * `{error:{message,type,param,code}}`), the scope names in the permission error (shaped like the
 * real "Missing scopes: api.responses.write" 401), the hint format, and the answer when the URL
 * cannot be reached. The real API takes only `https://` URLs; the simulator also takes
 * `http://` to a loopback host, so local mode can register itself.
 */

/** What the simulator hands a route: the parsed request. */
export interface EndpointRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly body: unknown;
  readonly query?: string;
}

type Reply = { status: number; body?: unknown };

/** The part of OpenAiSimulator this module needs. */
export interface RouteHost {
  route(
    method: string,
    pattern: RegExp,
    handler: (request: EndpointRequest, match: RegExpExecArray) => Reply | Promise<Reply>,
  ): void;
}

/**
 * The subscribable types: `WebhookCreateParams.event_types` in the SDK (the same union in update and
 * test). Copied from the SDK's types here on purpose, not imported from core/webhooks: the
 * simulator's rules come from the reference, so a mistake in our own list cannot pass its own check.
 */
const SDK_EVENT_TYPES: readonly string[] = [
  'batch.completed',
  'batch.failed',
  'batch.expired',
  'batch.cancelled',
  'response.completed',
  'response.failed',
  'response.cancelled',
  'response.incomplete',
  'eval.run.succeeded',
  'eval.run.failed',
  'eval.run.canceled',
  'fine_tuning.job.succeeded',
  'fine_tuning.job.failed',
  'fine_tuning.job.cancelled',
  'realtime.call.incoming',
  'video.completed',
  'video.failed',
  'agent.environment.ready',
  'agent.environment.failed',
  'agent.environment.suspended',
  'agent.environment.expired',
  'agent.session.created',
  'agent.session.action_required',
  'agent.session.in_progress',
  'agent.session.idle',
  'agent.session.failed',
  'safety.alert.created',
];

const KEEP_OLD_MS = 24 * 3600 * 1000;

export interface SimulatedEndpoint {
  id: string;
  created_at: number;
  updated_at: number;
  name: string;
  url: string;
  event_types: string[];
  secret: string;
  /** The old secret while it is kept (rotate_secret with keep_old_secret_active_for_24_hours). */
  previous?: { secret: string; until: number };
}

export interface TestDelivery {
  readonly endpointId: string;
  readonly url: string;
  readonly eventType: string;
  readonly webhookId: string;
  readonly eventId: string;
  readonly status: number;
  /** How many signatures the header carried (2 while an old secret is kept). */
  readonly signatures: number;
  readonly at: number;
}

export interface WebhookEndpointsOptions {
  /**
   * The clock (ms) for the endpoints' times and the old secret's 24 hours, so a test can move past
   * them; deliveries are stamped with the wall clock. @default Date.now
   */
  readonly now?: () => number;
  /** Per-delivery timeout. @default 10 s */
  readonly deliveryTimeoutMs?: number;
}

export class WebhookEndpointsSimulator {
  /** By id; iteration order is creation order. */
  readonly endpoints = new Map<string, SimulatedEndpoint>();
  readonly deliveries: TestDelivery[] = [];
  /**
   * Keys the simulator accepts (they pass its API key check) that lack the webhook scopes, like a
   * restricted key without "Webhooks" permission: every endpoint here answers them 401.
   */
  readonly keysWithoutWebhookScope = new Set<string>();
  now: () => number;
  private readonly deliveryTimeoutMs: number;

  constructor(options: WebhookEndpointsOptions = {}) {
    this.now = options.now ?? Date.now;
    this.deliveryTimeoutMs = options.deliveryTimeoutMs ?? 10_000;
  }

  /** Adds the routes to the simulator. */
  install(host: RouteHost): this {
    const id = '([^/?]+)';
    const guarded =
      (
        scope: 'read' | 'write',
        handler: (r: EndpointRequest, m: RegExpExecArray) => Reply | Promise<Reply>,
      ) =>
      (r: EndpointRequest, m: RegExpExecArray) => {
        const key = (r.authorization ?? '').replace(/^Bearer /, '');
        if (this.keysWithoutWebhookScope.has(key)) return missingScope(scope);
        return handler(r, m);
      };
    host.route(
      'GET',
      /^\/v1\/webhook_event_types$/,
      guarded('read', () => this.eventTypes()),
    );
    host.route(
      'POST',
      /^\/v1\/webhook_endpoints$/,
      guarded('write', (r) => this.create(r.body)),
    );
    host.route(
      'GET',
      /^\/v1\/webhook_endpoints$/,
      guarded('read', (r) => this.list(r.query)),
    );
    host.route(
      'GET',
      new RegExp(`^/v1/webhook_endpoints/${id}$`),
      guarded('read', (_r, m) => this.retrieve(decode(m[1]))),
    );
    host.route(
      'POST',
      new RegExp(`^/v1/webhook_endpoints/${id}$`),
      guarded('write', (r, m) => this.update(decode(m[1]), r.body)),
    );
    host.route(
      'DELETE',
      new RegExp(`^/v1/webhook_endpoints/${id}$`),
      guarded('write', (_r, m) => this.delete(decode(m[1]))),
    );
    host.route(
      'POST',
      new RegExp(`^/v1/webhook_endpoints/${id}/rotate_secret$`),
      guarded('write', (r, m) => this.rotate(decode(m[1]), r.body)),
    );
    host.route(
      'POST',
      new RegExp(`^/v1/webhook_endpoints/${id}/test$`),
      guarded('write', (r, m) => this.test(decode(m[1]), r.body)),
    );
    return this;
  }

  /** The secrets an endpoint signs with now: the current one, and the old one while kept. */
  signingSecrets(endpoint: SimulatedEndpoint): string[] {
    const previous =
      endpoint.previous && this.now() < endpoint.previous.until ? [endpoint.previous.secret] : [];
    return [endpoint.secret, ...previous];
  }

  private eventTypes(): Reply {
    return { status: 200, body: { object: 'list', data: [...SDK_EVENT_TYPES] } };
  }

  private create(body: unknown): Reply {
    const input = objectBody(body);
    if (!input) return invalid('The request body must be a JSON object.', null);
    const problem =
      missing(input, ['event_types', 'name', 'url']) ??
      eventTypesProblem(input.event_types) ??
      nameProblem(input.name) ??
      urlProblem(input.url);
    if (problem) return problem;
    const now = this.seconds();
    const endpoint: SimulatedEndpoint = {
      id: `whe_${randomBytes(12).toString('hex')}`,
      created_at: now,
      updated_at: now,
      name: input.name as string,
      url: input.url as string,
      event_types: unique(input.event_types as string[]),
      secret: newSecret(),
    };
    this.endpoints.set(endpoint.id, endpoint);
    return { status: 200, body: withSecret(endpoint) };
  }

  private retrieve(id: string): Reply {
    const endpoint = this.endpoints.get(id);
    return endpoint ? { status: 200, body: view(endpoint) } : notFound(id);
  }

  private update(id: string, body: unknown): Reply {
    const endpoint = this.endpoints.get(id);
    if (!endpoint) return notFound(id);
    const input = body === undefined ? {} : objectBody(body);
    if (!input) return invalid('The request body must be a JSON object.', null);
    const problem =
      (Object.hasOwn(input, 'event_types') ? eventTypesProblem(input.event_types) : undefined) ??
      (Object.hasOwn(input, 'name') ? nameProblem(input.name) : undefined) ??
      (Object.hasOwn(input, 'url') ? urlProblem(input.url) : undefined);
    if (problem) return problem;
    let changed = false;
    if (Object.hasOwn(input, 'name') && input.name !== endpoint.name) {
      endpoint.name = input.name as string;
      changed = true;
    }
    if (Object.hasOwn(input, 'url') && input.url !== endpoint.url) {
      endpoint.url = input.url as string;
      changed = true;
    }
    if (Object.hasOwn(input, 'event_types')) {
      const next = unique(input.event_types as string[]);
      if (next.join(',') !== endpoint.event_types.join(',')) {
        endpoint.event_types = next;
        changed = true;
      }
    }
    if (changed) endpoint.updated_at = this.seconds();
    return { status: 200, body: view(endpoint) };
  }

  private list(query: string | undefined): Reply {
    const params = new URLSearchParams(query ?? '');
    const limitText = params.get('limit');
    const limit = limitText === null ? 20 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      return invalid('limit must be an integer from 1 to 100.', 'limit');
    const newestFirst = [...this.endpoints.values()].reverse();
    const after = params.get('after');
    let start = 0;
    if (after) {
      const index = newestFirst.findIndex((e) => e.id === after);
      if (index === -1) return invalid(`No webhook endpoint found with id '${after}'.`, 'after');
      start = index + 1;
    }
    const page = newestFirst.slice(start, start + limit);
    return {
      status: 200,
      body: {
        object: 'list',
        data: page.map(view),
        first_id: page[0]?.id ?? null,
        last_id: page.at(-1)?.id ?? null,
        has_more: start + limit < newestFirst.length,
      },
    };
  }

  private delete(id: string): Reply {
    if (!this.endpoints.delete(id)) return notFound(id);
    return { status: 200, body: { id, deleted: true, object: 'webhook_endpoint.deleted' } };
  }

  private rotate(id: string, body: unknown): Reply {
    const endpoint = this.endpoints.get(id);
    if (!endpoint) return notFound(id);
    const input = body === undefined ? {} : objectBody(body);
    if (!input) return invalid('The request body must be a JSON object.', null);
    const keep = Object.hasOwn(input, 'keep_old_secret_active_for_24_hours')
      ? input.keep_old_secret_active_for_24_hours
      : false;
    if (typeof keep !== 'boolean')
      return invalid(
        'keep_old_secret_active_for_24_hours must be a boolean.',
        'keep_old_secret_active_for_24_hours',
      );
    const old = endpoint.secret;
    endpoint.secret = newSecret();
    if (keep) endpoint.previous = { secret: old, until: this.now() + KEEP_OLD_MS };
    else delete endpoint.previous;
    endpoint.updated_at = this.seconds();
    return { status: 200, body: withSecret(endpoint) };
  }

  private async test(id: string, body: unknown): Promise<Reply> {
    const endpoint = this.endpoints.get(id);
    if (!endpoint) return notFound(id);
    const input = objectBody(body);
    if (!input) return invalid('The request body must be a JSON object.', null);
    const type = Object.hasOwn(input, 'event_type') ? input.event_type : undefined;
    if (typeof type !== 'string' || !SDK_EVENT_TYPES.includes(type))
      return invalid(`Invalid value for event_type: ${JSON.stringify(type)}.`, 'event_type');
    const eventId = `evt_${randomBytes(12).toString('hex')}`;
    const event = {
      object: 'event',
      id: eventId,
      type,
      created_at: this.seconds(),
      data: sampleData(type),
    };
    const payload = JSON.stringify(event);
    const webhookId = `wh_${randomBytes(12).toString('hex')}`;
    // The wall clock, not `now`: the receiver checks it against its own clock.
    const timestamp = String(Math.floor(Date.now() / 1000));
    const secrets = this.signingSecrets(endpoint);
    const signature = secrets.map((s) => sign(s, webhookId, timestamp, payload)).join(' ');
    let status: number;
    try {
      const response = await fetch(endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)',
          'webhook-id': webhookId,
          'webhook-timestamp': timestamp,
          'webhook-signature': signature,
        },
        body: payload,
        signal: AbortSignal.timeout(this.deliveryTimeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      status = response.status;
    } catch {
      return {
        status: 400,
        body: apiError(
          'webhook_delivery_failed',
          `The test event could not be delivered to ${endpoint.url}.`,
          null,
        ),
      };
    }
    this.deliveries.push({
      endpointId: id,
      url: endpoint.url,
      eventType: type,
      webhookId,
      eventId,
      status,
      signatures: secrets.length,
      at: this.now(),
    });
    return {
      status: 200,
      body: {
        object: 'webhook_endpoint.test',
        event_type: type,
        status_code: status,
        success: true,
        webhook_endpoint_id: id,
      },
    };
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}

function view(e: SimulatedEndpoint) {
  return {
    id: e.id,
    object: 'webhook_endpoint',
    created_at: e.created_at,
    updated_at: e.updated_at,
    name: e.name,
    url: e.url,
    event_types: [...e.event_types],
    signing_secret_hint: hint(e.secret),
  };
}

function withSecret(e: SimulatedEndpoint) {
  return { ...view(e), signing_secret: e.secret };
}

/** `whsec_****` + the last four characters. */
function hint(secret: string): string {
  return `whsec_****${secret.slice(-4)}`;
}

function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function sign(secret: string, id: string, timestamp: string, payload: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${payload}`).digest('base64');
  return `v1,${mac}`;
}

/** A sample `data` shaped like the SDK's event type for each family. */
function sampleData(type: string): Record<string, unknown> {
  const suffix = randomBytes(8).toString('hex');
  if (type === 'realtime.call.incoming')
    return {
      call_id: `rtc_test_${suffix}`,
      sip_headers: [
        { name: 'From', value: '"Test" <sip:+15550100000@example.com>;tag=test' },
        { name: 'To', value: '<sip:+15550100001@sip.api.openai.com>' },
        { name: 'Call-ID', value: `test-${suffix}` },
      ],
    };
  if (type.startsWith('batch.')) return { id: `batch_test_${suffix}` };
  if (type.startsWith('response.')) return { id: `resp_test_${suffix}` };
  if (type.startsWith('fine_tuning.')) return { id: `ftjob-test${suffix}` };
  if (type.startsWith('eval.')) return { id: `evalrun_test_${suffix}` };
  if (type.startsWith('video.')) return { id: `video_test_${suffix}` };
  if (type === 'agent.session.action_required')
    return { id: `sess_test_${suffix}`, required_action: { type: 'function_call' } };
  if (type.startsWith('agent.session.'))
    return { id: `sess_test_${suffix}`, environment_type: 'none' };
  return { id: `test_${suffix}` };
}

function apiError(code: string | null, message: string, param: string | null) {
  return { error: { message, type: 'invalid_request_error', param, code } };
}

function invalid(message: string, param: string | null): Reply {
  return { status: 400, body: apiError('invalid_value', message, param) };
}

function notFound(id: string): Reply {
  return {
    status: 404,
    body: apiError('not_found', `No webhook endpoint found with id '${id}'.`, null),
  };
}

/** The real API's 401 for a restricted key without a scope (code null, as observed). */
function missingScope(scope: 'read' | 'write'): Reply {
  return {
    status: 401,
    body: apiError(
      null,
      `You have insufficient permissions for this operation. Missing scopes: api.webhooks.${scope}. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.`,
      null,
    ),
  };
}

function objectBody(body: unknown): Record<string, unknown> | undefined {
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : undefined;
}

function missing(input: Record<string, unknown>, names: string[]): Reply | undefined {
  const name = names.find((n) => !Object.hasOwn(input, n));
  return name
    ? {
        status: 400,
        body: apiError(
          'missing_required_parameter',
          `Missing required parameter: '${name}'.`,
          name,
        ),
      }
    : undefined;
}

function eventTypesProblem(value: unknown): Reply | undefined {
  if (!Array.isArray(value) || value.length === 0)
    return invalid('event_types must be a non-empty array of event types.', 'event_types');
  const bad = value.find((t) => typeof t !== 'string' || !SDK_EVENT_TYPES.includes(t));
  return bad === undefined
    ? undefined
    : invalid(`Invalid value for event_types: ${JSON.stringify(bad)}.`, 'event_types');
}

function nameProblem(value: unknown): Reply | undefined {
  return typeof value === 'string' && value.trim().length > 0
    ? undefined
    : invalid('name must be a non-empty string.', 'name');
}

function urlProblem(value: unknown): Reply | undefined {
  if (typeof value !== 'string') return invalid('url must be a string.', 'url');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return invalid(`Invalid URL: ${JSON.stringify(value)}.`, 'url');
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) return undefined;
  return invalid('url must be an HTTPS URL.', 'url');
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function decode(value: string | undefined): string {
  return decodeURIComponent(value ?? '');
}
