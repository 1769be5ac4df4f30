import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { localCallsConfig } from '../local/calls';
import { LocalPipeline } from '../local/pipeline';
import { sampleEvent } from '../local/samples';
import { signedWebhookRequest } from '../local/signing';
import { startLatencyProxy } from '../local/stand-ins/latency-proxy';
import type { SimulatedCall } from '../local/stand-ins/realtime-simulator';
import { fmt, percentile } from './stats';

type Out = (line?: string) => void;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The workers' production lease timings (containers/sideband/src/main.ts defaults). */
const LEASE_TTL_MS = 15_000;
const LEASE_RENEWAL_MS = 5000;
/** How long an accepted call may go without a sideband (or a hang-up) before it counts as stranded. */
const STRANDED_AFTER_MS = 30_000;

interface ScheduledFault {
  readonly at: number;
  readonly what: string;
  readonly run: () => Promise<void>;
}

/**
 * The chaos run: `calls` calls over `seconds` through the whole local pipeline (ingress, the
 * realtime consumer's incoming-call handler, the signal queue) to several real worker processes,
 * with faults injected for real on a schedule: a worker killed (SIGKILL), a worker stalled past its
 * lease (SIGSTOP, then SIGCONT), `/accept`s answered after the handler's timeout, the workers'
 * DynamoDB slowed (a latency proxy in front of DynamoDB Local), clean 1000 closes of live calls (a
 * backend rotation), and a rolling restart (SIGTERM each worker in turn, a replacement started
 * first). Read from the simulator's view of every sideband socket (open and close times):
 * calls double-held, calls stranded, reattaches and their latency.
 */
