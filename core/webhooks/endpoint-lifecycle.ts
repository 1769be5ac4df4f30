/**
 * The webhook endpoint's life, as pure logic: which event types may be subscribed, what has to
 * change to bring a registered endpoint to the desired state, and the stored secret's shape
 * through a rotation. No I/O, no clock (callers pass `now`).
 *
 * Reference: the `openai` package (7.55.0), resources/webhooks/webhooks.d.ts:
 * - `WebhookCreateParams.event_types` (and the same union in `WebhookUpdateParams` and
 *   `WebhookTestParams.event_type`) is the list of subscribable types;
 * - `WebhookUpdateParams.event_types` is "the complete set of event types" (a replacement);
 * - `WebhookEndpointWithSecret.signing_secret` "is returned only when the endpoint is created or
 *   the secret is rotated";
 * - `WebhookRotateSecretParams.keep_old_secret_active_for_24_hours` keeps the previous secret
 *   valid for 24 hours (default false: invalidated at once).
 * The openai-openapi spec mirror (commit f85dbe2, 2026-08-21) has no `/webhook_endpoints` yet, so
 * the SDK types are the reference here.
 */
import type { WebhookCreateParams } from 'openai/resources/webhooks/webhooks';

/** The SDK's union of subscribable event types. */
export type SdkWebhookEventType = WebhookCreateParams['event_types'][number];

/**
 * Every event type the SDK lets an endpoint subscribe to, as a value for run-time and synth-time
 * checks. The two type assertions below fail `tsc` when the SDK adds or drops a type, so this list
 * cannot drift from the installed `openai` package.
 */
export const WEBHOOK_EVENT_TYPES = [
  'batch.completed',
  'batch.failed',
  'batch.expired',
  'batch.cancelled',
  'response.completed',
  'response.failed',
  'response.cancelled',
  'response.incomplete',
  'eval.run.succeeded',
  'eval.run.failed',
  'eval.run.canceled',
  'fine_tuning.job.succeeded',
  'fine_tuning.job.failed',
  'fine_tuning.job.cancelled',
  'realtime.call.incoming',
  'video.completed',
  'video.failed',
  'agent.environment.ready',
  'agent.environment.failed',
  'agent.environment.suspended',
  'agent.environment.expired',
  'agent.session.created',
  'agent.session.action_required',
  'agent.session.in_progress',
  'agent.session.idle',
  'agent.session.failed',
  'safety.alert.created',
] as const satisfies readonly SdkWebhookEventType[];

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
// Both directions: nothing in the SDK's union is missing here, nothing here is not in it.
type MissingFromList = Exclude<SdkWebhookEventType, WebhookEventType>;
type NotInSdk = Exclude<WebhookEventType, SdkWebhookEventType>;
const listMatchesSdk: [MissingFromList, NotInSdk] extends [never, never] ? true : false = true;
void listMatchesSdk;

/** The phone-call event: subscribed only when calls are on (the stack answers it). */
export const CALL_EVENT_TYPE = 'realtime.call.incoming' satisfies WebhookEventType;

/** The event types subscribed when none are given: everything the stack handles. */
export function defaultEventTypes(callsOn: boolean): WebhookEventType[] {
  return WEBHOOK_EVENT_TYPES.filter(
    (type) =>
      (type !== CALL_EVENT_TYPE || callsOn) &&
      // Types whose category the stack has no consumer logic for still land in `other`; the
      // default keeps to the ones it hydrates or answers.
      /^(batch|response|eval|fine_tuning|realtime)\./.test(type),
  );
}

export function isWebhookEventType(value: unknown): value is WebhookEventType {
  return typeof value === 'string' && (WEBHOOK_EVENT_TYPES as readonly string[]).includes(value);
}

/**
 * What is wrong with a list of event types, each problem a sentence. `realtime.call.incoming`
 * needs calls on: without the sideband service nothing would answer the call, and the caller
 * would ring out.
 */
export function eventTypeProblems(types: readonly unknown[], callsOn: boolean): string[] {
  const problems: string[] = [];
  if (types.length === 0) problems.push('at least one event type is needed.');
  const seen = new Set<string>();
  for (const type of types) {
    if (!isWebhookEventType(type)) {
      problems.push(
        `${JSON.stringify(type)} is not an event type the openai SDK knows; use one of ${WEBHOOK_EVENT_TYPES.join(', ')}.`,
      );
      continue;
    }
    if (seen.has(type)) problems.push(`${type} is listed twice.`);
    seen.add(type);
    if (type === CALL_EVENT_TYPE && !callsOn)
      problems.push(
        `${CALL_EVENT_TYPE} needs calls on (the calls prop): without it no one answers the call.`,
      );
  }
  return problems;
}

/** What an endpoint should look like. */
export interface DesiredEndpoint {
  readonly url: string;
  readonly name: string;
  readonly eventTypes: readonly string[];
}

/** What it looks like at OpenAI (`WebhookEndpoint`: snake_case as the API returns it). */
export interface RegisteredEndpoint {
  readonly id: string;
  readonly url: string;
  readonly name: string;
  readonly event_types: readonly string[];
}

/** The body of an update (`WebhookUpdateParams`), with only what differs; empty: no change. */
export interface EndpointChanges {
  url?: string;
  name?: string;
  event_types?: string[];
}

/** The fields to send to bring `current` to `desired`; event types compared as sets. */
export function endpointChanges(
  current: RegisteredEndpoint,
  desired: DesiredEndpoint,
): EndpointChanges {
  const changes: EndpointChanges = {};
  if (current.url !== desired.url) changes.url = desired.url;
  if (current.name !== desired.name) changes.name = desired.name;
  if (!sameSet(current.event_types, desired.eventTypes))
    changes.event_types = sortedUnique(desired.eventTypes);
  return changes;
}

