/**
 * OpenAI's webhook endpoint API over `fetch`, for the custom resource, the rotation Lambda and the
 * CLI. Paths and shapes follow the `openai` package (7.55.0): resources/webhooks/webhooks.js
 * (`/webhook_endpoints`, `/webhook_endpoints/{id}`, `…/rotate_secret`, `…/test`) and
 * event-types.js (`/webhook_event_types`); types in webhooks.d.ts. The SDK itself is not bundled
 * (as for the rest of the OpenAI calls here: adapters/openai-client.ts).
 *
 * Only reads and deletes are retried: a retried create would register a second endpoint, and a
 * retried rotate would throw away the secret the first attempt issued.
 */
import { OpenAiApiError } from './openai-client';

export interface WebhookEndpoint {
  readonly id: string;
  readonly object: 'webhook_endpoint';
  readonly created_at: number;
  readonly updated_at?: number;
  readonly name: string;
  readonly url: string;
  readonly event_types: string[];
  readonly signing_secret_hint: string | null;
}

/** Returned by create and rotate_secret only: the one time the secret is readable. */
export interface WebhookEndpointWithSecret extends WebhookEndpoint {
  readonly signing_secret: string;
}

export interface WebhookEndpointTestResult {
  readonly object: 'webhook_endpoint.test';
  readonly event_type: string;
  readonly status_code: number;
  readonly success: true;
  readonly webhook_endpoint_id: string;
}

export interface WebhookEndpointsOptions {
  /** e.g. `https://api.openai.com/v1`. */
  readonly baseUrl: string;
  readonly apiKey: () => Promise<string>;
  /** Per request. @default 15 s (a test waits for the endpoint to answer) */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
}

export class OpenAiWebhookEndpoints {
  private readonly baseUrl: string;
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly options: WebhookEndpointsOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  create(body: { url: string; name: string; event_types: readonly string[] }) {
    return this.call<WebhookEndpointWithSecret>('POST', '/webhook_endpoints', body);
  }

  retrieve(id: string) {
    return this.call<WebhookEndpoint>('GET', `/webhook_endpoints/${encodeURIComponent(id)}`);
  }

  update(id: string, body: { url?: string; name?: string; event_types?: readonly string[] }) {
    return this.call<WebhookEndpoint>('POST', `/webhook_endpoints/${encodeURIComponent(id)}`, body);
  }

  /** Every endpoint of the project, newest first (follows `has_more` with `after`). */
  async list(): Promise<WebhookEndpoint[]> {
    const all: WebhookEndpoint[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const query = new URLSearchParams({ limit: '100', ...(after ? { after } : {}) });
      const result = await this.call<{
        data: WebhookEndpoint[];
        has_more: boolean;
        last_id: string | null;
      }>('GET', `/webhook_endpoints?${query}`);
      all.push(...result.data);
      if (!result.has_more || !result.last_id) break;
      after = result.last_id;
    }
    return all;
  }

  delete(id: string) {
    return this.call<{ id: string; deleted: boolean }>(
      'DELETE',
      `/webhook_endpoints/${encodeURIComponent(id)}`,
    );
  }

  rotateSecret(id: string, body: { keep_old_secret_active_for_24_hours?: boolean }) {
    return this.call<WebhookEndpointWithSecret>(
      'POST',
      `/webhook_endpoints/${encodeURIComponent(id)}/rotate_secret`,
      body,
    );
  }

  test(id: string, eventType: string) {
    return this.call<WebhookEndpointTestResult>(
      'POST',
      `/webhook_endpoints/${encodeURIComponent(id)}/test`,
      { event_type: eventType },
    );
  }

  async eventTypes(): Promise<string[]> {
    return (await this.call<{ data: string[] }>('GET', '/webhook_event_types')).data;
  }

  private async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) {
    const attempts = method === 'POST' ? 1 : 3;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(method, path, body);
      } catch (error) {
        if (!(error instanceof OpenAiApiError) || !error.retryable || attempt >= attempts)
          throw error;
        await this.sleep(error.retryAfterMs ?? 200 * 2 ** (attempt - 1));
      }
    }
  }

  private async once<T>(method: string, path: string, body: unknown): Promise<T> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${await this.options.apiKey()}`,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const what = `${method} ${path.split('?')[0]}`;
    let response: Response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
    } catch (error) {
      const reason = error instanceof Error ? error.name : 'network error';
      throw new OpenAiApiError(0, 'network_error', `${what} failed: ${reason}`);
    }
    const text = await response.text();
    if (!response.ok) {
      let message = '';
      let code: string | undefined;
      try {
        const parsed = JSON.parse(text) as { error?: { code?: string | null; message?: string } };
        message = parsed.error?.message ?? '';
        code = parsed.error?.code ?? undefined;
      } catch {
        // Not JSON: the status says enough.
      }
      const error = new OpenAiApiError(
        response.status,
        code,
        `${what}: ${response.status} ${message}`.trim(),
      );
      const retryAfter = Number(response.headers.get('retry-after'));
      if (Number.isFinite(retryAfter) && retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
      throw error;
    }
    return JSON.parse(text) as T;
  }
}

/**
 * A key that may not manage webhooks: OpenAI answers 401 "You have insufficient permissions for
 * this operation. Missing scopes: …" (a restricted key without the scope), or 403.
 */
export function isPermissionError(error: unknown): boolean {
  return (
    error instanceof OpenAiApiError &&
    (error.status === 403 ||
      (error.status === 401 && /insufficient permissions|missing scopes/i.test(error.message)))
  );
}

/** One sentence for a failed call, with what to do about the common causes. */
export function explainEndpointError(error: unknown, action: string): string {
  if (isPermissionError(error))
    return `OpenAI refused to ${action}: the API key may not manage webhook endpoints. Give the key (or its restricted scopes) write access to Webhooks in the OpenAI project settings, or register the endpoint by hand (README "Deploy"). OpenAI said: ${(error as Error).message}`;
  if (error instanceof OpenAiApiError && error.status === 401)
    return `OpenAI refused to ${action}: the API key was not accepted (${error.message}). Check the key in Secrets Manager.`;
  return `Could not ${action}: ${error instanceof Error ? error.message : String(error)}`;
}
