import { createHash } from 'node:crypto';
/**
 * In-memory fakes of the ports the use cases talk to, for fast tests with no DynamoDB, no SQS and
 * no network. Each fake keeps the semantics its adapter has (conditional writes, lost races,
 * capacity counting), records what it was asked, and can be told to fail; a shared `Journal`
 * records the order of calls across fakes.
 */
import type { CallStatus } from '#core/calls/call-state';
import type { Logger } from '#core/observability/logger';
import type { MetricPoint, MetricsPublisher } from '#core/observability/metrics';
import type {
  CallRecord,
  CallSignal,
  CallStore,
  CallsApi,
  ServiceScaler,
  SignalPublisher,
} from '#core/ports/calls';
import type {
  EventHead,
  EventPublisher,
  EventStore,
  HeadOutcome,
  HydrationResult,
  Hydrator,
  PayloadStore,
  StoredEventRecord,
  WebhookLedger,
} from '#core/ports/webhooks';
import type { ObjectState } from '#core/webhooks/projection';
import type { PayloadRef, QueuedWebhook } from '#core/webhooks/queue-message';
import type { WebhookSecrets } from '#core/webhooks/receive-webhook';
import type { WebhookSecret } from '#core/webhooks/signature';

/** 2027-01-15T08:00:00Z: a fixed "now" for every fake clock. */
export const T0 = 1_800_000_000_000;

/** A clock that only moves when told to. `read` is what a use case takes as its `clock`. */
export class FakeClock {
  constructor(public now = T0) {}
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
  get seconds(): number {
    return Math.floor(this.now / 1000);
  }
}

/** The order of calls across fakes, as `name.operation` entries. */
export class Journal {
  readonly entries: string[] = [];
  add(entry: string): void {
    this.entries.push(entry);
  }
}

/** Failures a test injects: the next `times` calls of an operation throw `error`. */
export class Faults<Op extends string> {
  private readonly pending = new Map<Op, { error: Error; times: number }>();

  fail(op: Op, error: Error = new Error(`${op} failed`), times = 1): void {
    this.pending.set(op, { error, times });
  }

  /** Throws if a failure is pending for this operation. */
  check(op: Op): void {
    const fault = this.pending.get(op);
    if (!fault) return;
    fault.times--;
    if (fault.times <= 0) this.pending.delete(op);
    throw fault.error;
  }
}

/** A promise resolved from outside: holds a fake call open while a test does something else. */
export class Gate {
  private release: () => void = () => undefined;
  readonly opened: Promise<void> = new Promise((resolve) => {
    this.release = resolve;
  });
  open(): void {
    this.release();
  }
}

/** Waits until `condition` holds, yielding to other promises (no timers: fakes are in-memory). */
export async function settle(condition: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`${what} never happened`);
}

// ---------------------------------------------------------------------------------------------
// Observability

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly message: string;
  /** The logger's context (from `with`) merged with the line's own fields. */
  readonly fields: Record<string, unknown>;
}

/** A logger that keeps every line, context included, for assertions. */
export class CapturingLogger implements Logger {
  constructor(
    readonly lines: LogLine[] = [],
    private readonly context: Record<string, unknown> = {},
  ) {}
  debug(message: string, fields?: Record<string, unknown>): void {
    this.push('debug', message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.push('info', message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.push('warn', message, fields);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.push('error', message, fields);
  }
  with(fields: Record<string, unknown>): Logger {
    return new CapturingLogger(this.lines, { ...this.context, ...fields });
  }
  /** The first line with this message, if any. */
  find(message: string): LogLine | undefined {
    return this.lines.find((line) => line.message === message);
  }
  messages(level?: LogLine['level']): string[] {
    return this.lines.filter((l) => !level || l.level === level).map((l) => l.message);
  }
  private push(level: LogLine['level'], message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level, message, fields: { ...this.context, ...fields } });
  }
}