export async function benchChaos(
  out: Out,
  calls = Number(process.env.BENCH_CHAOS_CALLS || 200),
  seconds = Number(process.env.BENCH_CHAOS_SECONDS || 120),
  workers = 4,
): Promise<void> {
  out('## Chaos run: calls under faults on a schedule');
  out();
  const base = localCallsConfig();
  const config = { ...base, policy: { ...base.policy, maxConcurrentCalls: calls + 50 } };
  const p = await LocalPipeline.start({
    logLevel: 'error',
    calls: config,
    workers: 0,
    pollerConcurrency: 4,
  });
  const slowDynamo = await startLatencyProxy(p.dynamoEndpoint);
  const workerEnv = {
    LOG_LEVEL: 'warn',
    AWS_ENDPOINT_URL_DYNAMODB: slowDynamo.endpoint,
    LEASE_TTL_MS: String(LEASE_TTL_MS),
    LEASE_RENEWAL_MS: String(LEASE_RENEWAL_MS),
  };
  let started = 0;
  const live = () =>
    p.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
  const startWorker = () => p.startWorker(`chaos-${++started}`, workerEnv);
  const sim = p.realtime;
  if (!sim) throw new Error('the pipeline has no calls');
  const secret = parseWebhookSecret(p.webhookSecret, 'current');
  const played: SimulatedCall[] = [];
  const faultLog: { at: number; what: string }[] = [];
  /** When the stalled worker was stopped and let go on (epoch ms). */
  const stall = { from: 0, to: 0, victim: '' };
  const liveOverlapsOver1s: string[] = [];
  let t0 = 0;
  try {
    for (let i = 0; i < workers; i++) await startWorker();
    const spacing = (seconds * 1000) / calls;
    const schedule: ScheduledFault[] = [
      {
        at: 0.08,
        what: '`/accept` answers 3.5 s late for 6 calls (the handler gives up at 3 s, retries once)',
        run: async () => sim.delayAccepts(3500, 6),
      },
      {
        at: 0.15,
        what: 'SIGKILL a worker (a replacement starts)',
        run: async () => {
          await live()[0]?.kill();
          await startWorker();
        },
      },
      {
        at: 0.3,
        what: `SIGSTOP a worker for ${(LEASE_TTL_MS + 3000) / 1000} s (its lease is ${LEASE_TTL_MS / 1000} s), then SIGCONT`,
        run: async () => {
          const victim = live()[1];
          victim?.child.kill('SIGSTOP');
          stall.from = Date.now();
          stall.victim = victim?.id ?? '';
          setTimeout(() => {
            victim?.child.kill('SIGCONT');
            stall.to = Date.now();
          }, LEASE_TTL_MS + 3000);
        },
      },
      {
        at: 0.42,
        what: 'the next 6 sideband attaches fail: 503 twice, a reset connection twice, an upgrade never answered twice',
        run: async () => {
          sim.failAttach({ status: 503 }, 2);
          sim.failAttach('reset', 2);
          sim.failAttach('hang', 2);
        },
      },
      {
        at: 0.5,
        what: "the workers' DynamoDB 400 ms slower per request, for 20 s",
        run: async () => {
          slowDynamo.delayMs = 400;
          setTimeout(() => {
            slowDynamo.delayMs = 0;
          }, 20_000);
        },
      },
      {
        at: 0.6,
        what: 'a clean 1000 close of 10 live calls (a backend rotation)',
        run: async () => {
          const attached = played.filter((c) => c.state === 'accepted' && c.sockets.size === 1);
          for (const c of attached.slice(0, 10)) sim.rotate(c.id, 1000);
        },
      },
      {
        at: 0.72,
        what: 'a rolling restart: for each worker, a replacement starts, then the worker gets SIGTERM',
        run: async () => {
          for (const old of live()) {
            await startWorker();
            const exited = await Promise.race([
              old.stop().then(() => true),
              sleep(90_000).then(() => false),
            ]);
            if (!exited) {
              process.stderr.write(
                `chaos: ${old.id} did not drain within 90 s:\n${old.logs
                  .filter((l) => !l.includes('"_aws"'))
                  .slice(-40)
                  .join('\n')}\n`,
              );
              await old.kill();
            }
          }
        },
      },
    ];

    // The callers: each rings, talks every 6 s (a tool call on the second line), and hangs up
    // after 20-40 s.
    const callers: Promise<void>[] = [];
    t0 = Date.now();
    const faults = (async () => {
      for (const fault of schedule) {
        const due = t0 + fault.at * seconds * 1000;
        await sleep(Math.max(0, due - Date.now()));
        faultLog.push({ at: Date.now() - t0, what: fault.what });
        process.stderr.write(`chaos ${((Date.now() - t0) / 1000).toFixed(1)} s: ${fault.what}\n`);
        await fault.run();
      }
    })();
    for (let i = 0; i < calls; i++) {
      await sleep(Math.max(0, t0 + i * spacing - Date.now()));
      const call = sim.createCall();
      played.push(call);
      callers.push(playCall(p.url, secret, sim, call, i));
    }
    await Promise.all(callers);
    await faults;
    // Every call ends: the callers hung up; give the workers time to record it.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && played.some((c) => c.state === 'accepted')) await sleep(200);
  } finally {
    slowDynamo.delayMs = 0;
    for (const w of p.workers) w.child.kill('SIGCONT');
  }
  const elapsed = Date.now() - t0;

  // What the simulator saw (every sideband socket of every call, and when the call ended), and
  // what the call records say (who attached each socket).
  const now = Date.now();
  const documents = DynamoDBDocumentClient.from(p.dynamo);
  const rawOverlaps: number[] = [];
  const liveOverlaps: number[] = [];
  const gaps: number[] = [];
  const stranded: { id: string; ms: number; where: string; at: number }[] = [];
  let reattached = 0;
  let neverAttached = 0;
  let duplicateLines = 0;
  let duplicateGreetings = 0;
  const endReasons = new Map<string, number>();
  for (const c of played) {
    const parts =
      (
        await documents.send(
          new QueryCommand({
            TableName: p.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': `CALL#${c.id}` },
            ConsistentRead: true,
          }),
        )
      ).Items ?? [];
    const record = parts.find((x) => x.sk === 'CALL');
    const reason = String(record?.endReason ?? record?.status ?? 'none');
    endReasons.set(reason, (endReasons.get(reason) ?? 0) + 1);
    const lines = new Map<string, number>();
    for (const x of parts)
      if (x.kind === 'transcript' && x.role === 'caller')
        lines.set(String(x.text), (lines.get(String(x.text)) ?? 0) + 1);
    duplicateLines += [...lines.values()].filter((n) => n > 1).length;
    if (sim.sent(c.id, 'response.create').filter((e) => e.response?.instructions).length > 1)
      duplicateGreetings++;

    const accepted = c.timeline.accepted;
    if (accepted === undefined) continue;
    const ended = c.timeline.ended ?? now;
    const spans = [...c.spans].sort((a, b) => a.openedAt - b.openedAt);
    if (spans.length === 0) neverAttached++;
    if (spans.length > 1) reattached++;
    // Each socket's worker: the `attached` event its session recorded when it opened (a
    // `reattached` one, the same session's next socket, keeps the owner before it), matched by
    // time; a socket with no event within 2 s has an unknown owner and counts as acting.
    const attaches: { at: number; owner: string }[] = [];
    for (const part of parts
      .filter((x) => x.kind === 'event' && (x.name === 'attached' || x.name === 'reattached'))
      .sort((a, b) => Number(a.at) - Number(b.at)))
      attaches.push({
        at: Number(part.at),
        owner:
          part.name === 'attached' ? String(part.detail?.owner) : (attaches.at(-1)?.owner ?? ''),
      });
    const owners = spans.map((span) => {
      const nearest = [...attaches].sort(
        (a, b) => Math.abs(a.at - span.openedAt) - Math.abs(b.at - span.openedAt),
      )[0];
      return nearest && Math.abs(nearest.at - span.openedAt) <= 2000 ? nearest.owner : 'unknown';
    });
    let rawLongest = 0;
    let liveLongest = 0;
    spans.forEach((a, i) => {
      spans.slice(i + 1).forEach((b, j) => {
        const from = Math.max(a.openedAt, b.openedAt);
        const to = Math.min(a.closedAt ?? now, b.closedAt ?? now);
        if (to <= from) return;
        rawLongest = Math.max(rawLongest, to - from);
        // Time the stopped worker could not act does not count: one of the two was inert.
        const inert =
          stall.victim !== '' && (owners[i] === stall.victim || owners[i + 1 + j] === stall.victim)
            ? Math.max(0, Math.min(to, stall.to || now) - Math.max(from, stall.from))
            : 0;
        const live = to - from - inert;
        liveLongest = Math.max(liveLongest, live);
        if (live > 1000)
          liveOverlapsOver1s.push(
            `${c.id}: ${fmt(live, 0)} ms, from ${fmt((from - t0) / 1000, 1)} s (owners ${owners[i]}, ${owners[i + 1 + j]})`,
          );
      });
    });
    rawOverlaps.push(rawLongest);
    liveOverlaps.push(liveLongest);
    // Time with no socket while the call lived: before the first attach, and between sockets.
    let coveredUntil = accepted;
    let worst = 0;
    let where = '';
    let worstFrom = accepted;
    spans.forEach((span, i) => {
      const gap = Math.max(0, Math.min(span.openedAt, ended) - coveredUntil);
      if (gap > worst) {
        worst = gap;
        where = i === 0 ? 'before its first attach' : `before socket ${i + 1}`;
        worstFrom = coveredUntil;
      }
      // A reattach: a socket after the first, while the call lived (0 when it overlapped).
      if (i > 0 && span.openedAt < ended) gaps.push(gap);
      coveredUntil = Math.max(coveredUntil, span.closedAt ?? now);
    });
    if (ended - coveredUntil > worst) {
      worst = ended - coveredUntil;
      where = spans.length === 0 ? 'never attached' : 'after its last socket';
      worstFrom = coveredUntil;
    }
    if (worst > STRANDED_AFTER_MS)
      stranded.push({ id: c.id, ms: worst, where, at: worstFrom - t0 });
  }
  const metric = (name: string) =>
    p.workers
      .flatMap((w) => w.logs)
      .reduce((sum, line) => {
        if (!line.includes('"_aws"')) return sum;
        const value = (JSON.parse(line) as Record<string, unknown>)[name];
        return sum + (typeof value === 'number' ? value : 0);
      }, 0);
  const counts = {
    LeasesLost: metric('LeasesLost'),
    SweeperReattaches: metric('SweeperReattaches'),
    Handoffs: metric('Handoffs'),
    Reattaches: metric('Reattaches'),
    AttachRetries: metric('AttachRetries'),
  };
  await slowDynamo.stop();
  await p.stop();

  const doubleHeld = liveOverlaps.filter((o) => o > LEASE_RENEWAL_MS).length;
  const rawOverRenewal = rawOverlaps.filter((o) => o > LEASE_RENEWAL_MS).length;
  const sortedGaps = [...gaps].sort((a, b) => a - b);
  const quick = sortedGaps.filter((g) => g <= 2000);
  const takenOver = sortedGaps.filter((g) => g > 2000);
  out(
    `Command: \`npm run bench -- chaos\` (\`BENCH_CHAOS_CALLS\`, \`BENCH_CHAOS_SECONDS\` scale it). ${calls} calls over ${seconds} s (one every ${fmt((seconds * 1000) / calls, 0)} ms) through the whole local path (signed webhook → ingress → realtime queue → incoming-call handler → \`/accept\` → signal queue) to ${workers} worker processes with the production lease timings (${LEASE_TTL_MS / 1000} s lease renewed every ${LEASE_RENEWAL_MS / 1000} s, sweeps every 10 s, 5 s tolerated clock skew). Each caller talks every 6 s (a tool call on its second line) and hangs up after 20-40 s. The workers reach DynamoDB Local through a loopback latency proxy. Faults, for real, at:`,
  );
  out();
  for (const f of faultLog) out(`- ${fmt(f.at / 1000, 1)} s: ${f.what}`);
  out();
  out(
    "Read from the simulator (every sideband socket, open to close) and the call records (each socket's worker, from the `attached` event its session recorded). Double-held: two sockets of one call open at once, both of workers able to act, for longer than one renewal period; a worker stopped with SIGSTOP keeps its TCP connections, so the simulator counts its sockets as open though the process can neither read nor send, and that time is shown apart (raw overlap). Stranded: an accepted call that went more than 30 s with no sideband before it ended (before its first attach, between two, or after the last).",
  );
  out();
  out('| what | figure | target |');
  out('|---|---:|---|');
  out(
    `| calls double-held (two acting sockets > ${LEASE_RENEWAL_MS / 1000} s) | **${doubleHeld}** (longest ${fmt(Math.max(0, ...liveOverlaps), 0)} ms) | 0: ${doubleHeld === 0 ? 'met' : 'MISSED'} |`,
  );
  out(
    `| raw overlap, the stopped worker's inert sockets included | longest ${fmt(Math.max(0, ...rawOverlaps), 0)} ms; ${rawOverRenewal} calls over ${LEASE_RENEWAL_MS / 1000} s | |`,
  );
  out(
    `| accepted calls without a sideband or a hang-up for > 30 s | **${stranded.length}**${stranded.length > 0 ? ` (longest ${fmt(Math.max(...stranded.map((s) => s.ms)) / 1000, 1)} s)` : ''} | 0: ${stranded.length === 0 ? 'met' : 'MISSED'} |`,
  );
  out(
    `| calls with two acting sockets for more than 1 s | ${liveOverlapsOver1s.length}${liveOverlapsOver1s.length > 0 ? `: ${liveOverlapsOver1s.join('; ')}` : ''} | |`,
  );
  for (const s of stranded)
    out(
      `| stranded: ${s.id} | ${fmt(s.ms / 1000, 1)} s ${s.where}, from ${fmt(s.at / 1000, 1)} s into the run | |`,
    );
  out(`| calls reattached (a second socket) | ${reattached} of ${played.length} | |`);
  out(
    `| time to reattach (socket closed → next open, call alive), ${sortedGaps.length} reattaches | p50 ${fmt(percentile(sortedGaps, 50) / 1000, 2)} s, p99 ${fmt(percentile(sortedGaps, 99) / 1000, 2)} s, max ${fmt((sortedGaps.at(-1) ?? 0) / 1000, 2)} s | |`,
  );
  out(
    `| of which hand-offs, rotations, lost leases (≤ 2 s) | ${quick.length}: p50 ${fmt(percentile(quick, 50) / 1000, 2)} s, p99 ${fmt(percentile(quick, 99) / 1000, 2)} s | |`,
  );
  out(
    `| of which take-overs after a crash or a stall (> 2 s: lease expiry, then a sweep) | ${takenOver.length}: p50 ${fmt(percentile(takenOver, 50) / 1000, 1)} s, max ${fmt((takenOver.at(-1) ?? 0) / 1000, 1)} s | ≤ ${(LEASE_TTL_MS + 10_000) / 1000} s + attach |`,
  );
  out(`| accepted calls never attached | ${neverAttached} | |`);
  out(
    `| duplicate caller transcript lines, duplicate greetings | ${duplicateLines}, ${duplicateGreetings} | 0 |`,
  );
  out(
    `| worker metrics | ${Object.entries(counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')} | |`,
  );
  out(
    `| call ends | ${[...endReasons]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')} | |`,
  );
  out();
  out(
    `The run took ${fmt(elapsed / 1000, 0)} s from the first call to the last call ending. The raw overlaps: when a sweeper takes a stopped worker's calls over before it wakes, the new owner's socket and the frozen one are both open until the frozen worker wakes (or the caller hangs up). On waking it acts on nothing it finds (every input is held back while its lease is unconfirmed), its first renewal is refused (its epoch was fenced), and it drops each socket at once without hanging up. How long the frozen socket overlaps depends only on how long the process stays stopped past the take-over (up to the stall minus the lease's remaining time); it never acts meanwhile, which is what the duplicate counts check.`,
  );
  out();
}

