import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoEventStore } from '#adapters/dynamo-event-store';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { localDir, notRunningMessage, readState } from './local-state';
import { SAMPLE_TYPES, sampleEvent, sampleObject } from './samples';
import { DEFAULT_SCENARIO, sendCall } from './send-call';
import { playWebRtc } from './send-webrtc';
import { signedWebhookRequest } from './signing';
import { SCENARIO_NAMES, SCENARIOS } from './stand-ins/realtime-scenarios';

/**
 * `npm run send -- <type|all> [--id <object id>] [--raw]`: sends correctly signed sample events to
 * the local pipeline (or WEBHOOK_URL with OPENAI_WEBHOOK_SECRET), then shows what was stored.
 * `npm run send -- call [--scenario <name>|all|list]`: plays a phone call through the Realtime
 * simulator of `npm start`, following a named scenario (default `happy`).
 */
interface LocalState {
  webhookUrl: string;
  webhookSecret: string;
  tableName: string;
  dynamoEndpoint: string;
  openAiBaseUrl: string;
  calls?: boolean;
  simulator?: boolean;
  pid?: number;
}

/** A failure the user can act on: one line on stderr, and the exit code. */
class SendError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const wrap = (words: readonly string[], indent: string, width = 96) => {
  const lines: string[] = [];
  let current = '';
  for (const word of words) {
    if (current && current.length + word.length + 2 > width - indent.length) {
      lines.push(`${indent}${current},`);
      current = word;
    } else current = current ? `${current}, ${word}` : word;
  }
  if (current) lines.push(`${indent}${current}`);
  return lines.join('\n');
};

const HELP = `Usage:
  npm run send -- <type|all> [--id <object id>] [--raw]
  npm run send -- call [--scenario <name>|all|list]
  npm run send -- webrtc        (a browser voice session through the local session endpoint)

Sends correctly signed sample webhooks to local mode (npm start), or to any endpoint, and prints
what was verified, stored, projected and fetched; \`call\` plays a phone call through the Realtime
simulator of npm start and prints its timeline.

Options:
  --id <object id>       the object the event talks about (default: a new id per event)
  --raw                  send a type that is not listed below, as it is (new types land in "other")
  --scenario <name>      the call to play (default ${DEFAULT_SCENARIO}); "list" describes each, "all" plays
                         every one
  -h, --help             this text

Environment:
  WEBHOOK_URL            send to this URL instead of local mode's (a deployed stack's function URL);
                         needs OPENAI_WEBHOOK_SECRET; nothing is read back
  OPENAI_WEBHOOK_SECRET  the whsec_… secret to sign with (default: local mode's)
  OWH_LOCAL_DIR          local mode's folder (default .local), as given to npm start

Types ("all" sends each):
${wrap(SAMPLE_TYPES, '  ')}

Scenarios (call --scenario <name>):
${wrap(SCENARIO_NAMES, '  ')}

Exit codes: 0 sent (and processed); 1 failed (local mode not running, a connection refused, an
answer that is not 2xx); 2 bad arguments.`;

