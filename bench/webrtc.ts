import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { CallRecord } from '#core/ports/calls';
import { keys } from '#core/table-schema';
import { localCallsConfig } from '../local/calls';
import { LocalPipeline } from '../local/pipeline';
import { SAMPLE_OFFER } from '../local/send-webrtc';
import { startSessionEndpoint } from '../local/session-endpoint';
import { fmt, percentile } from './stats';

type Out = (line?: string) => void;

/**
 * The WebRTC session endpoint in local mode (the session Lambda's code on loopback): what it adds
 * to OpenAI's own time, and how long after the answer the sideband is attached. Sequential
 * sessions; the first `warmUp` are not counted (connections, JIT, the key's first read).
 */
export async function benchWebRtc(out: Out, sessions = 60, warmUp = 5): Promise<void> {
  out(`## WebRTC session endpoint (local mode, ${sessions} sessions)`);
  out();
  const p = await LocalPipeline.start({
    logLevel: 'error',
    calls: localCallsConfig(),
    workers: 1,
    workerEnv: { LOG_LEVEL: 'error' },
  });
  const documents = DynamoDBDocumentClient.from(p.dynamo);
  const timings = new Map<string, { totalMs: number; openAiMs: number }>();
  const endpoint = await startSessionEndpoint(p, {
    maxConcurrentSessions: 1000,
    onTimings: (callId, t) => {
      if (callId) timings.set(callId, t);
    },
  });
  const added: number[] = [];
  const upstream: number[] = [];
  const client: number[] = [];
  const toAttached: number[] = [];
  let coldAdded = Number.NaN;
  try {
    for (let i = 0; i < sessions + warmUp; i++) {
      const sentAt = Date.now();
      const response = await fetch(`${endpoint.url}/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp' },
        body: SAMPLE_OFFER,
      });
      await response.text();
      const answeredAt = Date.now();
      if (response.status !== 201) throw new Error(`session ${i}: ${response.status}`);
      const callId = response.headers.get('x-call-id') ?? '';
      let record: CallRecord | undefined;
      const deadline = Date.now() + 15_000;
      while (!record?.attachedAt) {
        if (Date.now() > deadline) throw new Error(`session ${i}: not attached`);
        await new Promise((resolve) => setTimeout(resolve, 10));
        record = (
          await documents.send(
            new GetCommand({
              TableName: p.tableName,
              Key: keys.call(callId),
              ConsistentRead: true,
            }),
          )
        ).Item as CallRecord | undefined;
      }
      const t = timings.get(callId);
      const sim = p.realtime?.webRtc.timings.get(callId);
      if (!t || !sim) throw new Error(`session ${i}: no timings`);
      const simulatorMs = sim.answeredAt - sim.receivedAt;
      if (i === 0) coldAdded = t.totalMs - simulatorMs;
      if (i >= warmUp) {
        added.push(t.totalMs - simulatorMs);
        upstream.push(t.openAiMs - simulatorMs);
        client.push(answeredAt - sentAt);
        // attachedAt is the worker's clock; answeredAt the client's: one machine, one clock.
        toAttached.push(record.attachedAt - answeredAt);
      }
      p.realtime?.callerHangsUp(callId);
    }
  } finally {
    await p.stop();
  }
  const row = (label: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    out(
      `| ${label} | ${fmt(percentile(sorted, 50), 0)} ms | ${fmt(percentile(sorted, 95), 0)} ms | ${fmt(percentile(sorted, 99), 0)} ms | ${fmt(sorted.at(-1) ?? Number.NaN, 0)} ms |`,
    );
  };
  out(
    'Sequential browser sessions: `POST /session` (a Chrome-shaped offer) → profile, per-IP and capacity checks (DynamoDB Local) → `POST /v1/realtime/calls` to the simulator (multipart sdp + session) → call record, capacity slot, signal (SQS emulator) → 201 with the SDP answer; then the worker process takes the signal and opens the sideband. "Added" is the endpoint\'s own time: offer in → answer out, minus the simulator\'s time inside `POST /v1/realtime/calls`.',
  );
  out();
  out('| step | p50 | p95 | p99 | max |');
  out('|---|---:|---:|---:|---:|');
  row('**added by the endpoint** (offer in → answer out − simulator time)', added);
  row('  of which: the upstream hop (multipart request and answer, loopback)', upstream);
  row('offer sent → answer received, at the client', client);
  row('**answer → sideband attached**', toAttached);
  out();
  out(
    `The first session (cold: the key's first Secrets Manager read, first connections) added ${fmt(coldAdded, 0)} ms; ${warmUp} warm-up sessions are not counted.`,
  );
  out();
}
