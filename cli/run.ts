import { DynamoEventStore } from '#adapters/dynamo-event-store';
import { SqsEventPublisher } from '#adapters/sqs-event-publisher';
import type { StoredEventRecord } from '#core/ports/webhooks';
import { CATEGORIES, type Category, isCategory } from '#core/webhooks/categories';
import {
  failed,
  parseCommandLine,
  print,
  printUsage,
  TARGET_OPTIONS,
  targetOptionsOf,
} from './args';
import { isControlAction, runCallsControl } from './calls-control';
import { runDoctor } from './doctor';
import { duration, isoTime, parseTime, positiveInteger, progressBar, table } from './format';
import { eventPayloadView, getCall, isEventCursor, listCalls, listEvents } from './queries';
import { queueDepth, redrive } from './redrive';
import { CliError, resolveTarget, type Target } from './target';
import {
  CALL_LIST_HEADERS,
  callChannelOption,
  callListRow,
  callView,
  shownPayload,
  withPartiesShown,
} from './views';
import { runWebhooks } from './webhooks';

/** Where the CLI reads and writes: the process's streams, or buffers in tests. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** A person is there to answer a question (stdin and stderr are terminals). */
  readonly interactive: boolean;
  readonly confirm: (question: string) => Promise<boolean>;
  /** Progress redraws in place on a terminal; elsewhere it prints a line per step. */
  readonly progressInPlace: boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly now: () => number;
}

export const USAGE = `owh: operate an OpenAI webhooks stack (deployed, or local mode).

Usage: owh <command> [options] (--stack NAME [--region R] | --local)

Commands:
  events list            events, newest first   [--type T|prefix.*] [--category C]
                                                [--status received|processed|failed]
                                                [--since 2h|ISO] [--until 2h|ISO] [--limit 20]
                                                [--before CURSOR: the next page, as printed]
  events show <event id> one event, with its payload and last error
  state <object id>      a batch, job, eval run or response: status, details, history
  calls list             calls, newest first    [--status S] [--since] [--until] [--limit 20]
                                                [--channel sip|webrtc]
  calls show <call_id>   the call record, timeline, transcript, tool calls and usage
  calls say|update|cancel|hangup|transfer <call_id> …
                         steer a live call (owh calls say --help)
  replay <event id>      run a stored event through its category again
                         [--force: even if it was processed] [--yes] [--dry-run]
  redrive <category>     move a DLQ back to its queue (a category, or signals) [--yes]
  webhooks <command>     the webhook endpoint at OpenAI: register|list|update|rotate|delete|test
                         (owh webhooks --help)
  doctor                 check the stack end to end, one line per check with a fix

Options:
  --stack NAME           a deployed stack (its OperatorConfig output); or set OWH_STACK
  --region R             the stack's region (default: the AWS SDK's)
  --local                local mode (npm start): .local/state.json, or $OWH_LOCAL_DIR/state.json;
                         --state FILE overrides both
  --json                 machine-readable output
  --show-numbers         show phone numbers unmasked
  -h, --help             this text

Exit codes: 0 done; 1 failed (not found, local mode not running, AWS error); 2 bad arguments;
3 refused or declined.`;

const OPTIONS = {
  ...TARGET_OPTIONS,
  yes: { type: 'boolean', short: 'y' },
  force: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  'show-numbers': { type: 'boolean' },
  type: { type: 'string' },
  category: { type: 'string' },
  status: { type: 'string' },
  channel: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  before: { type: 'string' },
} as const;

type Values = ReturnType<typeof parse>['values'];

function parse(argv: readonly string[]) {
  return parseCommandLine(argv, OPTIONS, USAGE);
}