/** Keeps every metrics publication; `publish` is what a use case takes as its `metrics`. */
export class MetricsRecorder {
  /** One entry per call of `publish`. */
  readonly batches: (readonly MetricPoint[])[] = [];
  readonly publish: MetricsPublisher = (points) => {
    this.batches.push([...points]);
  };
  get points(): MetricPoint[] {
    return this.batches.flat();
  }
  /** `Name` or `Name{dimension value}`, in order. */
  names(): string[] {
    return this.points.map((p) => (p.dimension ? `${p.name}{${p.dimension.value}}` : p.name));
  }
  value(name: MetricPoint['name']): number | undefined {
    return this.points.find((p) => p.name === name)?.value;
  }
  clear(): void {
    this.batches.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/**
 * Event heads (the dedupe records), with the conditions of `DynamoWebhookLedger`: put once per
 * event id; a second put finds the first (its own token counts as its own).
 */
export class InMemoryWebhookLedger implements WebhookLedger {
  readonly entries = new Map<string, EventHead>();
  /** Every head an attempt tried to record, in order. */
  readonly records: EventHead[] = [];
  readonly faults = new Faults<'seen' | 'record'>();

  constructor(private readonly journal?: Journal) {}

  async seen(eventId: string): Promise<boolean> {
    this.journal?.add('ledger.seen');
    this.faults.check('seen');
    return this.entries.has(eventId);
  }

  async record(head: EventHead): Promise<HeadOutcome> {
    this.journal?.add('ledger.record');
    this.records.push(head);
    this.faults.check('record');
    const existing = this.entries.get(head.eventId);
    if (!existing) {
      this.entries.set(head.eventId, head);
      return { kind: 'recorded' };
    }
    if (head.token !== undefined && existing.token === head.token) return { kind: 'recorded' };
    return { kind: 'duplicate', webhookId: existing.webhookId };
  }
}

/** The claim-check bucket: content-addressed, like `S3PayloadStore`. */
export class InMemoryPayloadStore implements PayloadStore {
  readonly objects = new Map<string, Buffer>();
  readonly faults = new Faults<'put' | 'get'>();

  constructor(private readonly journal?: Journal) {}

  async put(body: Uint8Array): Promise<PayloadRef> {
    this.journal?.add('payloads.put');
    this.faults.check('put');
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `payloads/${sha256}`;
    this.objects.set(key, Buffer.from(body));
    return { bucket: 'payloads', key, bytes: body.length, sha256 };
  }

  async get(ref: PayloadRef): Promise<Buffer> {
    this.journal?.add('payloads.get');
    this.faults.check('get');
    const found = this.objects.get(ref.key);
    if (!found) throw new Error(`NoSuchKey: ${ref.key}`);
    return found;
  }
}

/** A category queue: keeps what was published. `hold` keeps the next publish open until opened. */
export class InMemoryEventPublisher implements EventPublisher {
  readonly published: QueuedWebhook[] = [];
  /** Every call, including the ones that failed. */
  attempts = 0;
  readonly faults = new Faults<'publish'>();
  /** Runs inside each publish, before it succeeds or fails (to advance a clock, say). */
  during: (message: QueuedWebhook) => Promise<void> | void = () => undefined;

  constructor(private readonly journal?: Journal) {}

  async publish(message: QueuedWebhook): Promise<void> {
    this.journal?.add('publisher.publish');
    this.attempts++;
    await this.during(message);
    this.faults.check('publish');
    this.published.push(message);
  }
}

/**
 * The webhook secrets: `cached` is what the ingress verifies with, `stored` what Secrets Manager
 * holds. `forceRefresh` copies stored to cached unless `refreshAllowed` is false (rate-limited).
 */
export class FakeWebhookSecrets implements WebhookSecrets {
  cached: readonly WebhookSecret[];
  stored: readonly WebhookSecret[];
  refreshAllowed = true;
  gets = 0;
  refreshes = 0;
  readonly faults = new Faults<'get' | 'forceRefresh'>();

  constructor(secrets: readonly WebhookSecret[]) {
    this.cached = secrets;
    this.stored = secrets;
  }

  async get(): Promise<readonly WebhookSecret[]> {
    this.gets++;
    this.faults.check('get');
    return this.cached;
  }

  async forceRefresh(): Promise<boolean> {
    this.refreshes++;
    this.faults.check('forceRefresh');
    if (!this.refreshAllowed) return false;
    this.cached = this.stored;
    return true;
  }
}

/**
 * Events and object states, with the conditions of `DynamoEventStore`: the head's token decides
 * which message of an event counts, the body is written with the outcome (first too on a retry),
 * a failure never overwrites a success, and `putObject` writes only over the version it read.
 */
export class InMemoryEventStore implements EventStore {
  readonly events = new Map<string, StoredEventRecord>();
  readonly objects = new Map<string, ObjectState>();
  readonly faults = new Faults<
    'recordReceived' | 'markProcessed' | 'markFailed' | 'getObject' | 'putObject'
  >();
  /** Every putObject call with whether it won. */
  readonly puts: { objectId: string; expectedVersion: number | undefined; won: boolean }[] = [];
  /**
   * Runs at the start of each putObject, before the version check: a test can write the object
   * here (see `forcePut`) to make the use case lose the race.
   */
  beforePut: (state: ObjectState, expectedVersion: number | undefined) => Promise<void> | void =
    () => undefined;

  constructor(private readonly journal?: Journal) {}

  /** The token each event's head names (`undefined`: a head without one). */
  readonly heads = new Map<string, string | undefined>();

  async recordReceived(
    record: StoredEventRecord,
    options: { readonly storeFirst: boolean },
  ): Promise<'new' | 'pending' | 'processed' | 'duplicate'> {
    this.journal?.add('store.recordReceived');
    this.faults.check('recordReceived');
    if (!this.heads.has(record.eventId)) this.heads.set(record.eventId, record.token);
    const headToken = this.heads.get(record.eventId);
    if (record.token !== undefined && headToken !== undefined && headToken !== record.token)
      return 'duplicate';
    const existing = this.events.get(record.eventId);
    if (existing?.status === 'processed') return 'processed';
    if (!existing && options.storeFirst) this.events.set(record.eventId, { ...record });
    return existing ? 'pending' : 'new';
  }

  async markProcessed(record: StoredEventRecord, attempt: number, now: number): Promise<void> {
    this.journal?.add('store.markProcessed');
    this.faults.check('markProcessed');
    const { lastError: _removed, ...rest } = record;
    this.events.set(record.eventId, {
      ...rest,
      status: 'processed',
      processedAt: now,
      attempts: attempt,
    });
  }

  async markFailed(
    record: StoredEventRecord,
    error: string,
    attempt: number,
    _now: number,
  ): Promise<void> {
    this.journal?.add('store.markFailed');
    this.faults.check('markFailed');
    const existing = this.events.get(record.eventId);
    // A late failure report must not undo a success recorded by another delivery.
    if (existing?.status === 'processed')
      throw new Error(`The conditional request failed: event ${record.eventId}.`);
    this.events.set(record.eventId, {
      ...record,
      status: 'failed',
      lastError: error.slice(0, 1000),
      attempts: attempt,
    });
  }

  async getEvent(eventId: string): Promise<StoredEventRecord | undefined> {
    return this.events.get(eventId);
  }

  async getObject(objectId: string): Promise<ObjectState | undefined> {
    this.journal?.add('store.getObject');
    this.faults.check('getObject');
    return this.objects.get(objectId);
  }

  async putObject(state: ObjectState, expectedVersion: number | undefined): Promise<boolean> {
    this.journal?.add('store.putObject');
    await this.beforePut(state, expectedVersion);
    this.faults.check('putObject');
    const current = this.objects.get(state.objectId);
    const won =
      expectedVersion === undefined ? current === undefined : current?.version === expectedVersion;
    this.puts.push({ objectId: state.objectId, expectedVersion, won });
    if (won) this.objects.set(state.objectId, state);
    return won;
  }

  /** Writes an object state directly, as another consumer would have: the race a test sets up. */
  forcePut(state: ObjectState): void {
    this.objects.set(state.objectId, state);
  }
}

/**
 * The OpenAI API for hydration. Answers from `results` per object id (an `Error` is thrown),
 * else `fetched` with `{ id, status: 'completed' }`.
 */
export class FakeHydrator implements Hydrator {
  readonly requests: { objectType: string; objectId: string }[] = [];
  readonly results = new Map<string, HydrationResult | Error>();

  constructor(private readonly journal?: Journal) {}

  async hydrate(objectType: string, objectId: string): Promise<HydrationResult> {
    this.journal?.add('hydrator.hydrate');
    this.requests.push({ objectType, objectId });
    const result = this.results.get(objectId);
    if (result instanceof Error) throw result;
    return result ?? { kind: 'fetched', details: { id: objectId, status: 'completed' } };
  }
}

// ---------------------------------------------------------------------------------------------
// Calls

/**
 * Call records and the capacity counter, with the conditions of `DynamoCallStore`: `create` only
 * if absent, `transition` only from the given statuses, and a capacity slot taken at most once
 * per call and given back only by the call that holds it.
 */
export class InMemoryCallStore implements CallStore {
  readonly records = new Map<string, CallRecord>();
  /** Calls holding a capacity slot, account-wide. */
  active = 0;
  readonly faults = new Faults<'create' | 'get' | 'transition' | 'reserveCapacity'>();
  /** Every transition asked for, and whether its guard held. */
  readonly transitions: {
    callId: string;
    from: readonly CallStatus[];
    to: CallStatus;
    release: boolean;
    applied: boolean;
  }[] = [];
  /** Runs before each reservation (to let another call take the last slot, say). */
  beforeReserve: (callId: string) => Promise<void> | void = () => undefined;
  /** Throws before a transition to this status is applied (a store failure at that step). */
  failTransitionTo: CallStatus | undefined;
  /** How many transitions to `failTransitionTo` fail in a row (3 outlasts the in-handler retry). */
  failTransitionTimes = 1;
  /** Throws after a transition to this status is applied: the write happened, the answer was lost. */
  loseAnswerOfTransitionTo: CallStatus | undefined;

  constructor(private readonly journal?: Journal) {}

  async create(record: CallRecord): Promise<boolean> {
    this.journal?.add('calls.create');
    this.faults.check('create');
    if (this.records.has(record.callId)) return false;
    this.records.set(record.callId, { ...record });
    return true;
  }

  async get(callId: string): Promise<CallRecord | undefined> {
    this.faults.check('get');
    const record = this.records.get(callId);
    return record ? { ...record } : undefined;
  }

  async transition(
    callId: string,
    from: readonly CallStatus[],
    to: CallStatus,
    fields: Partial<CallRecord> = {},
    options: { release?: boolean } = {},
  ): Promise<boolean> {
    this.journal?.add(`calls.transition:${to}`);
    this.faults.check('transition');
    if (this.failTransitionTo === to) {
      this.failTransitionTimes--;
      if (this.failTransitionTimes <= 0) {
        this.failTransitionTo = undefined;
        this.failTransitionTimes = 1;
      }
      throw new Error(`DynamoDB unavailable (transition to ${to})`);
    }
    const record = this.records.get(callId);
    const applied = record !== undefined && from.includes(record.status);
    this.transitions.push({ callId, from, to, release: options.release === true, applied });
    if (!record || !applied) return false;
    const next: Record<string, unknown> = { ...record, status: to };
    for (const [field, value] of Object.entries(fields)) {
      if (value === undefined || field === 'status' || field === 'callId') continue;
      next[field] = value;
    }
    // The slot goes back only if this call holds it, in the same step as the move.
    if (options.release && record.holdsCapacity === true && this.active > 0) {
      this.active--;
      next.holdsCapacity = false;
    }
    this.records.set(callId, next as unknown as CallRecord);
    if (this.loseAnswerOfTransitionTo === to) {
      this.loseAnswerOfTransitionTo = undefined;
      throw new Error(`socket hang up (transition to ${to}, applied)`);
    }
    return true;
  }

  async reserveCapacity(callId: string, max: number): Promise<boolean> {
    this.journal?.add('calls.reserveCapacity');
    await this.beforeReserve(callId);
    this.faults.check('reserveCapacity');
    const record = this.records.get(callId);
    if (!record) return false;
    // Already holding one (a redelivery) counts as reserved.
    if (record.holdsCapacity === true) return true;
    if (this.active >= max) return false;
    this.active++;
    this.records.set(callId, { ...record, holdsCapacity: true });
    return true;
  }

  async activeCalls(): Promise<number> {
    return this.active;
  }

  /** Another call that holds a slot (to fill capacity). */
  occupy(callId: string): void {
    this.records.set(callId, {
      callId,
      status: 'active',
      eventId: `evt_${callId}`,
      webhookId: `wh_${callId}`,
      createdAt: 0,
      receivedAt: 0,
      holdsCapacity: true,
      expiresAt: 0,
    });
    this.active++;
  }
}

/**
 * An error as the calls API adapter throws it: an HTTP `status` (0 for a network error or a
 * timeout), optionally marked `mayHaveSucceeded` (adapters/openai-calls-api.ts).
 */
export function apiError(
  status: number,
  message = `HTTP ${status}`,
  mayHaveSucceeded?: boolean,
): Error & { status: number; mayHaveSucceeded?: boolean } {
  return Object.assign(new Error(message), {
    status,
    ...(mayHaveSucceeded !== undefined ? { mayHaveSucceeded } : {}),
  });
}

/**
 * The OpenAI calls API: records each request and answers `acceptResult`/`rejectResult` (an
 * `Error` is thrown). `acceptGate`/`rejectGate`, when set, hold each accept/reject open until
 * they are opened.
 */
export class FakeCallsApi implements CallsApi {
  readonly accepts: { callId: string; body: unknown }[] = [];
  readonly rejects: { callId: string; statusCode: number }[] = [];
  readonly refers: { callId: string; targetUri: string }[] = [];
  readonly hangups: string[] = [];
  acceptResult: 'accepted' | 'gone' | Error = 'accepted';
  rejectResult: 'rejected' | 'gone' | Error = 'rejected';
  acceptGate: Gate | undefined;
  rejectGate: Gate | undefined;

  constructor(private readonly journal?: Journal) {}

  async accept(callId: string, body: unknown): Promise<'accepted' | 'gone'> {
    this.journal?.add('api.accept');
    this.accepts.push({ callId, body });
    const gate = this.acceptGate;
    if (gate) await gate.opened;
    if (this.acceptResult instanceof Error) throw this.acceptResult;
    return this.acceptResult;
  }

  async reject(callId: string, statusCode: number): Promise<'rejected' | 'gone'> {
    this.journal?.add('api.reject');
    this.rejects.push({ callId, statusCode });
    const gate = this.rejectGate;
    if (gate) await gate.opened;
    if (this.rejectResult instanceof Error) throw this.rejectResult;
    return this.rejectResult;
  }

  async refer(callId: string, targetUri: string): Promise<'referred' | 'gone'> {
    this.refers.push({ callId, targetUri });
    return 'referred';
  }

  async hangup(callId: string): Promise<'hung_up' | 'gone'> {
    this.hangups.push(callId);
    return 'hung_up';
  }
}

/** The worker signal queue. */
export class InMemorySignalPublisher implements SignalPublisher {
  readonly signals: CallSignal[] = [];
  readonly faults = new Faults<'signal'>();

  constructor(private readonly journal?: Journal) {}

  async signal(message: CallSignal): Promise<void> {
    this.journal?.add('signals.signal');
    this.faults.check('signal');
    this.signals.push(message);
  }
}

/** The sideband service: scaled to zero until the first `ensureRunning`, which reports it cold. */
export class FakeServiceScaler implements ServiceScaler {
  calls = 0;
  readonly faults = new Faults<'ensureRunning'>();

  constructor(
    public running = false,
    private readonly journal?: Journal,
  ) {}

  async ensureRunning(): Promise<boolean> {
    this.journal?.add('scaler.ensureRunning');
    this.calls++;
    this.faults.check('ensureRunning');
    if (this.running) return false;
    this.running = true;
    return true;
  }
}
