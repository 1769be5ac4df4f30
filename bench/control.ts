import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { CallRecord } from '#core/ports/calls';
import { keys } from '#core/table-schema';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { startCallControl } from '../local/call-control';
import { localCallsConfig } from '../local/calls';
import { LocalPipeline } from '../local/pipeline';
import { sampleEvent } from '../local/samples';
import { signedWebhookRequest } from '../local/signing';
import { fmt, percentile } from './stats';

type Out = (line?: string) => void;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `npm run bench -- control` (issue 16): call-control latency in local mode, from the API request
 * to the command's frame arriving at the Realtime simulator (so: stored, routed to the worker that
 * holds the call, claimed under its lease, sent on the call's socket), and commands applied out of
 * commands sent (each `say` frame seen exactly once). Three phases: steady, with the calls spread
 * over several worker processes; across a SIGTERM hand-off (commands sent to the calls of the
 * stopping worker while it drains); across a sweeper reattach (the owner killed, commands sent
 * while it is dead). BENCH_CONTROL_CALLS and BENCH_CONTROL_COMMANDS size it.
 */
export async function benchControl(out: Out): Promise<void> {
  const calls = Number(process.env.BENCH_CONTROL_CALLS || 30);
  const commands = Number(process.env.BENCH_CONTROL_COMMANDS || 300);
  const workers = 3;
  out(`## Call control: command latency (local mode, ${calls} calls on ${workers} workers)`);
  out();
  const p = await LocalPipeline.start({
    logLevel: 'error',
    // A caller who never speaks is not hung up during the run.
    calls: localCallsConfig({ maxCallsPerTask: 200, noSpeechTimeoutMs: 0 }),
    workers,
    workerEnv: {
      LOG_LEVEL: 'error',
      LEASE_TTL_MS: '4000',
      LEASE_RENEWAL_MS: '500',
      MAX_CLOCK_SKEW_MS: '1500',
      SWEEP_INTERVAL_MS: '500',
      SIGNAL_WAIT_SECONDS: '1',
    },
  });
  const api = await startCallControl(p.env);
  const documents = DynamoDBDocumentClient.from(p.dynamo);
  const secret = parseWebhookSecret(p.webhookSecret, 'current');
  const realtime = p.realtime;
  if (!realtime) throw new Error('no simulator');
  // Every `say` frame the simulator receives, by its text: when, and how many times.
  const seen = new Map<string, { at: number; count: number }>();
  realtime.onClientEvent = (_call, event, at) => {
    if (event.type !== 'conversation.item.create') return;
    const text = (event.item as { content?: { text?: string }[] } | undefined)?.content?.[0]?.text;
    if (!text?.startsWith('bench ')) return;
    const known = seen.get(text);
    if (known) known.count++;
    else seen.set(text, { at, count: 1 });
  };
  let n = 0;
  /** Sends one `say` (no response: only the frame is measured); resolves with its text and start. */
  const send = async (callId: string) => {
    const text = `bench ${++n} ${callId}`;
    const startedAt = Date.now();
    const response = await fetch(`${api.url}/calls/${callId}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-owh-sender': 'bench' },
      body: JSON.stringify({ action: 'say', text, respond: false }),
    });
    const accepted = response.status === 202;
    await response.arrayBuffer();
    return { text, startedAt, accepted, apiMs: Date.now() - startedAt };
  };
  const measure = async (sent: Awaited<ReturnType<typeof send>>[], waitMs: number) => {
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && sent.some((s) => s.accepted && !seen.has(s.text)))
      await sleep(20);
    const latencies = sent
      .flatMap((s) => {
        const frame = seen.get(s.text);
        return frame ? [frame.at - s.startedAt] : [];
      })
      .sort((a, b) => a - b);
    const once = sent.filter((s) => seen.get(s.text)?.count === 1).length;
    const twice = sent.filter((s) => (seen.get(s.text)?.count ?? 0) > 1).length;
    const api = sent.map((s) => s.apiMs).sort((a, b) => a - b);
    return {
      latencies,
      once,
      twice,
      sent: sent.length,
      accepted: sent.filter((s) => s.accepted).length,
      api,
    };
  };
  const ownerOf = async (callId: string) =>
    (
      (
        await documents.send(
          new GetCommand({ TableName: p.tableName, Key: keys.call(callId), ConsistentRead: true }),
        )
      ).Item as CallRecord | undefined
    )?.owner;

  const rows: string[] = [];
  const row = (label: string, m: Awaited<ReturnType<typeof measure>>) => {
    rows.push(
      `| ${label} | ${m.sent} | ${m.once}/${m.sent}${m.twice ? ` (${m.twice} twice)` : ''} | ${fmt(percentile(m.api, 50), 0)} ms | ${fmt(percentile(m.latencies, 50), 0)} ms | ${fmt(percentile(m.latencies, 99), 0)} ms | ${fmt(m.latencies.at(-1) ?? Number.NaN, 0)} ms |`,
    );
    return m;
  };
  try {
    const ids: string[] = [];
    for (let i = 0; i < calls; i++) {
      const call = realtime.createCall();
      const event = sampleEvent('realtime.call.incoming', { objectId: call.id });
      const request = signedWebhookRequest(secret, event);
      await fetch(p.url, { method: 'POST', headers: request.headers, body: request.body });
      ids.push(call.id);
    }
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const owners = await Promise.all(ids.map(ownerOf));
      if (owners.every((o) => o !== undefined)) break;
      await sleep(100);
    }
    const owners = new Map<string, string>();
    for (const id of ids) owners.set(id, (await ownerOf(id)) ?? '?');
    const spread = new Map<string, number>();
    for (const o of owners.values()) spread.set(o, (spread.get(o) ?? 0) + 1);

    // Warm-up: a few commands, not counted.
    await measure(await Promise.all(ids.slice(0, 5).map(send)), 5000);

    // 1. Steady: `commands` commands, 10 at a time, round-robin over the calls.
    const steady: Awaited<ReturnType<typeof send>>[] = [];
    for (let i = 0; i < commands; i += 10)
      steady.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(10, commands - i) }, (_, k) =>
            send(ids[(i + k) % ids.length] as string),
          ),
        )),
      );
    const steadyResult = row(
      `steady, ${owners.size > 0 ? spread.size : 0} workers`,
      await measure(steady, 10_000),
    );

    // 2. A SIGTERM hand-off: commands to the stopping worker's calls while it drains.
    const victim = p.workers[0];
    const victimCalls = ids.filter((id) => owners.get(id) === victim?.id);
    const stopping = victim?.stop();
    const handoff: Awaited<ReturnType<typeof send>>[] = [];
    const handoffUntil = Date.now() + 1500;
    while (Date.now() < handoffUntil && victimCalls.length > 0) {
      handoff.push(...(await Promise.all(victimCalls.map(send))));
      await sleep(100);
    }
    await stopping;
    const handoffResult = row(
      `SIGTERM hand-off (${victimCalls.length} calls)`,
      await measure(handoff, 15_000),
    );

    // 3. A sweeper reattach: the owner killed; commands sent while it is dead.
    const second = p.workers[1];
    const secondCalls: string[] = [];
    for (const id of ids) if ((await ownerOf(id)) === second?.id) secondCalls.push(id);
    await second?.kill();
    const swept: Awaited<ReturnType<typeof send>>[] = [];
    swept.push(...(await Promise.all(secondCalls.map(send))));
    await sleep(500);
    swept.push(...(await Promise.all(secondCalls.map(send))));
    const sweptResult = row(
      `owner killed, sweeper reattach (${secondCalls.length} calls)`,
      await measure(swept, 30_000),
    );

    out(
      'Each command is a `say` without a response (`respond: false`), so only routing is measured: from the `POST /calls/{call_id}/commands` request (the same code as the Lambda, in-process) to the `conversation.item.create` frame arriving at the Realtime simulator, i.e. stored in DynamoDB Local, routed to the owning worker process through its own SQS queue (the emulator; the nudge carries the command), claimed pending → applied under the call lease (a DynamoDB transaction), sent on the call socket. Applied = that frame seen exactly once. Workers renew their leases every 0.5 s with a 4 s TTL (the test settings), so a sweeper reattach takes seconds by design; a SIGTERM hand-off does not wait for the lease.',
    );
    out();
    out(`Calls per worker: ${[...spread.entries()].map(([o, c]) => `${o} ${c}`).join(', ')}.`);
    out();
    out('| phase | sent | applied once / sent | API answer p50 | to the worker p50 | p99 | max |');
    out('|---|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) out(r);
    out();
    const p99 = percentile(steadyResult.latencies, 99);
    out(
      `Target p99 ≤ 1 s to the owning worker (steady) → ${p99 <= 1000 ? 'met' : 'MISSED'} (${fmt(p99, 0)} ms); exactly once across the hand-off: ${handoffResult.once}/${handoffResult.sent}, across the sweep: ${sweptResult.once}/${sweptResult.sent}.`,
    );
    out();
  } finally {
    realtime.onClientEvent = undefined;
    await api.stop();
    await p.stop();
  }
}
