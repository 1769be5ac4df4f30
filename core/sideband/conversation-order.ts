/**
 * Where each item sits in a Realtime conversation, as an order key per item id. The server says
 * where every item goes: `conversation.item.added` (and `.done`) carry `previous_item_id`, "used to
 * maintain ordering when items are inserted" (realtime.d.ts ConversationItemAdded,
 * ConversationItemDone). Transcripts arrive in another order: a caller's transcription "runs
 * asynchronously with Response creation, so this event may come before or after the Response
 * events" (realtime.d.ts ConversationItemInputAudioTranscriptionCompletedEvent). Pure.
 *
 * A key is about the epoch ms the item was added: an item appended at the end gets the later of
 * now and just after the last key, one inserted between two gets the midpoint. So keys grow across
 * a hand-off to another worker (whose map starts empty), and sort with parts that have only `at`.
 */
export class ConversationOrder {
  /** Items in conversation order. */
  private readonly items: { readonly id: string; readonly key: number }[] = [];
  private readonly keys = new Map<string, number>();

  /**
   * Places an item after `previousId` (null: first in the conversation; unknown or undefined: at
   * the end, as when it was added before this worker attached). Returns its key; an item already
   * placed keeps its key.
   */
  place(id: string, previousId: string | null | undefined, now: number): number {
    const known = this.keys.get(id);
    if (known !== undefined) return known;
    let at = this.items.length;
    if (previousId === null) at = 0;
    else if (previousId !== undefined && this.keys.has(previousId))
      at = this.items.findIndex((item) => item.id === previousId) + 1;
    const before = this.items[at - 1]?.key;
    const after = this.items[at]?.key;
    let key: number;
    if (after === undefined) key = before === undefined ? now : Math.max(now, before + STEP);
    else if (before === undefined) key = after - 1;
    else key = (before + after) / 2;
    this.items.splice(at, 0, { id, key });
    this.keys.set(id, key);
    if (this.items.length > MAX_ITEMS) this.forgetOldest();
    return key;
  }

  /** The key of an item, placing it at the end if it was never added. */
  keyOf(id: string | undefined, now: number): number {
    return id === undefined
      ? this.place(`#${now}`, undefined, now)
      : this.place(id, undefined, now);
  }

  /** Keeps memory bounded in a long call: items far back are not inserted after any more. */
  private forgetOldest(): void {
    for (const item of this.items.splice(0, this.items.length - MAX_ITEMS / 2))
      this.keys.delete(item.id);
  }
}

/** Just after the last key: a thousandth of a millisecond. */
const STEP = 0.001;
const MAX_ITEMS = 2000;