/** Runs one command; returns the exit code. Never throws for a user's mistake. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // `owh calls say|update|cancel|hangup|transfer …`: call control, with options of its own.
  if (argv[0] === 'calls' && isControlAction(argv[1])) return runCallsControl(argv.slice(1), io);
  // `owh webhooks …` and `owh doctor`: the endpoint at OpenAI (cli/webhooks.ts, cli/doctor.ts).
  if (argv[0] === 'webhooks') return runWebhooks(argv.slice(1), io);
  if (argv[0] === 'doctor') return runDoctor(argv.slice(1), io);
  let target: Target | undefined;
  try {
    const { values, positionals } = parse(argv);
    if (values.help || positionals.length === 0) return printUsage(io, USAGE, values.help);
    const command = commandOf(positionals);
    // --state, or the folder npm start was given (OWH_LOCAL_DIR), or .local/.
    target = await resolveTarget(targetOptionsOf(values, io.env));
    return await command(target, values, io);
  } catch (error) {
    return failed(io, error, true);
  } finally {
    target?.documents.destroy();
    target?.sqs.destroy();
  }
}

type Command = (target: Target, values: Values, io: CliIo) => Promise<number>;

function commandOf(positionals: readonly string[]): Command {
  const [first, second, third, ...rest] = positionals;
  const needs = (arg: string | undefined, what: string, usage: string): string => {
    if (!arg) throw new CliError(`${usage} needs ${what}.`, 2);
    return arg;
  };
  const noMore = (args: (string | undefined)[]) => {
    const extra = args.find((a) => a !== undefined);
    if (extra !== undefined) throw new CliError(`Unexpected argument "${extra}".`, 2);
  };
  /** `<command> <arg>` and nothing more. */
  const withArgument = (what: string, usage: string, command: (arg: string) => Command) => {
    const arg = needs(second, what, usage);
    noMore([third, ...rest]);
    return command(arg);
  };
  /** `<noun> list`, or `<noun> show <id>`. */
  const listOrShow = (noun: string, list: Command, what: string, show: (id: string) => Command) => {
    if (second === 'list') {
      noMore([third, ...rest]);
      return list;
    }
    if (second === 'show') {
      const id = needs(third, what, `${noun} show`);
      noMore(rest);
      return show(id);
    }
    throw new CliError(`${noun} takes list or show.`, 2);
  };
  switch (first) {
    case 'events':
      return listOrShow(
        'events',
        eventsList,
        'an event id',
        (id) => (t, v, io) => eventsShow(t, v, io, id),
      );
    case 'state':
      return withArgument('an object id', 'state', (id) => (t, v, io) => objectState(t, v, io, id));
    case 'calls':
      return listOrShow(
        'calls',
        callsList,
        'a call_id',
        (id) => (t, v, io) => callsShow(t, v, io, id),
      );
    case 'replay':
      return withArgument('an event id', 'replay', (id) => (t, v, io) => replay(t, v, io, id));
    case 'redrive':
      return withArgument(
        'a category (or signals)',
        'redrive',
        (name) => (t, v, io) => redriveQueue(t, v, io, name),
      );
    default:
      throw new CliError(`Unknown command "${first}". See owh --help.`, 2);
  }
}

function categoryOption(value: string | undefined): Category | undefined {
  if (value === undefined) return undefined;
  if (!isCategory(value))
    throw new CliError(`--category must be one of ${CATEGORIES.join(', ')}; got "${value}".`, 2);
  return value;
}

function timeRange(values: Values, io: CliIo): { since?: number; until?: number } {
  const now = io.now();
  return {
    ...(values.since ? { since: parseTime(values.since, now, '--since') } : {}),
    ...(values.until ? { until: parseTime(values.until, now, '--until') } : {}),
  };
}

const EVENT_STATUSES = ['received', 'processed', 'failed'];

