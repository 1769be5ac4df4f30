/** The `response` object of a `response.create` (instructions and the like); empty for none. */
export type ResponseParams = Readonly<Record<string, unknown>>;

/**
 * Serialises `response.create`: the server refuses one while a response is active
 * (`conversation_already_has_active_response`), so a request made then waits for `response.done`.
 * A request that waits keeps what it asked for: a goodbye's or an announcement's instructions
 * must reach the response that finally runs, not a bare `response.create`. Requests that wait
 * together become one response (the conversation items they answer are already in place); a
 * later request's fields win, so a plain request after a goodbye keeps the goodbye's
 * instructions. Pure: it only says what to send, and when.
 */
export class ResponseSequencer {
  private active = false;
  private pending: ResponseParams | undefined;
  /** The last create sent: a conflict means the server refused it, so it is asked for again. */
  private sent: ResponseParams = {};

  /** The params to send now, or undefined: then they are sent after `response.done`. */
  request(params: ResponseParams = {}): ResponseParams | undefined {
    if (this.active) {
      this.pending = { ...this.pending, ...params };
      return undefined;
    }
    // Optimistic: the server's `response.created` will confirm it.
    this.active = true;
    this.sent = params;
    return params;
  }

  onResponseCreated(): void {
    this.active = true;
  }

  /** The params of a deferred create to send now, if one waits. */
  onResponseDone(): ResponseParams | undefined {
    this.active = false;
    const next = this.pending;
    if (next === undefined) return undefined;
    this.pending = undefined;
    this.active = true;
    this.sent = next;
    return next;
  }

  /** The server refused our create: another response is running; retry after it is done. */
  onConflict(): void {
    this.active = true;
    this.pending = { ...this.sent, ...this.pending };
  }

  get isWaiting(): boolean {
    return this.pending !== undefined;
  }

  /** What a waiting request asked for (to carry across a new socket), if one waits. */
  get waiting(): ResponseParams | undefined {
    return this.pending;
  }
}

/** The `response.create` frame for these params (no `response` key when there are none). */
export function responseCreate(params: ResponseParams): Record<string, unknown> {
  return {
    type: 'response.create',
    ...(Object.keys(params).length > 0 ? { response: params } : {}),
  };
}
