import { DynamoEventStore } from '#adapters/dynamo-event-store';
import { explainEndpointError, type WebhookEndpoint } from '#adapters/openai-webhook-endpoints';
import type { StoredEventRecord } from '#core/ports/webhooks';
import {
  defaultEventTypes,
  endpointChanges,
  endpointsFor,
  eventTypeProblems,
  expirePrevious,
  hasChanges,
  issuedSecret,
  readStoredSecret,
  rotatedSecret,
  serialiseStoredSecret,
} from '#core/webhooks/endpoint-lifecycle';
import {
  commaList,
  failed,
  parseCommandLine,
  print,
  printUsage,
  TARGET_OPTIONS,
  targetOptionsOf,
} from './args';
import { positiveInteger, table } from './format';
import { listEvents } from './queries';
import type { CliIo } from './run';
import { CliError } from './target';
import { resolveWebhookTarget, type WebhookTarget } from './webhook-target';

export const WEBHOOKS_USAGE = `owh webhooks: the stack's webhook endpoint at OpenAI (/v1/webhook_endpoints).

Usage: owh webhooks <command> [options] (--stack NAME [--region R] | --local)

Commands:
  register               register the webhook URL; its signing secret goes into the webhook secret
                         [--url U] [--name N] [--event-types a,b] [--yes]
  list                   the project's endpoints (this stack's marked)
  update [<id>]          change URL, name or event types [--url] [--name] [--event-types]
  rotate [<id>]          new secret, the old one kept 24 h; both stored as {current, previous}
                         [--drop-previous: the second phase, once the 24 h are over (--force: now)]
  delete <id>            delete an endpoint [--yes]
  test [<id>]            send OpenAI's test event and wait until it is stored and processed
                         [--event-type T] [--timeout 30]

Options: --json, --api-key-secret NAME, --webhook-secret NAME (defaults: the stack's),
         --state FILE (local mode), -h/--help. <id> defaults to the endpoint for this stack's URL.`;

const OPTIONS = {
  ...TARGET_OPTIONS,
  yes: { type: 'boolean', short: 'y' },
  force: { type: 'boolean' },
  url: { type: 'string' },
  name: { type: 'string' },
  'event-types': { type: 'string' },
  'event-type': { type: 'string' },
  timeout: { type: 'string' },
  'drop-previous': { type: 'boolean' },
  'api-key-secret': { type: 'string' },
  'webhook-secret': { type: 'string' },
} as const;

type Values = ReturnType<typeof parse>['values'];
function parse(argv: readonly string[]) {
  return parseCommandLine(argv, OPTIONS, WEBHOOKS_USAGE);
}

/** `owh webhooks …`: returns the exit code. */
export async function runWebhooks(argv: readonly string[], io: CliIo): Promise<number> {
  let target: WebhookTarget | undefined;
  try {
    const { values, positionals } = parse(argv);
    const [command, id, ...extra] = positionals;
    if (values.help || !command) return printUsage(io, WEBHOOKS_USAGE, values.help);
    if (extra.length > 0) throw new CliError(`Unexpected argument "${extra[0]}".`, 2);
    const run = COMMANDS[command];
    if (!run || !Object.hasOwn(COMMANDS, command))
      throw new CliError(`Unknown webhooks command "${command}". See owh webhooks --help.`, 2);
    if (command === 'delete' && !id) throw new CliError('webhooks delete needs an endpoint id.', 2);
    if ((command === 'register' || command === 'list') && id)
      throw new CliError(`Unexpected argument "${id}".`, 2);
    target = await webhookTargetOf(values, io);
    return await run(target, values, io, id);
  } catch (error) {
    return failed(io, error);
  } finally {
    target?.close();
  }
}

export function webhookTargetOf(
  values: {
    stack?: string | undefined;
    region?: string | undefined;
    local?: boolean | undefined;
    state?: string | undefined;
    'api-key-secret'?: string | undefined;
    'webhook-secret'?: string | undefined;
  },
  io: CliIo,
): Promise<WebhookTarget> {
  return resolveWebhookTarget({
    ...targetOptionsOf(values, io.env),
    apiKeySecret: values['api-key-secret'],
    webhookSecret: values['webhook-secret'],
    env: io.env,
  });
}

type Command = (
  target: WebhookTarget,
  values: Values,
  io: CliIo,
  id: string | undefined,
) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  register,
  list,
  update,
  rotate,
  delete: remove,
  test,
};