async function eventsList(target: Target, values: Values, io: CliIo): Promise<number> {
  if (values.status && !EVENT_STATUSES.includes(values.status))
    throw new CliError(`--status must be one of ${EVENT_STATUSES.join(', ')}.`, 2);
  const category = categoryOption(values.category);
  if (values.before !== undefined && !isEventCursor(values.before))
    throw new CliError(
      `--before takes the cursor a previous page printed (<created_at>#<event id>); got "${values.before}".`,
      2,
    );
  const { events, next } = await listEvents(target.documents, target.config.tableName, {
    ...(category ? { category } : {}),
    ...(values.type ? { type: values.type } : {}),
    ...(values.status ? { status: values.status } : {}),
    ...timeRange(values, io),
    limit: positiveInteger(values.limit, '--limit', 20),
    ...(values.before !== undefined ? { before: values.before } : {}),
  });
  // How to page: under the table, or on stderr with --json so stdout stays one JSON array.
  const hint = next
    ? `More events: add --before ${next} (same filters) for the next page, or raise --limit.`
    : undefined;
  if (hint && values.json) io.err(`owh: ${hint}\n`);
  return print(io, values, events, () =>
    events.length === 0
      ? `No events match (${target.label}).`
      : `${table(
          ['CREATED', 'EVENT', 'TYPE', 'CATEGORY', 'STATUS', 'ATTEMPTS', 'OBJECT'],
          events.map((e) => [
            isoTime(e.createdAt * 1000),
            e.eventId,
            e.type,
            e.category,
            e.status,
            String(e.attempts ?? '-'),
            e.objectId ?? '-',
          ]),
        )}${hint ? `\n\n${hint}` : ''}`,
  );
}

async function loadEvent(target: Target, eventId: string): Promise<StoredEventRecord> {
  const store = new DynamoEventStore(target.documents, target.config.tableName);
  const event = await store.getEvent(eventId);
  if (!event) throw new CliError(`No event ${eventId} in ${target.label}.`);
  return event;
}

async function eventsShow(target: Target, values: Values, io: CliIo, eventId: string) {
  const event = await loadEvent(target, eventId);
  // The event as OpenAI sent it: an owh_body wrapper unwrapped, a claim check read from S3.
  const payload = shownPayload(await eventPayloadView(event.payload));
  const withTimes = event as StoredEventRecord & {
    processedAt?: number;
    failedAt?: number;
    lastError?: string;
  };
  return print(io, values, { ...event, payload }, () =>
    [
      `Event      ${event.eventId}`,
      `Type       ${event.type} (category ${event.category})`,
      `Status     ${event.status}, ${event.attempts} attempt(s)`,
      `Created    ${isoTime(event.createdAt * 1000)}`,
      `Received   ${isoTime(event.receivedAt)} (webhook-id ${event.webhookId}, secret ${event.secretLabel})`,
      ...(withTimes.processedAt ? [`Processed  ${isoTime(withTimes.processedAt)}`] : []),
      ...(withTimes.lastError ? [`Last error ${withTimes.lastError}`] : []),
      ...(event.objectId ? [`Object     ${event.objectId} (owh state ${event.objectId})`] : []),
      '',
      JSON.stringify(payload, null, 2),
    ].join('\n'),
  );
}

async function objectState(target: Target, values: Values, io: CliIo, objectId: string) {
  const store = new DynamoEventStore(target.documents, target.config.tableName);
  const state = await store.getObject(objectId);
  if (!state) throw new CliError(`No state for object ${objectId} in ${target.label}.`);
  return print(io, values, state, () =>
    [
      `Object   ${state.objectId} (${state.objectType})`,
      `Status   ${state.status} since ${isoTime(state.statusCreatedAt * 1000)} (event ${state.statusEventId})`,
      `Updated  ${isoTime(state.updatedAt)}`,
      ...(state.details
        ? [`Fetched  ${isoTime(state.detailsFetchedAt)}: ${JSON.stringify(state.details)}`]
        : []),
      ...(state.hydrationError ? [`Fetch error  ${state.hydrationError}`] : []),
      '',
      'History (oldest first):',
      table(
        ['CREATED', 'STATUS', 'TYPE', 'EVENT'],
        state.history.map((t) => [isoTime(t.createdAt * 1000), t.status, t.type, t.eventId]),
      ),
    ].join('\n'),
  );
}

