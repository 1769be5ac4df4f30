/** The `response` object of a `response.create` (instructions and the like); empty for none. */
export type ResponseParams = Readonly<Record<string, unknown>>;

interface Request {
  readonly params: ResponseParams;
  /** A goodbye's or an announcement's words: not replaced by a later ordinary request. */
  readonly sticky: boolean;
}

/**
 * Serialises `response.create`: the server refuses one while a response is active
 * (`conversation_already_has_active_response`), so a request made then waits for `response.done`.
 * A request that waits keeps what it asked for: a goodbye's or an announcement's instructions
 * must reach the response that finally runs, not a bare `response.create`. Requests that wait
 * together become one response (the conversation items they answer are already in place), with
 * the latest request's params, except that an ordinary request never replaces a sticky one (a
 * tool's output arriving during a goodbye does not wipe the goodbye out), while a greeting that
 * had to wait gives way to the answer asked for after it. Pure: it only says what to send, and
 * when.
 */
export class ResponseSequencer {
  private active = false;
  private pending: Request | undefined;
  /** The last create sent: a conflict means the server refused it, so it is asked for again. */
  private sent: Request = { params: {}, sticky: false };

  /** The params to send now, or undefined: then they are sent after `response.done`. */
  request(params: ResponseParams = {}, options: { readonly sticky?: boolean } = {}) {
    const request = { params, sticky: options.sticky === true };
    if (this.active) {
      this.queue(request);
      return undefined;
    }
    // Optimistic: the server's `response.created` will confirm it.
    this.active = true;
    this.sent = request;
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
    return next.params;
  }

  /** The server refused our create: another response is running; retry after it is done. */
  onConflict(): void {
    this.active = true;
    const waiting = this.pending;
    this.pending = this.sent;
    if (waiting) this.queue(waiting);
  }

  get isWaiting(): boolean {
    return this.pending !== undefined;
  }

  /** What a waiting request asked for (to carry across a new socket), if one waits. */
  get waiting(): Request | undefined {
    return this.pending;
  }

  private queue(next: Request): void {
    if (this.pending?.sticky && !next.sticky) return;
    this.pending = next;
  }
}

/** The `response.create` frame for these params (no `response` key when there are none). */
export function responseCreate(params: ResponseParams): Record<string, unknown> {
  return {
    type: 'response.create',
    ...(Object.keys(params).length > 0 ? { response: params } : {}),
  };
}