function eventTypesOption(values: Values, target: WebhookTarget): string[] | undefined {
  const raw = values['event-types'];
  if (raw === undefined) return undefined;
  const types = commaList(raw);
  const problems = eventTypeProblems(types, target.callsOn);
  if (problems.length > 0) throw new CliError(`--event-types: ${problems.join(' ')}`, 2);
  return types;
}

async function confirm(io: CliIo, values: Values, question: string): Promise<void> {
  if (values.yes) return;
  if (!io.interactive)
    throw new CliError(`${question} Not confirmed: pass --yes to run without a prompt.`, 3);
  if (!(await io.confirm(`${question} [y/N] `))) throw new CliError('Declined.', 3);
}

async function call<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new CliError(explainEndpointError(error, what));
  }
}

/** The endpoint an id-less command means: the one registered for this stack's URL. */
async function endpointOf(target: WebhookTarget, id: string | undefined): Promise<WebhookEndpoint> {
  if (id) return call(`read webhook endpoint ${id}`, () => target.endpoints.retrieve(id));
  if (target.endpointId) {
    const known = target.endpointId;
    return call(`read webhook endpoint ${known}`, () => target.endpoints.retrieve(known));
  }
  const mine = endpointsFor(
    await call('list webhook endpoints', () => target.endpoints.list()),
    target.webhookUrl,
  );
  const [first, second] = mine;
  if (!first)
    throw new CliError(
      `No endpoint is registered for ${target.webhookUrl}: run owh webhooks register${target.local ? ' --local' : ''}.`,
    );
  if (second)
    throw new CliError(
      `${mine.length} endpoints are registered for ${target.webhookUrl} (${mine.map((e) => e.id).join(', ')}): name one.`,
    );
  return first;
}

async function register(target: WebhookTarget, values: Values, io: CliIo): Promise<number> {
  const url = values.url ?? target.webhookUrl;
  const name =
    values.name ?? (target.local ? 'owh local mode' : `${target.stackName ?? 'owh'} webhooks`);
  const eventTypes = eventTypesOption(values, target) ?? defaultEventTypes(target.callsOn);
  const existing = endpointsFor(
    await call('list webhook endpoints', () => target.endpoints.list()),
    url,
  );
  await confirm(
    io,
    values,
    `Register ${url} at ${target.openAiBaseUrl} and store its signing secret in ${target.secretName}${
      existing.length > 0
        ? ` (${existing.map((e) => e.id).join(', ')} already delivers to this URL: each event would arrive twice)`
        : ''
    }?`,
  );
  const created = await call(`register the webhook endpoint for ${url}`, () =>
    target.endpoints.create({ url, name, event_types: eventTypes }),
  );
  const stored = serialiseStoredSecret(issuedSecret(created.signing_secret, io.now()));
  try {
    await target.secret.putCurrent(stored);
  } catch (error) {
    // An endpoint whose secret nobody holds signs deliveries no one can verify: undo it.
    await target.endpoints.delete(created.id).catch(() => undefined);
    throw new CliError(
      `Could not store the signing secret in ${target.secretName} (${error instanceof Error ? error.message : String(error)}); the endpoint was deleted again.`,
    );
  }
  target.adopt(stored);
  const view = { ...viewOf(created), secretStoredIn: target.secretName };
  return print(io, values, view, () =>
    [
      `Registered ${created.id} for ${created.url}`,
      `Events     ${created.event_types.join(', ')}`,
      `Secret     stored in ${target.secretName}${target.local ? '; local mode uses it from now on' : ''} (hint ${created.signing_secret_hint ?? '-'})`,
      `Next       owh webhooks test${target.local ? ' --local' : ''}`,
    ].join('\n'),
  );
}

function viewOf(e: WebhookEndpoint) {
  return {
    id: e.id,
    name: e.name,
    url: e.url,
    event_types: e.event_types,
    signing_secret_hint: e.signing_secret_hint,
    created_at: e.created_at,
    ...(e.updated_at !== undefined ? { updated_at: e.updated_at } : {}),
  };
}