async function callsList(target: Target, values: Values, io: CliIo): Promise<number> {
  const channel = callChannelOption(values.channel);
  if (!channel.ok) throw new CliError(channel.message, 2);
  const calls = await listCalls(target.documents, target.config.tableName, {
    ...(values.status ? { status: values.status } : {}),
    ...(channel.channel ? { channel: channel.channel } : {}),
    ...timeRange(values, io),
    limit: positiveInteger(values.limit, '--limit', 20),
  });
  const rows = calls.map((c) => withPartiesShown(c, Boolean(values['show-numbers'])));
  return print(io, values, rows, () =>
    rows.length === 0
      ? `No calls match (${target.label}).`
      : table(
          CALL_LIST_HEADERS,
          rows.map((c) =>
            callListRow(c, {
              time: isoTime,
              duration,
              showNumbers: Boolean(values['show-numbers']),
            }),
          ),
        ),
  );
}

async function callsShow(target: Target, values: Values, io: CliIo, callId: string) {
  const found = await getCall(target.documents, target.config.tableName, callId);
  if (!found) throw new CliError(`No call ${callId} in ${target.label}.`);
  const view = callView(found.record, found.parts, {
    showNumbers: Boolean(values['show-numbers']),
  });
  const start = found.record.receivedAt;
  const offset = (at: number) => `+${duration(at - start)}`.padEnd(14);
  const r = view.record;
  return print(io, values, view, () =>
    [
      `Call      ${r.callId}: ${r.status}${r.endReason ? ` (${r.endReason})` : ''}`,
      `From/To   ${r.from ?? '-'} → ${r.to ?? '-'}   session ${r.sessionKey ?? 'default'}   media ${r.sipMediaSecurity ?? 'not stated'}`,
      `Duration  ${duration(r.durationMs)}   worker ${r.owner ?? '-'}`,
      ...(r.transferTarget ? [`Transfer  ${r.transferTarget}: ${r.transferStatus}`] : []),
      `Usage     ${view.usage.responses ?? 0} responses, ${view.usage.inputTokens ?? 0} in / ${view.usage.outputTokens ?? 0} out tokens`,
      '',
      `Timeline (from ${isoTime(start)}):`,
      ...view.timeline.map((e) => `  ${offset(e.at)}${e.what}`),
      '',
      'Transcript:',
      ...(view.transcript.length === 0
        ? ['  (none)']
        : view.transcript.map(
            (t) =>
              `  ${offset(t.at)}${t.role}: ${t.text}${t.cutOff ? ` [cut off: ${t.cutOff}]` : ''}`,
          )),
      '',
      'Tool calls:',
      ...(view.tools.length === 0
        ? ['  (none)']
        : view.tools.map(
            (t) =>
              `  ${offset(t.at)}${t.name}(${t.arguments}) → ${t.output} [${t.status}, ${t.latencyMs} ms${t.error ? `, ${t.error}` : ''}]`,
          )),
      ...(view.errors.length > 0
        ? ['', 'Errors:', ...view.errors.map((e) => `  ${offset(e.at)}${e.code}: ${e.message}`)]
        : []),
    ].join('\n'),
  );
}

/** Asks before acting; `--yes` answers for scripts, and a script without it is stopped. */
async function confirmed(values: Values, io: CliIo, question: string): Promise<boolean> {
  if (values.yes) return true;
  if (!io.interactive)
    throw new CliError('Not a terminal: add --yes to go ahead without a question.', 2);
  return io.confirm(question);
}

