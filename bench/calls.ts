import * as path from 'node:path';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { CallRecord } from '#core/ports/calls';
import { keys } from '#core/table-schema';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { localCallsConfig } from '../local/calls';
import { startNodeChild } from '../local/node-child';
import { LocalPipeline } from '../local/pipeline';
import { sampleEvent } from '../local/samples';
import { signedWebhookRequest } from '../local/signing';
import { fmt, percentile } from './stats';

type Out = (line?: string) => void;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Call setup in local mode: webhook received → accept sent → sideband open → greeting sent. */
export async function benchCallSetup(out: Out, calls = 100): Promise<void> {
  out(`## Call setup latency (local mode, ${calls} calls)`);
  out();
  const p = await LocalPipeline.start({
    logLevel: 'error',
    calls: localCallsConfig(),
    workers: 1,
    workerEnv: { LOG_LEVEL: 'error' },
  });
  const documents = DynamoDBDocumentClient.from(p.dynamo);
  const secret = parseWebhookSecret(p.webhookSecret, 'current');
  const steps = {
    queue: [] as number[],
    accept: [] as number[],
    open: [] as number[],
    greeting: [] as number[],
    total: [] as number[],
  };
  try {
    for (let i = 0; i < calls + 5; i++) {
      const call = p.realtime?.createCall();
      if (!call) throw new Error('no simulator');
      const event = sampleEvent('realtime.call.incoming', { objectId: call.id });
      const request = signedWebhookRequest(secret, event);
      await fetch(p.url, { method: 'POST', headers: request.headers, body: request.body });
      await until(() => call.timeline.firstResponseCreate, 10_000, 'the greeting');
      const record = (
        await documents.send(new GetCommand({ TableName: p.tableName, Key: keys.call(call.id) }))
      ).Item as CallRecord;
      const t = call.timeline as Required<typeof call.timeline>;
      // The first calls warm connections and JIT; they are not counted.
      if (i >= 5) {
        steps.queue.push((record.handledAt ?? record.receivedAt) - record.receivedAt);
        steps.accept.push((t.accepted ?? 0) - record.receivedAt);
        steps.open.push((t.attached ?? 0) - (t.accepted ?? 0));
        steps.greeting.push((t.firstResponseCreate ?? 0) - (t.attached ?? 0));
        steps.total.push((t.firstResponseCreate ?? 0) - record.receivedAt);
      }
      p.realtime?.callerHangsUp(call.id);
    }
  } finally {
    await p.stop();
  }
  const row = (label: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    out(
      `| ${label} | ${fmt(percentile(sorted, 50), 0)} ms | ${fmt(percentile(sorted, 99), 0)} ms | ${fmt(sorted.at(-1) ?? Number.NaN, 0)} ms |`,
    );
  };
  out(
    'Sequential calls through the whole local path: ingress → SQS emulator → incoming-call handler (DynamoDB Local, `POST /accept` to the simulator) → signal queue → worker process (lease, WebSocket) → greeting. The simulator answers at once, so none of this is its think time; 5 warm-up calls are not counted.',
  );
  out();
  out('| step | p50 | p99 | max |');
  out('|---|---:|---:|---:|');
  row('webhook received → accept sent', steps.accept);
  row('  of which: queue wait before the incoming-call handler', steps.queue);
  row('accept sent → sideband open', steps.open);
  row('sideband open → greeting sent', steps.greeting);
  row('**webhook received → greeting sent**', steps.total);
  out();
  const p99 = percentile(
    [...steps.total].sort((a, b) => a - b),
    99,
  );
  out(
    `Target p99 ≤ 250 ms from webhook to greeting → ${p99 <= 250 ? 'met' : 'MISSED'} (${fmt(p99, 0)} ms).`,
  );
  out();
}

/**
 * Sideband density: one worker process holds N calls, each sending ≥ 10 events/s and calling a tool
 * every 30 s. Reports the tool round trip (function_call_arguments.done → function_call_output) and
 * the worker's RSS per call.
 */
/** Calls signalled at once while a density step fills (see the step's loop). */
const ATTACH_WAVE = 50;