/** One caller: rings, says a line every 6 s (a tool call with the second), hangs up after 20-40 s. */
async function playCall(
  url: string,
  secret: ReturnType<typeof parseWebhookSecret>,
  sim: NonNullable<LocalPipeline['realtime']>,
  call: SimulatedCall,
  i: number,
): Promise<void> {
  const event = sampleEvent('realtime.call.incoming', {
    objectId: call.id,
    sipHeaders: call.sipHeaders,
  });
  const request = signedWebhookRequest(secret, event);
  for (let attempt = 0; attempt < 5; attempt++) {
    const response = await fetch(url, {
      method: 'POST',
      headers: request.headers,
      body: request.body,
    }).catch(() => undefined);
    if (response?.status === 200) break;
    await sleep(500);
  }
  const duration = 20_000 + ((i * 7919) % 20_000);
  const started = Date.now();
  let line = 0;
  while (Date.now() - started + 6000 < duration) {
    await sleep(6000);
    if (call.state !== 'accepted') return;
    try {
      sim.callerSays(call.id, `${call.id} says line ${++line}.`);
      if (line === 2) sim.requestTool(call.id, 'lookup_order', { order_number: String(i) });
    } catch {
      // The call ended meanwhile.
    }
  }
  await sleep(Math.max(0, duration - (Date.now() - started)));
  if (call.state === 'accepted') sim.callerHangsUp(call.id);
}