async function replay(target: Target, values: Values, io: CliIo, eventId: string) {
  const event = await loadEvent(target, eventId);
  const queue = target.config.queues[event.category];
  if (!queue) throw new CliError(`${target.label} has no ${event.category} queue.`);
  // The body is written with the first attempt's outcome: until then only the queue has it.
  if (event.payload === '')
    throw new CliError(
      `${eventId} has no stored payload yet: its first attempt is still running, and its message is on the ${event.category} queue.`,
      3,
    );
  const force = Boolean(values.force);
  const done = event.status === 'processed';
  const plan = {
    eventId,
    type: event.type,
    category: event.category,
    status: event.status,
    queueUrl: queue.queueUrl,
    forced: force,
  };
  io.err(
    `Replay ${eventId} (${event.type}, status ${event.status}) through the ${event.category} consumer:\n` +
      `  send its stored payload to ${queue.queueUrl}${force ? ' marked "force"' : ''};\n` +
      `  the consumer ${force ? 'processes it again even if it was processed (your handler runs again)' : 'processes it unless it was already processed'}.\n`,
  );
  if (done && !force) {
    io.err(
      `Refused: ${eventId} was already processed (attempts ${event.attempts}); the consumer's idempotency guard would skip it. Add --force to process it again.\n`,
    );
    if (values.json) io.out(`${JSON.stringify({ ...plan, result: 'refused_duplicate' })}\n`);
    return 3;
  }
  if (values['dry-run']) {
    if (values.json) io.out(`${JSON.stringify({ ...plan, result: 'dry_run' })}\n`);
    return 0;
  }
  if (!(await confirmed(values, io, 'Replay it? [y/N] '))) {
    io.err('Nothing done.\n');
    return 3;
  }
  const queueUrls = Object.fromEntries(
    Object.entries(target.config.queues).map(([name, q]) => [name, q.queueUrl]),
  ) as Record<Category, string>;
  await new SqsEventPublisher(target.sqs, queueUrls).publish({
    webhookId: event.webhookId,
    eventId: event.eventId,
    type: event.type,
    category: event.category,
    receivedAt: event.receivedAt,
    secretLabel: event.secretLabel,
    replay: force ? 'force' : 'normal',
    body: event.payload,
  });
  return print(
    io,
    values,
    { ...plan, result: 'queued' },
    () =>
      `Queued ${eventId} on the ${event.category} queue. Follow it with: owh events show ${eventId}`,
  );
}

async function redriveQueue(target: Target, values: Values, io: CliIo, name: string) {
  const queue = target.config.queues[name];
  if (!queue)
    throw new CliError(
      `No queue "${name}" in ${target.label}; use one of ${Object.keys(target.config.queues).join(', ')}.`,
      2,
    );
  const depth = await queueDepth(target.sqs, queue.dlqUrl);
  io.err(
    `Redrive ${name}: move ${depth.visible} message(s) from its DLQ back to its queue` +
      `${depth.inFlight > 0 ? ` (${depth.inFlight} more are in flight and stay)` : ''}.\n`,
  );
  if (depth.visible === 0) {
    return print(io, values, { queue: name, moved: 0, failed: 0 }, () => 'The DLQ is empty.');
  }
  if (values['dry-run']) return 0;
  if (!(await confirmed(values, io, `Move ${depth.visible} message(s)? [y/N] `))) {
    io.err('Nothing done.\n');
    return 3;
  }
  let last = '';
  const result = await redrive(target.sqs, queue.dlqUrl, queue.queueUrl, depth.visible, (moved) => {
    const bar = progressBar(moved, depth.visible);
    if (io.progressInPlace) io.err(`\r${bar}`);
    else if (bar !== last) io.err(`${bar}\n`);
    last = bar;
  });
  if (io.progressInPlace) io.err('\n');
  const code = result.failed > 0 ? 1 : 0;
  print(
    io,
    values,
    { queue: name, ...result },
    () =>
      `Moved ${result.moved} message(s) from the ${name} DLQ to its queue${result.failed > 0 ? `; ${result.failed} could not be sent and stay in the DLQ` : ''}.`,
  );
  return code;
}