async function list(target: WebhookTarget, values: Values, io: CliIo): Promise<number> {
  const endpoints = await call('list webhook endpoints', () => target.endpoints.list());
  const mine = new Set(endpointsFor(endpoints, target.webhookUrl).map((e) => e.id));
  const rows = endpoints.map((e) => ({ ...viewOf(e), thisStack: mine.has(e.id) }));
  return print(io, values, rows, () =>
    rows.length === 0
      ? `No webhook endpoints in this project (${target.openAiBaseUrl}).`
      : table(
          ['ID', 'NAME', 'URL', 'EVENTS', 'SECRET', ''],
          rows.map((r) => [
            r.id,
            r.name,
            r.url,
            String(r.event_types.length),
            r.signing_secret_hint ?? '-',
            r.thisStack ? `← ${target.label}` : '',
          ]),
        ),
  );
}

async function update(
  target: WebhookTarget,
  values: Values,
  io: CliIo,
  id: string | undefined,
): Promise<number> {
  const current = await endpointOf(target, id);
  const changes = endpointChanges(current, {
    url: values.url ?? current.url,
    name: values.name ?? current.name,
    eventTypes: eventTypesOption(values, target) ?? current.event_types,
  });
  if (!hasChanges(changes))
    return print(
      io,
      values,
      { ...viewOf(current), changed: [] },
      () => `${current.id}: nothing to change.`,
    );
  const updated = await call(`update webhook endpoint ${current.id}`, () =>
    target.endpoints.update(current.id, changes),
  );
  return print(
    io,
    values,
    { ...viewOf(updated), changed: Object.keys(changes) },
    () =>
      `Updated ${updated.id}: ${Object.keys(changes).join(', ')}.\nURL     ${updated.url}\nEvents  ${updated.event_types.join(', ')}`,
  );
}

async function rotate(
  target: WebhookTarget,
  values: Values,
  io: CliIo,
  id: string | undefined,
): Promise<number> {
  const before = await target.secret.current();
  if (before === undefined) throw new CliError(`${target.secretName} has no value to rotate from.`);
  const stored = readStoredSecret(before);
  if (values['drop-previous']) {
    // Phase two: what the hourly schedule does once OpenAI has stopped signing with the old one.
    const due = expirePrevious(stored, io.now());
    const next = due ?? (values.force && stored.previous ? { current: stored.current } : undefined);
    if (!next)
      throw new CliError(
        stored.previous
          ? `The previous secret stays until ${stored.previousUntil ?? 'someone drops it'} (OpenAI still signs with it): --force to drop it now.`
          : 'There is no previous secret to drop.',
        3,
      );
    const value = serialiseStoredSecret(next);
    await target.secret.putCurrent(value);
    target.adopt(value);
    return print(io, values, { dropped: true }, () => 'Dropped the previous secret.');
  }
  // Phase one, as the rotation function's createSecret and finishSecret do it.
  const endpoint = await endpointOf(target, id);
  const rotated = await call(`rotate the secret of webhook endpoint ${endpoint.id}`, () =>
    target.endpoints.rotateSecret(endpoint.id, { keep_old_secret_active_for_24_hours: true }),
  );
  const next = rotatedSecret(stored, rotated.signing_secret, io.now());
  const value = serialiseStoredSecret(next);
  await target.secret.putCurrent(value);
  target.adopt(value);
  return print(io, values, { id: endpoint.id, previousUntil: next.previousUntil }, () =>
    [
      `Rotated ${endpoint.id}: ${target.secretName} holds the new secret and the previous one.`,
      `The previous secret is accepted until ${next.previousUntil}; then the scheduled step (or owh webhooks rotate --drop-previous) drops it.`,
    ].join('\n'),
  );
}

async function remove(
  target: WebhookTarget,
  values: Values,
  io: CliIo,
  id: string | undefined,
): Promise<number> {
  const endpointId = id ?? '';
  const endpoint = await call(`read webhook endpoint ${endpointId}`, () =>
    target.endpoints.retrieve(endpointId),
  );
  await confirm(
    io,
    values,
    `Delete ${endpoint.id} (${endpoint.url})? OpenAI stops delivering to it.`,
  );
  await call(`delete webhook endpoint ${endpoint.id}`, () => target.endpoints.delete(endpoint.id));
  return print(io, values, { id: endpoint.id, deleted: true }, () => `Deleted ${endpoint.id}.`);
}

/** One step of a test event's way, ms after the test was sent. */
export interface TimelineStep {
  readonly atMs: number;
  readonly what: string;
}

