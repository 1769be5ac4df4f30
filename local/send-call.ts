import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { keys } from '#core/table-schema';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { playControlCommands } from './call-control';
import { sampleEvent } from './samples';
import { signedWebhookRequest } from './signing';
import { TIMELINE_LEGEND, timelineLines } from './stand-ins/realtime-timeline';

/**
 * `npm run send -- call [--scenario <name>]`: plays a whole phone call against `npm start`.
 * OpenAI's side is the Realtime simulator, which plays the named scenario (default `happy`:
 * greeting, the caller asks, the model calls lookup_order, answers, the caller hangs up). The
 * scenario travels as an `X-Sim-Scenario` header of the simulated INVITE: the simulator reads it
 * when the call is created (`POST /_sim/calls`), and the `realtime.call.incoming` webhook carries
 * the INVITE's headers as OpenAI's does. Prints the setup latency, the timeline of what each side
 * sent, the simulator's facts (cut-off goodbyes, acting on cancelled calls, …) and what the worker
 * recorded.
 */
export interface CallTarget {
  readonly webhookUrl: string;
  readonly webhookSecret: string;
  readonly openAiBaseUrl: string;
  readonly tableName: string;
  readonly dynamoEndpoint: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the simulator's and the table's JSON, read field by field.
type Json = Record<string, any>;

export const DEFAULT_SCENARIO = 'happy';

/** Every scenario the simulator knows, from the running simulator. */
export async function listScenarios(target: CallTarget): Promise<Json[]> {
  const response = await fetch(`${simulatorUrl(target)}/_sim/scenarios`);
  if (!response.ok) throw new Error(`simulator scenarios: ${response.status}`);
  return (await response.json()) as Json[];
}

export async function sendCall(
  target: CallTarget,
  out: (line: string) => void,
  options: { readonly scenario?: string } = {},
): Promise<boolean> {
  const sim = simulatorUrl(target);
  const control = async (method: string, path: string, body?: unknown): Promise<Json> => {
    const response = await fetch(`${sim}/_sim/${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await response.json().catch(() => ({}))) as Json;
    if (!response.ok)
      throw new Error(
        `simulator ${path}: ${response.status} ${json.error?.message ?? '(is npm start running with the simulator?)'}`,
      );
    return json;
  };
  const { record, parts } = localCallStore(target);

  const scenarioName = options.scenario ?? DEFAULT_SCENARIO;
  const scenario = (await listScenarios(target)).find((s) => s.name === scenarioName);
  const call = await control('POST', 'calls', {
    sip_headers: [
      { name: 'From', value: `"Caller" <sip:+14155550123@sip.example.com>;tag=${tag()}` },
      { name: 'To', value: 'sip:+18005550100@sip.api.openai.com' },
      { name: 'Call-ID', value: tag() + tag() },
      { name: 'X-Sim-Scenario', value: scenarioName },
    ],
  });
  out(`☎  ${call.from} calls ${call.to}: OpenAI assigns ${call.call_id}`);
  out(`   scenario ${scenarioName}: ${scenario?.summary ?? ''}`);
  if (scenario?.expect) out(`   a correct worker: ${scenario.expect}`);
  const event = sampleEvent('realtime.call.incoming', {
    objectId: call.call_id,
    sipHeaders: call.sip_headers,
  });
  const request = signedWebhookRequest(parseWebhookSecret(target.webhookSecret, 'current'), event);
  const postedAt = Date.now();
  const posted = await fetch(target.webhookUrl, {
    method: 'POST',
    headers: request.headers,
    body: request.body,
  });
  out(`→  realtime.call.incoming webhook: ${posted.status} ${await posted.text()}`);
  out('   playing the call…');
  // `control`: the call-control API steers the live call (local/call-control.ts).
  const controlUrl = (target as { readonly callControlUrl?: string }).callControlUrl;
  if (scenarioName === 'control' && controlUrl)
    await playControlCommands(
      controlUrl,
      call.call_id,
      async () => (await record(call.call_id))?.status === 'active',
      out,
      async (kind) =>
        (await pollUntil(async () => {
          const c = await control('GET', `calls/${call.call_id}`);
          const facts: { kind?: string }[] = Array.isArray(c.facts) ? c.facts : [];
          return facts.some((f) => f.kind === kind) ? true : undefined;
        }, 15_000)) === true,
    );

  // The simulator's side ends (hang-up, transfer, drop, failed session) well within this.
  const over = await pollUntil(async () => {
    const c = await control('GET', `calls/${call.call_id}`);
    return ['ended', 'failed', 'rejected'].includes(c.state) ? c : undefined;
  }, 120_000);
  const ended = await pollUntil(async () => {
    const r = await record(call.call_id);
    return r && ['ended', 'rejected', 'missed'].includes(String(r.status)) ? r : undefined;
  }, 10_000);
  const view = await control('GET', `calls/${call.call_id}`);
  const stored = ended ?? (await record(call.call_id));

  const origin = Number(stored?.receivedAt ?? postedAt);
  const t: Json = view.timeline ?? {};
  const setup: [string, number | undefined, string][] = [
    ['webhook received by the ingress', stored?.receivedAt, ''],
    ['accept sent (POST /accept)', t.accepted, 'incoming-call handler'],
    ['sideband open (wss …/realtime?call_id=)', t.attached, `worker ${stored?.owner ?? '?'}`],
    ['greeting sent (response.create)', t.firstResponseCreate, ''],
  ];
  out('\nSetup');
  let previous = origin;
  for (const [label, at, note] of setup) {
    if (at === undefined) continue;
    out(
      `  +${String(at - origin).padStart(5)} ms  (${`+${at - previous}`.padStart(6)} ms)  ${label}${note ? `  [${note}]` : ''}`,
    );
    previous = at;
  }

  out(`\nTimeline  (${TIMELINE_LEGEND})`);
  for (const line of timelineLines(view.log ?? [], { origin })) out(`  ${line}`);

  out('\nFacts');
  const facts: Json[] = view.facts ?? [];
  for (const fact of facts) out(`  ${fact.warn ? '⚠' : '•'} ${fact.text}`);
  for (const close of view.closes ?? [])
    out(`  • socket closed ${close.code} by the ${close.by} at +${close.at - origin} ms`);
  if ((view.conflicts ?? 0) > 0)
    out(`  • ${view.conflicts} response.create refused: conversation_already_has_active_response`);
  if ((view.idle_timeouts ?? 0) > 0) out(`  • ${view.idle_timeouts} idle timeout(s)`);
  out(`  • SIP ${view.sip_status ?? '?'} to the caller; simulator call state ${view.state}`);
  if (!over) out('  ⚠ the call had not ended after 120 s');

  out("\nWorker's record");
  if (!stored) {
    out('  (none)');
    return false;
  }
  out(
    `  status ${stored.status}${stored.endReason ? `: ${stored.endReason}` : ''}${stored.rejectReason ? `: ${stored.rejectReason}` : ''}` +
      `${stored.durationMs !== undefined ? ` after ${stored.durationMs} ms` : ''}, ${stored.totalTokens ?? 0} tokens`,
  );
  for (const line of recordedLines(await parts(call.call_id))) out(line);
  if (!ended) out(`  ⚠ the record is still ${stored.status} 10 s after the call ended`);
  return Boolean(over && ended);
}

/**
 * The recorded parts as printed, in conversation order: a transcript sits at its `order` (where
 * its item was added to the conversation, core/ports/sideband.ts), not at `at` (when its text
 * was recorded: a caller's transcription can complete after the assistant answered); parts
 * without an `order` (tools, events, transcripts recorded before there was one) sit at `at`.
 * The sort is stable, so parts with one key keep the table's order.
 */
export function recordedLines(items: readonly Json[]): string[] {
  const key = (item: Json) =>
    item.kind === 'transcript' && typeof item.order === 'number'
      ? item.order
      : Number(item.at ?? 0);
  // Answers the caller did not hear to the end (the assistant_cut_off events), by response.
  const cutOffs = new Map(
    items
      .filter((item) => item.kind === 'event' && item.name === 'assistant_cut_off')
      .map((item) => [String(item.detail?.responseId), String(item.detail?.reason)] as const),
  );
  const lines: string[] = [];
  for (const item of [...items].sort((a, b) => key(a) - key(b))) {
    if (item.kind === 'transcript') {
      const cutOff = typeof item.responseId === 'string' ? cutOffs.get(item.responseId) : undefined;
      lines.push(
        `  ${item.role === 'caller' ? 'caller   ' : 'assistant'}: ${item.text}${cutOff ? ` [cut off: ${cutOff}]` : ''}`,
      );
    }
    if (item.kind === 'tool')
      lines.push(
        `  tool     : ${item.name}(${item.arguments}) → ${item.output} in ${item.latencyMs} ms`,
      );
    if (item.kind === 'event')
      lines.push(
        `  event    : ${item.name}${item.detail ? ` ${JSON.stringify(item.detail)}` : ''}`,
      );
  }
  return lines;
}

/** The call's record and its parts (transcript, tools, events) in local mode's DynamoDB Local. */
export function localCallStore(target: Pick<CallTarget, 'tableName' | 'dynamoEndpoint'>) {
  const documents = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: target.dynamoEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    }),
  );
  return {
    record: async (callId: string) =>
      (
        await documents.send(
          new GetCommand({
            TableName: target.tableName,
            Key: keys.call(callId),
            ConsistentRead: true,
          }),
        )
      ).Item as Json | undefined,
    /** Every item of the call's partition, the record (`sk` CALL) included. */
    parts: async (callId: string): Promise<Json[]> =>
      (
        await documents.send(
          new QueryCommand({
            TableName: target.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': keys.call(callId).pk },
            ConsistentRead: true,
          }),
        )
      ).Items ?? [],
  };
}

/** Probes every 50 ms until it gives a value, or `timeoutMs` passes (then undefined). */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function simulatorUrl(target: CallTarget): string {
  return target.openAiBaseUrl.replace(/\/v1\/?$/, '');
}

function tag(): string {
  return Math.random().toString(16).slice(2, 10);
}