/** The closest name within a few edits, for "did you mean". */
function closest(input: string, names: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const distance = editDistance(input.toLowerCase(), name.toLowerCase());
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(input.length / 4)) ? best.name : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** `ECONNREFUSED`, `ENOTFOUND`, … from a failed fetch, or its message. */
function connectionCause(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new SendError(
      `${error instanceof Error ? error.message : String(error)} (npm run send -- --help)`,
      2,
    );
  }
  const { values, positionals } = parsed;
  const what = positionals[0];
  if (values.help || !what) {
    (values.help ? process.stdout : process.stderr).write(`${HELP}\n`);
    return values.help ? 0 : 2;
  }
  if (positionals.length > 1)
    throw new SendError(`unexpected argument "${positionals[1]}" (npm run send -- --help)`, 2);

  if (what === 'call') return playCalls(values.scenario);
  if (what === 'webrtc') return playWebRtc(runningLocalMode());
  if (values.scenario !== undefined)
    throw new SendError('--scenario goes with call: npm run send -- call --scenario <name>', 2);
  const known = (SAMPLE_TYPES as readonly string[]).includes(what);
  if (what !== 'all' && !known && !values.raw) {
    const suggestion = closest(what, [...SAMPLE_TYPES, 'all', 'call']);
    throw new SendError(
      `unknown type "${what}"${suggestion ? `: did you mean ${suggestion}?` : '.'} (npm run send -- --help lists them; --raw sends any type)`,
      2,
    );
  }

  const target = resolveTarget();
  const types = what === 'all' ? [...SAMPLE_TYPES] : [what];
  let failures = 0;
  for (const type of types) {
    const event = sampleEvent(type, values.id ? { objectId: values.id } : {});
    const objectId = typeof event.data.id === 'string' ? event.data.id : undefined;
    if (target.local?.simulator && objectId)
      await simulateObject(target.local.openAiBaseUrl, type, objectId);
    const request = signedWebhookRequest(target.secret, event);
    const started = performance.now();
    let response: Response;
    try {
      response = await fetch(target.url, {
        method: 'POST',
        headers: request.headers,
        body: request.body,
      });
    } catch (error) {
      throw new SendError(
        `could not reach ${target.url}: ${connectionCause(error)}${target.local ? ' (is npm start still running?)' : ' (check WEBHOOK_URL)'}`,
      );
    }
    const ackMs = performance.now() - started;
    const text = await response.text();
    process.stdout.write(
      `→ ${type}  ${event.id}\n  ${response.status} ${text}  (${ackMs.toFixed(1)} ms)\n`,
    );
    if (!response.ok) {
      failures++;
      continue;
    }
    if (target.store) await showOutcome(target.store, event.id, started);
  }
  return failures > 0 ? 1 : 0;
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      id: { type: 'string' },
      scenario: { type: 'string' },
      raw: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
}

interface Target {
  readonly url: string;
  readonly secret: ReturnType<typeof parseWebhookSecret>;
  readonly local?: LocalState;
  readonly store?: DynamoEventStore;
}

