/**
 * A small OpenAI REST client: a timeout on every call, and retries with exponential backoff and
 * jitter on 429, 5xx and network errors, honouring `retry-after`. Only `fetch`: no SDK, so it fits
 * in any bundle, and the base URL is configurable so local mode and tests talk to the simulator.
 */

/** Where the client sends requests, with what key, and how patiently. */
export interface OpenAiClientOptions {
  readonly baseUrl: string;
  readonly apiKey: () => Promise<string>;
  readonly timeoutMs?: number;
  /** Total attempts for retryable failures. */
  readonly maxAttempts?: number;
  readonly fetch?: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export interface RequestOptions {
  readonly timeoutMs?: number;
  readonly maxAttempts?: number;
  readonly body?: unknown;
}

export class OpenAiApiError extends Error {
  override readonly name = 'OpenAiApiError';
  /** From the server's `retry-after`, when it sent one. */
  retryAfterMs: number | undefined;
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
  get retryable(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export const DEFAULT_OPENAI_BASE_URL = 'https://api.openai.com/v1';
const MAX_BACKOFF_MS = 4000;

export class OpenAiClient {
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  readonly baseUrl: string;

  constructor(private readonly options: OpenAiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  async request<T = unknown>(method: 'GET' | 'POST', path: string, options: RequestOptions = {}) {
    const maxAttempts = options.maxAttempts ?? this.options.maxAttempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(method, path, options);
      } catch (error) {
        const apiError = error instanceof OpenAiApiError ? error : undefined;
        if (!apiError?.retryable || attempt >= maxAttempts) throw error;
        const backoff = Math.min(MAX_BACKOFF_MS, 200 * 2 ** (attempt - 1));
        await this.sleep(apiError.retryAfterMs ?? backoff * (0.5 + this.random() / 2));
      }
    }
  }

  private async once<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 10_000;
    const headers: Record<string, string> = {
      authorization: `Bearer ${await this.options.apiKey()}`,
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const reason = error instanceof Error ? error.name : 'network error';
      throw new OpenAiApiError(0, 'network_error', `${method} ${path} failed: ${reason}`);
    }
    const text = await response.text();
    if (!response.ok) {
      const error = parseError(response.status, text, `${method} ${path}`);
      const retryAfter = Number(response.headers.get('retry-after'));
      if (Number.isFinite(retryAfter) && retryAfter > 0) {
        error.retryAfterMs = Math.min(MAX_BACKOFF_MS, retryAfter * 1000);
      }
      throw error;
    }
    return (text.length > 0 ? JSON.parse(text) : undefined) as T;
  }
}

function parseError(status: number, text: string, what: string): OpenAiApiError {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    return new OpenAiApiError(
      status,
      body.error?.code ?? undefined,
      `${what}: ${status} ${body.error?.message ?? ''}`.trim(),
    );
  } catch {
    return new OpenAiApiError(status, undefined, `${what}: ${status}`);
  }
}
