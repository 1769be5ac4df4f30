/**
 * Serialises `response.create`: the server refuses one while a response is active
 * (`conversation_already_has_active_response`), so a request made then waits for `response.done`.
 * Pure: it only says whether to send now.
 */
export class ResponseSequencer {
  private active = false;
  private pending = false;

  /** Returns true if the create should be sent now; otherwise it is sent after `response.done`. */
  request(): boolean {
    if (this.active) {
      this.pending = true;
      return false;
    }
    // Optimistic: the server's `response.created` will confirm it.
    this.active = true;
    return true;
  }

  onResponseCreated(): void {
    this.active = true;
  }

  /** Returns true if a deferred create should be sent now. */
  onResponseDone(): boolean {
    this.active = false;
    if (!this.pending) return false;
    this.pending = false;
    this.active = true;
    return true;
  }

  /** The server refused our create: another response is running; retry after it is done. */
  onConflict(): void {
    this.active = true;
    this.pending = true;
  }

  get isWaiting(): boolean {
    return this.pending;
  }
}