export interface TestOutcome {
  readonly endpointId: string;
  readonly eventType: string;
  readonly statusCode: number;
  readonly eventId?: string;
  readonly status?: string;
  readonly timeline: TimelineStep[];
  readonly ok: boolean;
  readonly problem?: string;
}

/** Sends OpenAI's test event and follows it into the store (`owh webhooks test`, `owh doctor`). */
export async function runTest(
  target: WebhookTarget,
  options: { id?: string | undefined; eventType?: string; timeoutMs: number; now: () => number },
): Promise<TestOutcome> {
  const endpoint = await endpointOf(target, options.id);
  const eventType = options.eventType ?? endpoint.event_types[0] ?? 'batch.completed';
  const { documents } = target.target;
  const { tableName } = target.target.config;
  // OpenAI's answer names no event id, so the test event is the one event of its type that was
  // not there before: compared by id, not by time, since this machine's clock and the stack's
  // may differ (and a test run just before this one is within any time slack).
  const before = new Set(
    (
      await listEvents(documents, tableName, {
        type: eventType,
        since: options.now() - 10 * 60_000,
        limit: 100,
      })
    ).events.map((e) => e.eventId),
  );
  const started = options.now();
  const timeline: TimelineStep[] = [
    { atMs: 0, what: `test ${eventType} sent to OpenAI for ${endpoint.id}` },
  ];
  const result = await call(`send a test event to ${endpoint.id}`, () =>
    target.endpoints.test(endpoint.id, eventType),
  );
  timeline.push({
    atMs: options.now() - started,
    what: `OpenAI delivered it; the webhook URL answered ${result.status_code}`,
  });
  const base = { endpointId: endpoint.id, eventType, statusCode: result.status_code, timeline };
  if (result.status_code !== 200)
    return {
      ...base,
      ok: false,
      problem:
        result.status_code === 401
          ? 'the ingress could not verify the signature: the stored webhook secret is not this endpoint’s (run owh doctor)'
          : `the webhook URL answered ${result.status_code}`,
    };
  const store = new DynamoEventStore(documents, tableName);
  const deadline = started + options.timeoutMs;
  let found: StoredEventRecord | undefined;
  while (options.now() < deadline) {
    if (!found) {
      const { events } = await listEvents(documents, tableName, {
        type: eventType,
        since: started - 60_000,
        limit: 100,
      });
      const head = events.find((e) => !before.has(e.eventId));
      if (head) {
        found = (await store.getEvent(head.eventId)) ?? undefined;
        if (found)
          timeline.push({
            // Never before the send: the stack's clock may be behind this machine's.
            atMs: Math.max(0, found.receivedAt - started),
            what: `stored as ${found.eventId} (verified with the ${found.secretLabel} secret)`,
          });
      }
    } else {
      found = (await store.getEvent(found.eventId)) ?? found;
    }
    if (found && (found.status === 'processed' || found.status === 'failed')) {
      timeline.push({
        atMs: Math.max(0, (found.processedAt ?? options.now()) - started),
        what: found.status === 'processed' ? 'processed' : `failed: ${found.lastError ?? ''}`,
      });
      return {
        ...base,
        eventId: found.eventId,
        status: found.status,
        ok: found.status === 'processed',
        ...(found.status === 'processed' ? {} : { problem: 'the consumer failed the event' }),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    ...base,
    ...(found ? { eventId: found.eventId, status: found.status } : {}),
    ok: false,
    problem: found
      ? `still ${found.status} after ${options.timeoutMs / 1000} s`
      : `not stored within ${options.timeoutMs / 1000} s`,
  };
}

async function test(
  target: WebhookTarget,
  values: Values,
  io: CliIo,
  id: string | undefined,
): Promise<number> {
  const timeoutMs = positiveInteger(values.timeout, '--timeout', 30) * 1000;
  const outcome = await runTest(target, {
    id,
    ...(values['event-type'] ? { eventType: values['event-type'] } : {}),
    timeoutMs,
    now: io.now,
  });
  print(io, values, outcome, () =>
    [
      ...outcome.timeline.map((s) => `${`+${s.atMs} ms`.padStart(10)}  ${s.what}`),
      outcome.ok ? 'OK' : `FAILED: ${outcome.problem}`,
    ].join('\n'),
  );
  return outcome.ok ? 0 : 1;
}
