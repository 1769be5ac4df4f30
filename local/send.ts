import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoEventStore } from '#adapters/dynamo-event-store';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { SAMPLE_TYPES, sampleEvent } from './samples';
import { DEFAULT_SCENARIO, sendCall } from './send-call';
import { signedWebhookRequest } from './signing';
import { SCENARIO_NAMES, SCENARIOS } from './stand-ins/realtime-scenarios';

/**
 * `npm run send -- <type|all> [--id <object id>]`: sends correctly signed sample events to the
 * local pipeline (or WEBHOOK_URL with OPENAI_WEBHOOK_SECRET), then shows what was stored.
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
}

const args = process.argv.slice(2);
const what = args[0];
const idFlag = args.indexOf('--id');
const objectId = idFlag >= 0 ? args[idFlag + 1] : undefined;
const scenarioFlag = args.indexOf('--scenario');
const scenario = scenarioFlag >= 0 ? (args[scenarioFlag + 1] ?? 'list') : undefined;
if (!what || what === '--help') {
  process.stderr.write(
    `Usage: npm run send -- <type|all> [--id <object id>]\n       npm run send -- call [--scenario <name>|all|list]\nTypes: ${SAMPLE_TYPES.join(', ')}\nScenarios: ${SCENARIO_NAMES.join(', ')}\n`,
  );
  process.exit(what ? 0 : 2);
}
if (
  what === 'call' &&
  scenario !== undefined &&
  scenario !== 'all' &&
  !SCENARIO_NAMES.includes(scenario)
) {
  // `--scenario list` (or a name the simulator does not know): the names, with what each plays.
  if (scenario !== 'list') process.stderr.write(`Unknown scenario "${scenario}".\n`);
  const out = scenario === 'list' ? process.stdout : process.stderr;
  out.write('Scenarios (npm run send -- call --scenario <name>):\n');
  for (const s of SCENARIOS)
    out.write(
      `  ${s.name.padEnd(22)}${s.summary}\n  ${''.padEnd(22)}a correct worker: ${s.expect}\n`,
    );
  process.exit(scenario === 'list' ? 0 : 2);
}

const state = readState();
const url = process.env.WEBHOOK_URL || state?.webhookUrl;
const secretText = process.env.OPENAI_WEBHOOK_SECRET || state?.webhookSecret;
if (!url || !secretText) {
  process.stderr.write(
    'No local pipeline found: run `npm start` first, or set WEBHOOK_URL and OPENAI_WEBHOOK_SECRET.\n',
  );
  process.exit(1);
}
const secret = parseWebhookSecret(secretText, 'current');
const store = state && !process.env.WEBHOOK_URL ? localStore(state) : undefined;

if (what === 'call') {
  if (!state?.calls) {
    process.stderr.write(
      'Phone calls need `npm start` with the OpenAI simulator (OPENAI_BASE_URL unset).\n',
    );
    process.exit(1);
  }
  const names = scenario === 'all' ? SCENARIO_NAMES : [scenario ?? DEFAULT_SCENARIO];
  let ok = true;
  for (const [i, name] of names.entries()) {
    if (i > 0) process.stdout.write(`\n${'─'.repeat(100)}\n\n`);
    const played = await sendCall(state, (line) => process.stdout.write(`${line}\n`), {
      scenario: name,
    }).catch((error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      return false;
    });
    ok &&= played;
  }
  process.exit(ok ? 0 : 1);
}

const types = what === 'all' ? [...SAMPLE_TYPES] : [what];
let failures = 0;
for (const type of types) {
  const event = sampleEvent(type, objectId ? { objectId } : {});
  const request = signedWebhookRequest(secret, event);
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: request.headers,
    body: request.body,
  });
  const ackMs = performance.now() - started;
  const text = await response.text();
  process.stdout.write(
    `→ ${type}  ${event.id}\n  ${response.status} ${text}  (${ackMs.toFixed(1)} ms)\n`,
  );
  if (!response.ok) {
    failures++;
    continue;
  }
  if (store) await showOutcome(store, event.id, started);
}
process.exit(failures > 0 ? 1 : 0);

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

function readState(): LocalState | undefined {
  try {
    return JSON.parse(
      readFileSync(path.resolve(import.meta.dirname, '..', '.local', 'state.json'), 'utf8'),
    ) as LocalState;
  } catch {
    return undefined;
  }
}

function localStore(local: LocalState): DynamoEventStore {
  const client = new DynamoDBClient({
    endpoint: local.dynamoEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  return new DynamoEventStore(DynamoDBDocumentClient.from(client), local.tableName);
}