/** WEBHOOK_URL with OPENAI_WEBHOOK_SECRET, or the running local mode. */
function resolveTarget(): Target {
  const env = process.env;
  const secretOf = (text: string, source: string) => {
    try {
      return parseWebhookSecret(text, 'current');
    } catch (error) {
      throw new SendError(
        `${source} is not a webhook secret (whsec_…): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
  if (env.WEBHOOK_URL) {
    if (!env.OPENAI_WEBHOOK_SECRET)
      throw new SendError('WEBHOOK_URL needs OPENAI_WEBHOOK_SECRET, the secret to sign with.', 2);
    return {
      url: env.WEBHOOK_URL,
      secret: secretOf(env.OPENAI_WEBHOOK_SECRET, 'OPENAI_WEBHOOK_SECRET'),
    };
  }
  const local = runningLocalMode();
  return {
    url: local.webhookUrl,
    secret: secretOf(env.OPENAI_WEBHOOK_SECRET || local.webhookSecret, 'The webhook secret'),
    local,
    store: localStore(local),
  };
}

function runningLocalMode(): LocalState {
  const read = readState<LocalState>(path.join(localDir(), 'state.json'));
  if (read.status !== 'running') throw new SendError(notRunningMessage(read));
  return read.state;
}

async function playCalls(scenario: string | undefined): Promise<number> {
  if (scenario !== undefined && scenario !== 'all' && !SCENARIO_NAMES.includes(scenario)) {
    // `--scenario list` (or a name the simulator does not know): the names, with what each plays.
    const listing = scenario === 'list';
    const out = listing ? process.stdout : process.stderr;
    if (!listing) {
      const suggestion = closest(scenario, SCENARIO_NAMES);
      out.write(
        `Unknown scenario "${scenario}"${suggestion ? `: did you mean ${suggestion}?` : '.'}\n`,
      );
    }
    out.write('Scenarios (npm run send -- call --scenario <name>):\n');
    for (const s of SCENARIOS)
      out.write(
        `  ${s.name.padEnd(22)}${s.summary}\n  ${''.padEnd(22)}a correct worker: ${s.expect}\n`,
      );
    return listing ? 0 : 2;
  }
  const state = runningLocalMode();
  // A scenario is played by the Realtime simulator. `calls` alone is not enough: with
  // OPENAI_BASE_URL (the real API) phone calls are on, but real callers make them.
  if (!state.simulator)
    throw new SendError(
      state.calls
        ? `call scenarios need the OpenAI simulator, and this npm start talks to ${state.openAiBaseUrl} (OPENAI_BASE_URL): its phone calls are real ones, so call your number. To play scenarios, run npm start without OPENAI_BASE_URL.`
        : 'call scenarios need the OpenAI simulator: run npm start without OPENAI_BASE_URL.',
    );
  const names = scenario === 'all' ? SCENARIO_NAMES : [scenario ?? DEFAULT_SCENARIO];
  let ok = true;
  for (const [i, name] of names.entries()) {
    if (i > 0) process.stdout.write(`\n${'─'.repeat(100)}\n\n`);
    const played = await sendCall(state, (line) => process.stdout.write(`${line}\n`), {
      scenario: name,
    }).catch((error: unknown) => {
      process.stderr.write(`npm run send: ${describe(error)}\n`);
      return false;
    });
    ok &&= played;
  }
  return ok ? 0 : 1;
}

/** Tells the simulator what the object is now, so hydration agrees with the event. */
async function simulateObject(openAiBaseUrl: string, type: string, objectId: string) {
  const sample = sampleObject(type, objectId);
  if (!sample) return;
  const base = openAiBaseUrl.replace(/\/v1\/?$/, '');
  await fetch(`${base}/_sim/objects/${sample.kind}/${encodeURIComponent(objectId)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(sample.object),
  }).then(
    (response) => response.body?.cancel(),
    // The simulator is gone: sending the event says so.
    () => undefined,
  );
}

async function showOutcome(
  store: DynamoEventStore,
  eventId: string,
  started: number,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const stored = await store.getEvent(eventId);
    if (stored && stored.status !== 'received') {
      const tookMs = (performance.now() - started).toFixed(0);
      process.stdout.write(
        `  stored: category=${stored.category} status=${stored.status} after ${tookMs} ms${stored.lastError ? ` error=${stored.lastError}` : ''}\n`,
      );
      if (stored.objectId) {
        const object = await store.getObject(stored.objectId);
        if (object) {
          const history = object.history.map((t) => t.status).join(' → ');
          process.stdout.write(
            `  object: ${object.objectType} ${object.objectId} status=${object.status} history=[${history}]\n`,
          );
          if (object.details)
            process.stdout.write(`  details: ${JSON.stringify(object.details)}\n`);
          if (object.hydrationError)
            process.stdout.write(`  hydration error: ${object.hydrationError}\n`);
        }
      }
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  process.stdout.write('  not processed within 10 s (see the `npm start` logs)\n');
}

function localStore(local: LocalState): DynamoEventStore {
  const client = new DynamoDBClient({
    endpoint: local.dynamoEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  return new DynamoEventStore(DynamoDBDocumentClient.from(client), local.tableName);
}

function describe(error: unknown): string {
  if (error instanceof SendError) return error.message;
  const cause = (error as { cause?: unknown })?.cause;
  if (cause !== undefined) return `${String(error)}: ${connectionCause(error)}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

const code = await main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`npm run send: ${describe(error)}\n`);
  return error instanceof SendError ? error.exitCode : 1;
});
process.exit(code);
