/**
 * Object-state projection. Each OpenAI object a webhook talks about (a batch, a fine-tuning job,
 * an eval run, a response, a call) keeps its latest status and the history of transitions.
 *
 * The rules make the result independent of delivery order: the latest status is the one carried
 * by the event with the greatest `created_at` (event id breaks ties), and an event already in the
 * history is never applied twice. So duplicates and out-of-order deliveries never move an object
 * back to an older state.
 */
import type { WebhookEvent } from './envelope';

export interface ObjectRef {
  readonly objectId: string;
  readonly objectType: string;
  readonly status: string;
}

export interface Transition {
  readonly status: string;
  readonly type: string;
  readonly eventId: string;
  readonly createdAt: number;
  readonly receivedAt: number;
}

export interface ObjectState {
  readonly objectId: string;
  readonly objectType: string;
  readonly status: string;
  readonly statusEventId: string;
  readonly statusCreatedAt: number;
  /** Oldest first, at most MAX_HISTORY entries (the newest are kept). */
  readonly history: readonly Transition[];
  /** Fields fetched from the OpenAI API (hydration), if any. */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly detailsFetchedAt?: number;
  readonly hydrationError?: string;
  readonly updatedAt: number;
  /** Optimistic-concurrency counter, bumped on every write. */
  readonly version: number;
}

export const MAX_HISTORY = 100;

const TYPE_PREFIXES: readonly (readonly [prefix: string, objectType: string])[] = [
  ['batch.', 'batch'],
  ['fine_tuning.job.', 'fine_tuning.job'],
  ['eval.run.', 'eval.run'],
  ['response.', 'response'],
];

/** Which object an event is about, and the status it announces. `undefined`: no object. */
export function objectRefOf(event: Pick<WebhookEvent, 'type' | 'data'>): ObjectRef | undefined {
  const { type, data } = event;
  if (type === 'realtime.call.incoming') {
    const callId = data.call_id;
    return typeof callId === 'string' && callId.length > 0
      ? { objectId: callId, objectType: 'realtime.call', status: 'incoming' }
      : undefined;
  }
  const id = data.id;
  if (typeof id !== 'string' || id.length === 0) return undefined;
  for (const [prefix, objectType] of TYPE_PREFIXES) {
    if (type.startsWith(prefix)) {
      return { objectId: id, objectType, status: type.slice(prefix.length) };
    }
  }
  // Unknown families: `safety.warning_issued` → object type "safety", status "warning_issued".
  const lastDot = type.lastIndexOf('.');
  if (lastDot <= 0) return { objectId: id, objectType: type, status: type };
  return { objectId: id, objectType: type.slice(0, lastDot), status: type.slice(lastDot + 1) };
}

export function isNewer(
  a: Pick<Transition, 'createdAt' | 'eventId'>,
  b: Pick<Transition, 'createdAt' | 'eventId'>,
): boolean {
  return a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.eventId > b.eventId);
}

export interface ApplyResult {
  readonly state: ObjectState;
  /** False when the event was already applied: nothing to write. */
  readonly changed: boolean;
}

export function applyTransition(
  previous: ObjectState | undefined,
  ref: ObjectRef,
  transition: Transition,
  now: number,
): ApplyResult {
  if (previous === undefined) {
    return {
      changed: true,
      state: {
        objectId: ref.objectId,
        objectType: ref.objectType,
        status: transition.status,
        statusEventId: transition.eventId,
        statusCreatedAt: transition.createdAt,
        history: [transition],
        updatedAt: now,
        version: 1,
      },
    };
  }
  if (previous.history.some((t) => t.eventId === transition.eventId)) {
    return { changed: false, state: previous };
  }
  const history = [...previous.history, transition]
    .sort((x, y) => (isNewer(x, y) ? 1 : isNewer(y, x) ? -1 : 0))
    .slice(-MAX_HISTORY);
  const current = { createdAt: previous.statusCreatedAt, eventId: previous.statusEventId };
  const newest = isNewer(transition, current);
  return {
    changed: true,
    state: {
      ...previous,
      history,
      status: newest ? transition.status : previous.status,
      statusEventId: newest ? transition.eventId : previous.statusEventId,
      statusCreatedAt: newest ? transition.createdAt : previous.statusCreatedAt,
      updatedAt: now,
      version: previous.version + 1,
    },
  };
}

/**
 * Records what the OpenAI API said about the object. A fetch always reflects the object's state
 * at fetch time, so the most recent fetch wins regardless of which event triggered it.
 */
export function applyDetails(
  state: ObjectState,
  details: Readonly<Record<string, unknown>>,
  fetchedAt: number,
): ObjectState {
  if (state.detailsFetchedAt !== undefined && state.detailsFetchedAt > fetchedAt) return state;
  const { hydrationError: _cleared, ...rest } = state;
  return { ...rest, details, detailsFetchedAt: fetchedAt, version: state.version + 1 };
}

export function applyHydrationError(state: ObjectState, error: string): ObjectState {
  return { ...state, hydrationError: error, version: state.version + 1 };
}