export async function benchDensity(
  out: Out,
  sizes = [250, 500, 1000, 1500],
  seconds = Number(process.env.BENCH_DENSITY_SECONDS || 30),
  settleSeconds = Number(process.env.BENCH_DENSITY_SETTLE_SECONDS || 15),
): Promise<void> {
  out('## Sideband density (one worker process)');
  out();
  // The bench plays the model's side of each call only (transcript deltas and tool calls), so the
  // ghost-call guard (`noSpeechTimeoutMs`: no caller speech for 30 s → hang up) would end every
  // call half-way through a step; it is off here.
  const config = {
    ...localCallsConfig({ maxCallsPerTask: Math.max(...sizes) + 10 }),
    noSpeechTimeoutMs: 0,
  };
  const p = await LocalPipeline.start({ logLevel: 'error', calls: config, workers: 0 });
  // The tool Lambda runs in a process of its own, a separate service as in AWS, not a guest of the
  // busy process that plays OpenAI.
  const toolServer = await startNodeChild(path.join(import.meta.dirname, 'tool-lambda-server.ts'), {
    ready: (line) =>
      line.startsWith('{"port"') ? (JSON.parse(line) as { port: number }).port : undefined,
    exitedEarly: (code) => new Error(`tool Lambda server exited (${code})`),
  });
  const toolPort = toolServer.ready;
  const worker = await p.startWorker('density', {
    LOG_LEVEL: process.env.DENSITY_LOG_LEVEL ?? 'error',
    ...(process.env.DENSITY_LOG_LEVEL ? { ECHO_WORKER_LOGS: '1' } : {}),
    CALLS_CONFIG: JSON.stringify(config),
    PING_INTERVAL_MS: '25000',
    AWS_ENDPOINT_URL_LAMBDA: `http://127.0.0.1:${toolPort}`,
    // DynamoDB Local, on the same 2 cores, answers an attach storm of hundreds of calls in
    // seconds, not DynamoDB's milliseconds: the worker's 2 s request timeout would measure the
    // stand-in's throughput, not the worker.
    DYNAMODB_REQUEST_TIMEOUT_MS: '15000',
    ...(process.env.DENSITY_PROFILE ? { NODE_OPTIONS: '--cpu-prof --cpu-prof-dir=/tmp/prof' } : {}),
  });
  const documents = DynamoDBDocumentClient.from(p.dynamo);
  const rtt: number[] = [];
  const results: {
    n: number;
    p50: number;
    p99: number;
    rssMiB: number;
    perCallKiB: number;
    eventsPerSecond: number;
  }[] = [];
  const health = async () =>
    (await (await fetch(worker.healthUrl)).json()) as { activeCalls: number; rssBytes: number };
  const baseRss = (await health()).rssBytes;
  const held: string[] = [];
  try {
    for (const n of sizes) {
      // Attach calls straight through the signal queue: this measures the worker, not the webhook path.
      const fresh: string[] = [];
      while (held.length + fresh.length < n) {
        const call = p.realtime?.createCall();
        if (!call) throw new Error('no simulator');
        call.state = 'accepted';
        fresh.push(call.id);
      }
      for (let i = 0; i < fresh.length; i += 25) {
        const chunk = fresh.slice(i, i + 25);
        await documents.send(
          new BatchWriteCommand({
            RequestItems: {
              [p.tableName]: chunk.map((callId) => ({
                PutRequest: {
                  Item: {
                    ...keys.call(callId),
                    callId,
                    status: 'accepted',
                    eventId: `evt_${callId}`,
                    webhookId: `wh_${callId}`,
                    createdAt: Math.floor(Date.now() / 1000),
                    receivedAt: Date.now(),
                    acceptedAt: Date.now(),
                    sessionKey: 'default',
                    expiresAt: Math.floor(Date.now() / 1000) + 3600,
                  },
                },
              })),
            },
          }),
        );
      }
      // Signalled in waves of ATTACH_WAVE, each attached before the next: calls arrive spread over
      // time, and a storm of hundreds of attaches at once measures DynamoDB Local on these two
      // cores (it is call setup, measured above), not the worker's steady state.
      for (let wave = 0; wave < fresh.length; wave += ATTACH_WAVE) {
        const calls = fresh.slice(wave, wave + ATTACH_WAVE);
        for (let i = 0; i < calls.length; i += 10) {
          const chunk = calls.slice(i, i + 10);
          await p.sqs.send(
            new SendMessageBatchCommand({
              QueueUrl: p.signalQueue?.queueUrl,
              Entries: chunk.map((callId, j) => ({
                Id: String(j),
                MessageBody: JSON.stringify({
                  callId,
                  reason: 'sweep',
                  sessionKey: 'default',
                  sentAt: Date.now(),
                }),
              })),
            }),
          );
        }
        const target = held.length + wave + calls.length;
        await until(
          async () => {
            const { activeCalls } = await health();
            if (process.env.DENSITY_LOG_LEVEL)
              process.stderr.write(`attached ${activeCalls}/${target} of ${n}\n`);
            return activeCalls >= target ? true : undefined;
          },
          120_000,
          `${target} attached calls`,
        );
      }
      held.push(...fresh);
      // Attaching a step's calls at once is a storm of greetings and call-record writes that real
      // traffic spreads over minutes (call setup is measured on its own above); measure steady state.
      await sleep(settleSeconds * 1000);
      // Traffic: each call gets 10 events/s (deltas, as a talking call produces) and a tool call
      // every 30 s, staggered so tool calls spread evenly.
      rtt.length = 0;
      let events = 0;
      const started = Date.now();
      const pending = new Map<string, number>();
      const frame = Buffer.from(
        JSON.stringify({
          type: 'response.output_audio_transcript.delta',
          response_id: 'resp_load',
          item_id: 'item_load',
          delta: 'hello ',
        }),
      );
      // Independent calls do not talk in lockstep: each 10 ms slot serves a tenth of the calls, so
      // every call still gets one event per 100 ms without one burst of N frames at once.
      const slots = 10;
      let slot = 0;
      const tick = setInterval(() => {
        for (let i = slot; i < held.length; i += slots) p.realtime?.sendRaw(held[i] ?? '', frame);
        events += Math.ceil((held.length - slot) / slots);
        slot = (slot + 1) % slots;
      }, 100 / slots);
      const toolEveryMs = 30_000 / held.length;
      let next = 0;
      const tools = setInterval(() => {
        const due = Math.floor((Date.now() - started) / toolEveryMs);
        while (next < due) {
          const callId = held[next % held.length] ?? '';
          next++;
          const fn = p.realtime?.requestTool(callId, 'lookup_order', {
            order_number: String(next),
          });
          if (fn) pending.set(fn, Date.now());
        }
      }, 5);
      if (p.realtime) {
        p.realtime.onClientEvent = (c, event, at) => {
          c.received.length = 0;
          const fnCallId = event.item?.call_id;
          const sentAt = fnCallId ? pending.get(fnCallId) : undefined;
          if (sentAt !== undefined && event.item?.type === 'function_call_output') {
            rtt.push(at - sentAt);
            pending.delete(fnCallId);
          }
        };
      }
      await sleep(seconds * 1000);
      clearInterval(tick);
      clearInterval(tools);
      await sleep(500);
      const sorted = [...rtt].sort((a, b) => a - b);
      const rss = (await health()).rssBytes;
      results.push({
        n,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        rssMiB: rss / 2 ** 20,
        perCallKiB: (rss - baseRss) / 1024 / n,
        eventsPerSecond: events / ((Date.now() - started) / 1000),
      });
      process.stderr.write(
        `density ${n}: tool p99 ${fmt(percentile(sorted, 99), 1)} ms over ${sorted.length} tools, RSS ${fmt(rss / 2 ** 20, 0)} MiB\n`,
      );
    }
  } finally {
    // It exits once the worker's keep-alive connections close, when the pipeline stops it.
    const toolStopped = toolServer.stop();
    await p.stop();
    await toolStopped;
  }
  out(
    `Calls attach through the signal queue (DynamoDB Local, leases, a real WebSocket each), in waves of ${ATTACH_WAVE} signalled together, each attached before the next. Each step is measured from ${settleSeconds} s after its last call attached (the attach storm is call setup, measured above), for ${seconds} s: the simulator sends every call 10 events/s, spread evenly over each 100 ms rather than all calls in lockstep, and a tool call every 30 s (staggered); the tool is the demo Lambda behind the Lambda Invoke protocol in a process of its own (a separate service, as in AWS), and each tool call also makes its durable once-only claim in DynamoDB Local. Round trip: \`function_call_arguments.done\` sent → \`function_call_output\` received, at the simulator.`,
  );
  out();
  out(
    '| concurrent calls | events/s into the worker | tool calls | tool RTT p50 | tool RTT p99 | worker RSS | RSS per call |',
  );
  out('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results)
    out(
      `| ${r.n} | ${fmt(r.eventsPerSecond, 0)} | ${Math.round((r.n * seconds) / 30)} | ${fmt(r.p50, 1)} ms | ${fmt(r.p99, 1)} ms | ${fmt(r.rssMiB, 0)} MiB | ${fmt(r.perCallKiB, 0)} KiB |`,
    );
  out();
  const best = results.filter((r) => r.p99 <= 25).at(-1);
  out(
    `Largest N with tool RTT p99 ≤ 25 ms: **${best ? best.n : 'none of those tried'}**${best ? ` at ${fmt(best.rssMiB, 0)} MiB RSS` : ''}. Target: ≥ 1000 calls within 512 MiB → ${best && best.n >= 1000 && best.rssMiB <= 512 ? 'met' : 'MISSED'}.`,
  );
  out();
}
