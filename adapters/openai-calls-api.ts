import type { CallsApi } from '#core/ports/calls';
import { OpenAiApiError, type OpenAiClient } from './openai-client';

/**
 * A failed calls API request, saying whether OpenAI may have acted on it anyway: a timeout, a
 * network error or a 5xx may come after the server took the request, and so may any answer to a
 * retry of such a request. core/calls/incoming-call.ts (`acceptMayHaveSucceeded`) reads
 * `mayHaveSucceeded`.
 */
export class CallsApiError extends OpenAiApiError {
  constructor(
    cause: OpenAiApiError,
    readonly mayHaveSucceeded: boolean,
  ) {
    super(cause.status, cause.code, cause.message);
    this.retryAfterMs = cause.retryAfterMs;
  }
}

/** Whether a failed attempt may have reached OpenAI and been acted on. */
function mayHaveReached(error: OpenAiApiError): boolean {
  return error.status === 0 || error.status >= 500;
}

export interface OpenAiCallsApiOptions {
  /** Per attempt. @default 3000 */
  readonly timeoutMs?: number;
  /** Attempts for a 429, 5xx or network error. @default 2 */
  readonly maxAttempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * `/realtime/calls/{call_id}/…`. Each call is made once and retried once on 429, 5xx or a network
 * error, with a 3 s timeout: a phone rings for seconds, and a call accepted twice is worse than a
 * call not accepted. A 404 `call_id_not_found` means the call is gone, except when it answers the
 * retry of an accept that may already have been taken: then nobody knows, and the error says so.
 */
export class OpenAiCallsApi implements CallsApi {
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly client: OpenAiClient,
    options: OpenAiCallsApiOptions | number = {},
  ) {
    const o = typeof options === 'number' ? { timeoutMs: options } : options;
    this.timeoutMs = o.timeoutMs ?? 3000;
    this.maxAttempts = o.maxAttempts ?? 2;
    this.sleep = o.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  accept(callId: string, body: unknown) {
    return this.post(callId, 'accept', body, 'accepted' as const);
  }

  reject(callId: string, statusCode: number) {
    return this.post(callId, 'reject', { status_code: statusCode }, 'rejected' as const);
  }

  refer(callId: string, targetUri: string) {
    return this.post(callId, 'refer', { target_uri: targetUri }, 'referred' as const);
  }

  hangup(callId: string) {
    return this.post(callId, 'hangup', undefined, 'hung_up' as const);
  }

  private async post<T extends string>(
    callId: string,
    action: 'accept' | 'reject' | 'refer' | 'hangup',
    body: unknown,
    ok: T,
  ): Promise<T | 'gone'> {
    const path = `/realtime/calls/${encodeURIComponent(callId)}/${action}`;
    let uncertain = false;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.request('POST', path, {
          ...(body !== undefined ? { body } : {}),
          timeoutMs: this.timeoutMs,
          maxAttempts: 1,
        });
        return ok;
      } catch (error) {
        // Not an API answer (the key could not be read, a 2xx body was not JSON): rethrown as it
        // is, which the incoming-call use case treats as possibly accepted.
        if (!(error instanceof OpenAiApiError)) throw error;
        if (error.status === 404 && !(uncertain && action === 'accept')) return 'gone';
        uncertain ||= mayHaveReached(error);
        if (!error.retryable || attempt >= this.maxAttempts)
          throw new CallsApiError(error, uncertain);
        await this.sleep(error.retryAfterMs ?? 200);
      }
    }
  }
}