export function hasChanges(changes: EndpointChanges): boolean {
  return Object.keys(changes).length > 0;
}

/** The endpoints registered for this URL (the CLI's `doctor` and `register` look for one). */
export function endpointsFor<T extends RegisteredEndpoint>(
  endpoints: readonly T[],
  url: string,
): T[] {
  const wanted = normaliseUrl(url);
  return endpoints.filter((e) => normaliseUrl(e.url) === wanted);
}

/** Event types missing from, and extra in, what is registered. */
export function eventTypeDrift(
  registered: readonly string[],
  expected: readonly string[],
): { missing: string[]; extra: string[] } {
  const have = new Set(registered);
  const want = new Set(expected);
  return {
    missing: [...want].filter((t) => !have.has(t)).sort(),
    extra: [...have].filter((t) => !want.has(t)).sort(),
  };
}

function normaliseUrl(url: string): string {
  // A function URL is printed with a trailing slash; OpenAI keeps what it was given.
  return url.trim().replace(/\/+$/, '');
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = sortedUnique(a);
  const right = sortedUnique(b);
  return left.length === right.length && left.every((value, i) => value === right[i]);
}

function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

// ---------------------------------------------------------------------------------------------
// The stored secret through a rotation.

/** How long OpenAI keeps the old secret valid with `keep_old_secret_active_for_24_hours`. */
export const OLD_SECRET_GRACE_MS = 24 * 3600 * 1000;

/**
 * The webhook secret's stored value: what the ingress reads (core/webhooks/signature.ts
 * `parseWebhookSecrets` takes `current` and `previous` and ignores the rest). `previousUntil`
 * (ISO time) is when OpenAI stops signing with `previous`, so the scheduled step can drop it.
 */
export interface StoredWebhookSecret {
  readonly current: string;
  readonly previous?: string;
  readonly previousUntil?: string;
  /** When the current secret was issued (created or rotated): the dashboard's "last rotation". */
  readonly rotatedAt?: string;
}

/** Reads the stored value: a bare `whsec_…` or the JSON form. Throws on anything else. */
export function readStoredSecret(stored: string): StoredWebhookSecret {
  const trimmed = stored.trim();
  if (trimmed.startsWith('whsec_')) return { current: trimmed };
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    throw new Error('The webhook secret is neither "whsec_…" nor JSON {"current":…}.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error('The webhook secret JSON must be an object {"current":…}.');
  const record = value as Record<string, unknown>;
  const current = Object.hasOwn(record, 'current') ? record.current : undefined;
  if (typeof current !== 'string' || !current.startsWith('whsec_'))
    throw new Error('The webhook secret JSON needs "current": "whsec_…".');
  const text = (key: string) =>
    Object.hasOwn(record, key) && typeof record[key] === 'string' && record[key] !== ''
      ? (record[key] as string)
      : undefined;
  const previous = text('previous');
  const previousUntil = text('previousUntil');
  const rotatedAt = text('rotatedAt');
  return {
    current,
    ...(previous ? { previous } : {}),
    ...(previous && previousUntil ? { previousUntil } : {}),
    ...(rotatedAt ? { rotatedAt } : {}),
  };
}

/** The value to store once a new secret is issued at registration (no previous). */
export function issuedSecret(secret: string, now: number): StoredWebhookSecret {
  return { current: secret, rotatedAt: new Date(now).toISOString() };
}

/** After `rotateSecret` with the old one kept for 24 h: both, with when the old one expires. */
export function rotatedSecret(
  before: StoredWebhookSecret,
  next: string,
  now: number,
): StoredWebhookSecret {
  return {
    current: next,
    previous: before.current,
    previousUntil: new Date(now + OLD_SECRET_GRACE_MS).toISOString(),
    rotatedAt: new Date(now).toISOString(),
  };
}

/**
 * The scheduled step: once `previousUntil` has passed, the previous secret is dropped. Returns
 * the value to store, or undefined when nothing is due. A previous secret without an expiry (set
 * by hand) is kept: only the operator knows when it stops.
 */
export function expirePrevious(
  stored: StoredWebhookSecret,
  now: number,
): StoredWebhookSecret | undefined {
  if (!stored.previous || !stored.previousUntil) return undefined;
  const until = Date.parse(stored.previousUntil);
  if (!Number.isFinite(until) || now < until) return undefined;
  return { current: stored.current, ...(stored.rotatedAt ? { rotatedAt: stored.rotatedAt } : {}) };
}

export function serialiseStoredSecret(value: StoredWebhookSecret): string {
  return JSON.stringify(value);
}

/**
 * Whether OpenAI's masked `signing_secret_hint` is consistent with a secret we hold. The hint's
 * format is not documented beyond "a masked hint"; it is taken as the secret with some characters
 * replaced by a mask character, so every unmasked run of 3+ characters must appear in the secret.
 */
export function hintMatches(hint: string | null | undefined, secret: string): boolean {
  if (!hint) return true;
  const runs = hint.split(/[*•]+|…|\.{3}/).filter((run) => run.length >= 3);
  return runs.every((run) => secret.includes(run));
}

/** The rotation function's environment variable with the endpoint id. */
export const WEBHOOK_ENDPOINT_ID_ENV = 'WEBHOOK_ENDPOINT_ID';
/** The EMF metrics of the rotation function (namespace OpenAiWebhooks, dimension Stack). */
export const ROTATION_METRICS = {
  failures: 'SecretRotationFailures',
  rotations: 'SecretRotations',
  expired: 'PreviousSecretsDropped',
} as const;
