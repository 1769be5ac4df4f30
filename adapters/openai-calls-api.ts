import type { CallsApi } from '#core/ports/calls';
import { OpenAiApiError, type OpenAiClient } from './openai-client';

/**
 * `/realtime/calls/{call_id}/…`. Each call is made once and retried once on 5xx or a network
 * error, with a 3 s timeout: a phone rings for seconds, and a call accepted twice is worse than a
 * call not accepted. A 404 `call_id_not_found` means the call is gone.
 */
export class OpenAiCallsApi implements CallsApi {
  constructor(
    private readonly client: OpenAiClient,
    private readonly timeoutMs = 3000,
  ) {}

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
    action: string,
    body: unknown,
    ok: T,
  ): Promise<T | 'gone'> {
    try {
      await this.client.request('POST', `/realtime/calls/${encodeURIComponent(callId)}/${action}`, {
        ...(body !== undefined ? { body } : {}),
        timeoutMs: this.timeoutMs,
        maxAttempts: 2,
      });
      return ok;
    } catch (error) {
      if (error instanceof OpenAiApiError && error.status === 404) return 'gone';
      throw error;
    }
  }
}
