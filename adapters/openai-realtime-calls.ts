import type { RealtimeCallsCreator } from '#core/webrtc/session-endpoint';

export interface OpenAiRealtimeCallsOptions {
  /** e.g. `https://api.openai.com/v1` (the stack's `openAiBaseUrl`). */
  readonly baseUrl: string;
  readonly apiKey: () => Promise<string>;
  /**
   * One attempt, no retry: a retried create would open a second call at OpenAI. The browser
   * retries if it wants to. @default 10000
   */
  readonly timeoutMs?: number;
}

/**
 * `POST {baseUrl}/realtime/calls` with the project key (openapi.yaml operationId
 * create-realtime-call; node_modules/openai resources/realtime/calls.d.ts `create`). The answer
 * is read whole: a `201` with `Location: /v1/realtime/calls/<call_id>` and the SDP answer, or an
 * error status with OpenAI's `{error:{code,message}}`. Throws only when there is no answer
 * (network, timeout).
 */
export class OpenAiRealtimeCalls implements RealtimeCallsCreator {
  constructor(private readonly options: OpenAiRealtimeCallsOptions) {}

  async create(request: { readonly contentType: string; readonly body: string }) {
    const key = await this.options.apiKey();
    const response = await fetch(`${this.options.baseUrl.replace(/\/+$/, '')}/realtime/calls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': request.contentType },
      body: request.body,
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
    });
    return {
      status: response.status,
      location: response.headers.get('location') ?? undefined,
      body: await response.text(),
    };
  }
}
