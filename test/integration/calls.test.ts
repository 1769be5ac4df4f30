import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SessionConfig } from '#core/calls/session-config';
import { keys } from '#core/table-schema';
import type { WireEvent } from '#core/wire';
import { localCallsConfig, lookupOrder } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { type LatencyProxy, startLatencyProxy } from '../../local/stand-ins/latency-proxy';
import type { AttachFault, SimulatedCall } from '../../local/stand-ins/realtime-simulator';
import {
  callParts,
  callRecord,
  documents,
  ring,
  waitForSent,
  waitForStatus,
} from '../support/calls';
import { eventually, holdsFor, post, signedDelivery, startPipeline } from '../support/webhooks';

// Fast leases and sweeps so hand-off and crash tests finish in seconds.
const FAST_WORKERS = {
  LOG_LEVEL: 'info',
  LEASE_TTL_MS: '4000',
  LEASE_RENEWAL_MS: '500',
  // The clock skew the leases tolerate: a worker not confirmed for 4000 - 1500 ms stops acting.
  MAX_CLOCK_SKEW_MS: '1500',
  SWEEP_INTERVAL_MS: '500',
  SIGNAL_WAIT_SECONDS: '1',
  PING_INTERVAL_MS: '1000',
};
/** Slow, but within its timeout: still running when its worker is told to stop. */
const SLOW_LOOKUP = {
  name: 'slow_lookup',
  description: 'Takes a while.',
  parameters: { type: 'object', properties: { q: { type: 'string' } } },
  functionName: 'slow-lookup',
  timeoutMs: 5000,
};
const SLOW_TOOL = {
  name: 'slow_tool',
  description: 'Takes too long.',
  parameters: { type: 'object', properties: {} },
  functionName: 'slow-tool',
  timeoutMs: 300,
};

/** Configured, but in no session: a call may not run it. */
const ADMIN_TOOL = {
  name: 'admin_tool',
  description: 'Not for callers.',
  parameters: { type: 'object', properties: {} },
  functionName: 'admin-tool',
  timeoutMs: 300,
};
/** Dialled, this number gets a session with a DTMF map. */
const DTMF_NUMBER = '+18005550199';

/**
 * OpenAI rings us with a call whose sideband plays a named simulator scenario
 * (local/stand-ins/realtime-scenarios.ts), dialled to `to`.
 */
async function ringScenario(p: LocalPipeline, scenario: string, options: { to?: string } = {}) {
  const realtime = p.realtime;
  if (!realtime) throw new Error('The pipeline has no calls.');
  const call = realtime.createCall({ scenario, ...(options.to ? { to: options.to } : {}) });
  const event = sampleEvent('realtime.call.incoming', {
    objectId: call.id,
    sipHeaders: call.sipHeaders,
  });
  const response = await post(
    p.url,
    signedDelivery(p.webhookSecret, event, { webhookId: `wh_${event.id.slice(4)}` }),
  );
  expect(response.status).toBe(200);
  return call;
}

/** Waits for the scenario's call to end on OpenAI's side, then for the record to end. */
async function playedOut(p: LocalPipeline, call: SimulatedCall, timeoutMs = 15_000) {
  await eventually(
    async () => (call.state === 'ended' ? true : undefined),
    timeoutMs,
    `the ${call.scenario} scenario to end`,
  );
  return waitForStatus(p, call.id, ['ended']);
}

/** What the simulator saw the worker do that a correct worker would not have. */
function warnings(call: SimulatedCall): string[] {
  return call.facts.filter((f) => f.warn).map((f) => `${f.kind}: ${f.text}`);
}

const pipelines: LocalPipeline[] = [];
afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.stop()));
});
async function pipeline(options: Parameters<typeof startPipeline>[0]) {
  const p = await startPipeline(options);
  pipelines.push(p);
  return p;
}

describe('phone calls on one worker', () => {
  let p: LocalPipeline;
  const toolPayloads: WireEvent[] = [];
  beforeAll(async () => {
    const config = localCallsConfig({
      tools: [...localCallsConfig().tools, SLOW_TOOL, ADMIN_TOOL],
      transferConfirmMs: 800,
    });
    const defaultSession = config.policy.sessions.default as SessionConfig;
    const session: SessionConfig = { ...defaultSession, tools: ['lookup_order', 'slow_tool'] };
    p = await pipeline({
      calls: {
        ...config,
        policy: {
          ...config.policy,
          sessions: {
            default: session,
            [DTMF_NUMBER]: {
              ...session,
              dtmf: { '#': { action: 'hangup' }, '0': { action: 'transfer', target: 'support' } },
            },
          },
        },
      },
      workers: 1,
      workerEnv: FAST_WORKERS,
    });
    p.aws.functions.set(
      'slow-tool',
      () => new Promise((resolve) => setTimeout(() => resolve({ late: true }), 2000)),
    );
    p.aws.functions.set('admin-tool', async () => ({ secret: true }));
    // The demo tool, keeping what each call passed it.
    p.aws.functions.set('lookup-order', async (payload: unknown) => {
      toolPayloads.push(payload as WireEvent);
      return lookupOrder(payload);
    });
  });

  it('accepts, attaches, greets, runs a tool, and records the end when the caller hangs up (1006)', async () => {
    const { call, responses } = await ring(p);
    expect(responses[0]?.status).toBe(200);
    const active = await waitForStatus(p, call.id, ['active']);
    expect(active).toMatchObject({
      from: '+14155550123',
      to: '+18005550100',
      sessionKey: 'default',
      owner: 'worker-1',
      acceptedAt: expect.any(Number),
      attachedAt: expect.any(Number),
    });
    expect(call.accepts).toBe(1);
    const body = call.acceptBody as WireEvent;
    expect(body).toMatchObject({
      type: 'realtime',
      model: 'gpt-realtime-2.1',
      audio: {
        output: { voice: 'marin' },
        input: { transcription: { model: 'gpt-live-transcribe' } },
      },
    });
    expect(body.audio.input.format).toBeUndefined();
    expect(body.tools.map((t: { name: string }) => t.name)).toEqual([
      'lookup_order',
      'slow_tool',
      'end_call',
      'transfer_call',
    ]);

    const greeting = await waitForSent(call, 'response.create');
    expect(greeting[0]?.event.response?.instructions).toContain('Greet the caller');

    p.realtime?.callerSays(call.id, 'Where is my order 1234? Call me on +44 20 7946 0958.');
    const fnCallId =
      p.realtime?.requestTool(call.id, 'lookup_order', { order_number: '1234' }) ?? '';
    const outputs = await waitForSent(call, 'conversation.item.create');
    expect(outputs[0]?.event.item).toMatchObject({
      type: 'function_call_output',
      call_id: fnCallId,
    });
    expect(JSON.parse(outputs[0]?.event.item.output)).toEqual({
      order_number: '1234',
      status: 'shipped',
      eta: 'tomorrow',
    });

    p.realtime?.callerHangsUp(call.id);
    const ended = await waitForStatus(p, call.id, ['ended']);
    expect(ended).toMatchObject({
      endReason: 'caller_hung_up',
      holdsCapacity: false,
      endedAt: expect.any(Number),
    });
    const parts = await eventually(async () => {
      const found = await callParts(p, call.id);
      return found.some((x) => x.kind === 'tool' && x.output) &&
        found.some((x) => x.name === 'ended')
        ? found
        : undefined;
    });
    const transcripts = parts.filter((x) => x.kind === 'transcript');
    expect(transcripts.map((x) => x.role)).toEqual(expect.arrayContaining(['caller', 'assistant']));
    expect(parts.find((x) => x.kind === 'tool')).toMatchObject({
      name: 'lookup_order',
      latencyMs: expect.any(Number),
      status: 'done',
    });
    // Running totals are summed in the worker and written once per flush: they must still equal
    // the sum of every response's usage.
    const usages = parts.filter((x) => x.kind === 'usage');
    expect(usages.length).toBeGreaterThan(1);
    const sum = (field: string) =>
      usages.reduce(
        (total, x) => total + Number((x.usage as Record<string, number>)[field] ?? 0),
        0,
      );
    expect(sum('total_tokens')).toBeGreaterThan(0);
    expect(await callRecord(p, call.id)).toMatchObject({
      totalTokens: sum('total_tokens'),
      inputTokens: sum('input_tokens'),
      outputTokens: sum('output_tokens'),
      responses: usages.length,
    });
    // Each usage keeps its token details, and the record sums them by kind (the simulator's usage
    // has them, as realtime.d.ts RealtimeResponseUsage does).
    const detail = (side: string, field: string) =>
      usages.reduce((total, x) => {
        const usage = x.usage as Record<string, Record<string, unknown> | undefined>;
        return total + Number(usage[side]?.[field] ?? 0);
      }, 0);
    expect(detail('input_token_details', 'audio_tokens')).toBeGreaterThan(0);
    expect(await callRecord(p, call.id)).toMatchObject({
      inputTextTokens: detail('input_token_details', 'text_tokens'),
      inputAudioTokens: detail('input_token_details', 'audio_tokens'),
      cachedTokens: detail('input_token_details', 'cached_tokens'),
      outputTextTokens: detail('output_token_details', 'text_tokens'),
      outputAudioTokens: detail('output_token_details', 'audio_tokens'),
    });
    // The tool had the function call id to deduplicate on.
    expect(toolPayloads.find((x) => x.call?.fnCallId === fnCallId)?.call).toMatchObject({
      callId: call.id,
      fnCallId,
    });
  });

  it('gives a call delivered three times one accept and one sideband', async () => {
    const { call, responses } = await ring(p, { deliveries: 3 });
    expect(responses.filter((r) => r.status === 200)).not.toHaveLength(0);
    await waitForStatus(p, call.id, ['active']);
    // Proves that no second accept or sideband follows. Every delivery has been answered, so a
    // duplicate could only still be on its way through the queues: 1.5 s covers the SQS emulator's
    // poll, the consumer, a signal and a worker's attach many times over.
    await holdsFor(
      () => call.accepts === 1 && call.connections === 1 && call.rejects === 0,
      1500,
      'one accept and one sideband',
    );
    expect(call.accepts).toBe(1);
    expect(call.connections).toBe(1);
    expect(call.rejects).toBe(0);
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('retries /accept once on a 5xx; after a second one lets the sideband tell, and a 4xx fails the call', async () => {
    p.simulator?.failNext('/v1/realtime/calls/', 502, 1);
    const retried = (await ring(p)).call;
    await waitForStatus(p, retried.id, ['active']);
    expect(retried.accepts).toBe(1);
    p.realtime?.callerHangsUp(retried.id);

    // Two 5xx: the accept may have reached OpenAI, so the worker is signalled and the slot kept;
    // the sideband's 404 then says the call never lived.
    p.simulator?.failNext('/v1/realtime/calls/', 500, 2);
    const uncertain = (await ring(p)).call;
    expect(await waitForStatus(p, uncertain.id, ['ended'])).toMatchObject({
      endReason: 'gone',
      holdsCapacity: false,
    });
    expect(uncertain.accepts).toBe(0);
    expect(uncertain.connections).toBe(0);

    // A definite refusal ends the call at once, with its slot given back.
    p.simulator?.failNext('/v1/realtime/calls/', 400, 1);
    const refused = (await ring(p)).call;
    expect(await waitForStatus(p, refused.id, ['ended'])).toMatchObject({
      endReason: 'accept_failed',
      holdsCapacity: false,
    });
    expect(refused.accepts).toBe(0);
  });

  it('does not accept a stale call, and records it as missed', async () => {
    const { call } = await ring(p, { createdAt: Math.floor(Date.now() / 1000) - 120 });
    const missed = await waitForStatus(p, call.id, ['missed']);
    expect(missed.rejectReason).toBe('stale');
    expect(call.accepts).toBe(0);
  });

  it('treats a 404 on accept as a call that is gone, with no sideband', async () => {
    const ringing = p.realtime?.createCall();
    if (!ringing) throw new Error('no simulator');
    ringing.state = 'ended';
    p.realtime?.calls.delete(ringing.id);
    const { call } = await ring(p);
    p.realtime?.calls.delete(call.id);
    const ended = await waitForStatus(p, call.id, ['ended']);
    expect(ended).toMatchObject({ endReason: 'gone_before_accept', holdsCapacity: false });
    expect(call.connections).toBe(0);
  });

  it('runs each tool call once, and waits out an active response before asking for another', async () => {
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    await waitForSent(call, 'response.create');
    await eventually(async () => (call.activeResponses > 0 ? undefined : true));
    const before = p.realtime?.sent(call.id, 'response.create').length ?? 0;
    const fnCallId = p.realtime?.requestTool(call.id, 'lookup_order', { order_number: '77' }) ?? '';
    // The caller speaks over it: a VAD response starts before the worker asks for its own.
    p.realtime?.startHiddenResponse(call.id, 300);
    await waitForSent(call, 'conversation.item.create');
    // OpenAI repeats the event: the tool must not run twice.
    p.realtime?.resend(call.id, {
      type: 'response.function_call_arguments.done',
      call_id: fnCallId,
      name: 'lookup_order',
      arguments: '{"order_number":"77"}',
    });
    await eventually(async () =>
      (p.realtime?.sent(call.id, 'response.create').length ?? 0) >= before + 2 ? true : undefined,
    );
    expect(call.conflicts).toBeGreaterThanOrEqual(1);
    // Proves that the repeated event runs nothing: a second run would show as a second output
    // within a durable claim and a local tool invoke (milliseconds each), so 300 ms is ample.
    await holdsFor(
      () => p.realtime?.sent(call.id, 'conversation.item.create').length === 1,
      300,
      'a single function_call_output',
    );
    expect(p.realtime?.sent(call.id, 'conversation.item.create')).toHaveLength(1);
    expect(
      p.aws.calls.filter((c) => c.target === 'lambda.Invoke:lookup-order').length,
    ).toBeGreaterThanOrEqual(1);
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('returns a user tool timeout to the model as the tool output, and the call goes on', async () => {
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    const fnCallId = p.realtime?.requestTool(call.id, 'slow_tool', {}) ?? '';
    const [output] = await waitForSent(call, 'conversation.item.create');
    expect(output?.event.item.call_id).toBe(fnCallId);
    expect(JSON.parse(output?.event.item.output)).toEqual({
      error: { code: 'timeout', message: expect.stringContaining('300 ms') },
    });
    expect((await callRecord(p, call.id))?.status).toBe('active');
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('ends the call on session_expired (1001)', async () => {
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    p.realtime?.expireSession(call.id);
    expect(await waitForStatus(p, call.id, ['ended'])).toMatchObject({
      endReason: 'session_expired',
    });
  });

  it('hangs up through /hangup when the model calls end_call', async () => {
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    p.realtime?.requestTool(call.id, 'end_call', { reason: 'done' });
    expect(await waitForStatus(p, call.id, ['ended'])).toMatchObject({
      endReason: 'hung_up_by_agent',
    });
    expect(call.hangups).toBe(1);
  });

  it('confirms a transfer when the socket closes, and reports one that never happens', async () => {
    const good = (await ring(p)).call;
    await waitForStatus(p, good.id, ['active']);
    p.realtime?.requestTool(good.id, 'transfer_call', { target: 'support' });
    expect(await waitForStatus(p, good.id, ['ended'])).toMatchObject({
      endReason: 'transferred',
      transferStatus: 'confirmed',
      transferTarget: 'support',
    });
    expect(good.referTarget).toBe('sip:support@example.com');

    const bad = (await ring(p)).call;
    await waitForStatus(p, bad.id, ['active']);
    p.realtime?.requestTool(bad.id, 'transfer_call', { target: 'broken' });
    const failed = await eventually(async () => {
      const record = await callRecord(p, bad.id);
      return record?.transferStatus === 'failed' ? record : undefined;
    });
    expect(failed.status).toBe('active');
    // A failed transfer is a metric (EMF on the worker's stdout), and so is a confirmed one.
    const emf = (name: string) =>
      eventually(async () =>
        p.workers.some((w) =>
          w.logs.some((l) => l.includes('"CloudWatchMetrics"') && l.includes(`"${name}":1`)),
        )
          ? true
          : undefined,
      );
    await emf('TransfersFailed');
    await emf('TransfersConfirmed');
    // The model is told, and asked to speak.
    await eventually(async () =>
      bad.received.some(
        (r) =>
          r.event.item?.role === 'system' &&
          JSON.stringify(r.event.item).includes('did not go through'),
      )
        ? true
        : undefined,
    );

    const refused = (await ring(p)).call;
    await waitForStatus(p, refused.id, ['active']);
    const fn =
      p.realtime?.requestTool(refused.id, 'transfer_call', {
        target: 'sip:attacker@evil.example',
      }) ?? '';
    const [output] = await waitForSent(refused, 'conversation.item.create');
    expect(output?.event.item).toMatchObject({ call_id: fn });
    expect(JSON.parse(output?.event.item.output)).toMatchObject({ ok: false });
    expect(refused.referTarget).toBeUndefined();
    for (const c of [bad, refused]) p.realtime?.callerHangsUp(c.id);
  });

  it('rejects a denied caller with the configured status', async () => {
    const { call } = await ring(p, { from: '+19005551234' });
    expect(await waitForStatus(p, call.id, ['rejected'])).toMatchObject({
      rejectReason: 'denied',
      rejectStatus: 603,
    });
    expect(call.rejectStatus).toBe(603);
    expect(call.accepts).toBe(0);
  });

  it.each([
    ['interrupted-end-call', 'end_call'],
    ['interrupted-transfer', 'transfer_call'],
    ['interrupted-tool', 'lookup_order'],
  ])('never acts on a function call the caller interrupted (%s)', async (scenario, name) => {
    const call = await ringScenario(p, scenario);
    const ended = await playedOut(p, call);
    // Neither /hangup nor /refer: the caller hung up, at the end of the scenario.
    expect(ended.endReason).toBe('caller_hung_up');
    expect(call.hangups).toBe(0);
    expect(call.referTarget).toBeUndefined();
    expect(warnings(call)).toEqual([]);
    const interrupted = call.functionCalls.filter((f) => f.status === 'incomplete');
    expect(interrupted.map((f) => [f.name, f.outputs])).toEqual([[name, 0]]);
    // A later call that completed runs (interrupted-tool asks again for another order).
    for (const f of call.functionCalls.filter((x) => x.status === 'completed'))
      expect(f.outputs).toBe(1);
    const parts = await eventually(async () => {
      const found = await callParts(p, call.id);
      return found.some((x) => x.name === 'ended') ? found : undefined;
    });
    expect(parts.find((x) => x.name === 'tool_call_skipped')?.detail).toMatchObject({
      fnCallId: interrupted[0]?.callId,
      name,
      status: 'incomplete',
    });
  });

  it.each([
    ['goodbye', 'hung_up_by_agent'],
    ['goodbye-transfer', 'transferred'],
  ])('lets the last words play before /hangup or /refer (%s)', async (scenario, endReason) => {
    const call = await ringScenario(p, scenario);
    const ended = await playedOut(p, call);
    expect(ended.endReason).toBe(endReason);
    // Nothing cut off: /hangup or /refer came after output_audio_buffer.stopped.
    expect(call.cutOffs).toEqual([]);
    expect(warnings(call)).toEqual([]);
    const stopped = call.log.find(
      (e) =>
        e.dir === 'out' &&
        e.type === 'output_audio_buffer.stopped' &&
        e.at > (call.timeline.attached ?? 0) + 100,
    );
    const acted = call.log.find((e) => e.dir === 'api' && /POST \/(hangup|refer)/.test(e.type));
    expect(stopped && acted && acted.at >= stopped.at).toBe(true);
  });

  it.each([
    ['rotation', 1001],
    ['rotation-1000', 1000],
  ])(
    'reattaches once after a clean close it did not cause (%s), and the call goes on',
    async (scenario, code) => {
      const call = await ringScenario(p, scenario);
      const ended = await playedOut(p, call);
      expect(ended).toMatchObject({ endReason: 'caller_hung_up', reattaches: 1 });
      expect(call.connections).toBe(2);
      expect(warnings(call)).toEqual([]);
      const parts = await eventually(async () => {
        const found = await callParts(p, call.id);
        return found.some((x) => x.name === 'ended') ? found : undefined;
      });
      expect(parts.find((x) => x.name === 'reattached')?.detail).toEqual({ code, reattaches: 1 });
      // Both sides of the conversation, across the two sockets, under the one record.
      expect(parts.filter((x) => x.kind === 'transcript' && x.role === 'caller')).toHaveLength(2);
      // One greeting only.
      expect(
        p.realtime?.sent(call.id, 'response.create').filter((e) => e.response?.instructions),
      ).toHaveLength(1);
    },
  );

  it('plays the reference call: greeting, one completed tool call answered, caller hangs up (happy)', async () => {
    const call = await ringScenario(p, 'happy');
    const ended = await playedOut(p, call);
    expect(ended.endReason).toBe('caller_hung_up');
    expect(warnings(call)).toEqual([]);
    expect(call.functionCalls.map((f) => [f.name, f.status, f.outputs])).toEqual([
      ['lookup_order', 'completed', 1],
    ]);
    expect(call.hangups).toBe(0);
  });

  it('never runs the tool call of a response the caller talked over, and goes on (barge-in)', async () => {
    const call = await ringScenario(p, 'barge-in');
    const ended = await playedOut(p, call);
    expect(ended.endReason).toBe('caller_hung_up');
    expect(warnings(call)).toEqual([]);
    // The cancelled lookup_order got no output; arguments.done still arrived for it.
    expect(call.functionCalls.map((f) => [f.name, f.status, f.outputs])).toEqual([
      ['lookup_order', 'incomplete', 0],
    ]);
    const parts = await eventually(async () => {
      const found = await callParts(p, call.id);
      return found.some((x) => x.name === 'ended') ? found : undefined;
    });
    expect(parts.filter((x) => x.name === 'tool_call_skipped')).toHaveLength(1);
    expect(parts.some((x) => x.kind === 'tool')).toBe(false);
    // The greeting the caller talked over is on the record as cut off, by its response: the
    // transcript holds what the model generated, more than the caller heard.
    const cut = parts.filter((x) => x.name === 'assistant_cut_off');
    const greeting = parts.find((x) => x.kind === 'transcript' && x.role === 'assistant');
    expect(cut.map((x) => x.detail.responseId)).toContain(greeting?.responseId);
    expect(cut.every((x) => ['interrupted', 'turn_detected'].includes(x.detail.reason))).toBe(true);
  });

  it('ignores frames that are not events, and plays the call as usual (junk)', async () => {
    const call = await ringScenario(p, 'junk');
    const ended = await playedOut(p, call);
    expect(ended.endReason).toBe('caller_hung_up');
    expect(warnings(call)).toEqual([]);
    expect(call.functionCalls.map((f) => f.outputs)).toEqual([1]);
    const worker = p.workers[0];
    expect(worker?.logs.some((l) => l.includes('ignored a frame that is not an event'))).toBe(true);
    expect(worker?.child.exitCode).toBeNull();
    expect((await fetch(worker?.healthUrl ?? '')).status).toBe(200);
  });

  it('records keypad keys, and acts on the session DTMF map', async () => {
    const keys = async (callId: string) =>
      (await callParts(p, callId))
        .filter((x) => x.name === 'dtmf')
        .sort((a, b) => a.at - b.at || String(a.sk).localeCompare(String(b.sk)))
        .map((x) => x.detail.key)
        .join('');
    const plain = await ringScenario(p, 'dtmf');
    expect((await playedOut(p, plain)).endReason).toBe('caller_hung_up');
    expect(await keys(plain.id)).toBe('1234#*0');
    // With the map, # hangs up.
    const mapped = await ringScenario(p, 'dtmf', { to: DTMF_NUMBER });
    expect((await playedOut(p, mapped)).endReason).toBe('hung_up_by_agent');
    expect(mapped.hangups).toBe(1);
    expect(await keys(mapped.id)).toBe('1234#');
    const hangup = (await callParts(p, mapped.id)).find((x) => x.name === 'hangup');
    expect(hangup?.detail).toEqual({ why: 'dtmf' });
  });

  it('stores transcripts in conversation order, though the caller’s arrived after the answer (late-transcript)', async () => {
    const call = await ringScenario(p, 'late-transcript');
    await playedOut(p, call);
    const parts = await eventually(async () => {
      const found = await callParts(p, call.id);
      return found.some((x) => x.name === 'ended') ? found : undefined;
    });
    const lines = parts.filter((x) => x.kind === 'transcript');
    const caller = lines.find((x) => x.role === 'caller');
    const answer = lines.find((x) => String(x.text).startsWith('We are open'));
    expect(caller?.text).toBe('What are your opening hours?');
    // Arrived later, placed earlier.
    expect(caller?.at).toBeGreaterThanOrEqual(answer?.at);
    expect(caller?.order).toBeLessThan(answer?.order);
  });

  it('runs only the tools of the call’s session', async () => {
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    const fnCallId = p.realtime?.requestTool(call.id, 'admin_tool', {}) ?? '';
    const [output] = await waitForSent(call, 'conversation.item.create');
    expect(output?.event.item.call_id).toBe(fnCallId);
    expect(JSON.parse(output?.event.item.output).error.code).toBe('unknown_tool');
    expect(p.aws.calls.some((c) => c.target === 'lambda.Invoke:admin-tool')).toBe(false);
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('reports readiness and active calls on /healthz', async () => {
    const worker = p.workers[0];
    const health = (await (await fetch(worker?.healthUrl ?? '')).json()) as Record<string, unknown>;
    expect(health).toMatchObject({
      ready: true,
      activeCalls: expect.any(Number),
      capacity: 200,
      owner: 'worker-1',
    });
  });
});

describe('timers', () => {
  it('asks the model to wrap up before the session cap, then hangs up', async () => {
    const p = await pipeline({
      calls: localCallsConfig({ wrapUpAfterMs: 800, wrapUpGraceMs: 400 }),
      workers: 1,
      workerEnv: FAST_WORKERS,
    });
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    const ended = await waitForStatus(p, call.id, ['ended']);
    expect(ended.endReason).toBe('hung_up_by_agent');
    expect(call.hangups).toBe(1);
    const wrapUp = p.realtime
      ?.sent(call.id, 'response.create')
      .find((e) => String(e.response?.instructions).includes('wrap up'));
    expect(wrapUp).toBeDefined();
    expect((await callParts(p, call.id)).some((x) => x.name === 'wrap_up')).toBe(true);
  });

  it('terminates a peer that stops answering pings, and records why', async () => {
    const p = await pipeline({
      calls: localCallsConfig(),
      workers: 1,
      workerEnv: { ...FAST_WORKERS, PING_INTERVAL_MS: '300' },
    });
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    p.realtime?.goSilent(call.id);
    expect(await waitForStatus(p, call.id, ['ended'])).toMatchObject({
      endReason: 'keepalive_timeout',
    });
  });
});

describe('ghost calls', () => {
  it('hangs up a call in which nobody ever speaks, as no_caller_speech (ghost)', async () => {
    const p = await pipeline({
      // The shortest no-speech timeout the config takes; the simulator's server gives up at 15 s.
      calls: localCallsConfig({ noSpeechTimeoutMs: 5000 }),
      workers: 1,
      workerEnv: FAST_WORKERS,
    });
    const call = await ringScenario(p, 'ghost');
    const ended = await playedOut(p, call, 12_000);
    expect(ended.endReason).toBe('no_caller_speech');
    expect(call.hangups).toBe(1);
    expect(warnings(call)).toEqual([]);
    const parts = await callParts(p, call.id);
    expect(parts.find((x) => x.name === 'hangup')?.detail).toEqual({ why: 'no_caller_speech' });
  });
});

describe('silent callers', () => {
  it('ends a call after server idle timeouts in a row with no speech, as no_caller_speech (silent-caller)', async () => {
    const base = localCallsConfig({ idleTimeoutsBeforeHangup: 2 });
    const session = base.policy.sessions.default as SessionConfig;
    const p = await pipeline({
      calls: {
        ...base,
        policy: {
          ...base.policy,
          sessions: {
            default: {
              ...session,
              turnDetection: { type: 'server_vad', idle_timeout_ms: 5000 },
            },
          },
        },
      },
      workers: 1,
      workerEnv: FAST_WORKERS,
      // 5 s idle timeouts (the spec's minimum) played at a tenth of the time.
      realtime: { idleTimeoutScale: 0.1 },
    });
    const call = await ringScenario(p, 'silent-caller');
    const ended = await playedOut(p, call);
    expect(call.acceptBody).toMatchObject({
      audio: { input: { turn_detection: { type: 'server_vad', idle_timeout_ms: 5000 } } },
    });
    expect(call.idleTimeouts).toBe(2);
    expect(ended).toMatchObject({ endReason: 'no_caller_speech', idleTimeouts: 2 });
    expect(call.hangups).toBe(1);
    const parts = await callParts(p, call.id);
    expect(parts.filter((x) => x.name === 'idle_timeout')).toHaveLength(2);
    expect(parts.find((x) => x.name === 'hangup')?.detail).toEqual({ why: 'no_caller_speech' });
  });
});

describe('zero-drop deploys and crashes', () => {
  let p: LocalPipeline;
  let started = 0;
  beforeAll(async () => {
    const base = localCallsConfig({ tools: [...localCallsConfig().tools, SLOW_LOOKUP] });
    const defaultSession = base.policy.sessions.default as SessionConfig;
    p = await pipeline({
      calls: {
        ...base,
        policy: {
          ...base.policy,
          sessions: { default: { ...defaultSession, tools: ['lookup_order', 'slow_lookup'] } },
        },
      },
      workers: 0,
      workerEnv: FAST_WORKERS,
    });
    p.aws.functions.set(
      'slow-lookup',
      (payload: unknown) =>
        new Promise((resolve) =>
          setTimeout(
            () => resolve({ found: (payload as { arguments?: unknown }).arguments }),
            1500,
          ),
        ),
    );
  });
  // On a failure, show what the workers said (their logs are kept in memory, not printed).
  afterEach((context) => {
    if (context.task.result?.state !== 'fail') return;
    for (const w of p.workers)
      process.stderr.write(
        `--- ${w.id}\n${w.logs
          .filter((l) => !l.includes('"tool call"'))
          .slice(-40)
          .join('\n')}\n`,
      );
  });
  // Each test starts with two live workers, whatever the previous test left.
  beforeEach(async () => {
    while (
      p.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).length < 2
    ) {
      await p.startWorker(`worker-${++started}-${Math.random().toString(36).slice(2, 6)}`);
    }
  });

  it('hands a call to another worker on SIGTERM, with no call lost', async () => {
    const { call } = await ring(p);
    const first = await waitForStatus(p, call.id, ['active']);
    const owner = p.workers.find((w) => w.id === first.owner);
    const other = p.workers.find((w) => w.id !== first.owner);
    expect(owner && other).toBeTruthy();
    const exitCode = await owner?.stop();
    expect(exitCode).toBe(0);
    // Its last lines may still be on their way through the pipe when it exits.
    await eventually(
      async () =>
        owner?.logs.some(
          (l) => l.includes('"Handoffs":1') && l.includes('"Namespace":"OpenAiWebhooks"'),
        )
          ? true
          : undefined,
      5000,
      'the Handoffs metric',
    );
    const reattached = await eventually(
      async () => {
        const record = await callRecord(p, call.id);
        return record?.owner === other?.id && call.sockets.size === 1 ? record : undefined;
      },
      10_000,
      'the reattach',
    );
    expect(reattached.status).toBe('active');
    expect(call.connections).toBe(2);
    expect(call.state).toBe('accepted');
    // Only the first attach greets.
    expect(
      p.realtime?.sent(call.id, 'response.create').filter((e) => e.response?.instructions),
    ).toHaveLength(1);
    p.realtime?.callerHangsUp(call.id);
    expect(await waitForStatus(p, call.id, ['ended'])).toMatchObject({
      endReason: 'caller_hung_up',
    });
    await p.startWorker('worker-3');
  });

  it('gets the output of a tool still running at a SIGTERM to the model through the worker that takes the call over', async () => {
    const { call } = await ring(p);
    const first = await waitForStatus(p, call.id, ['active']);
    const owner = p.workers.find((w) => w.id === first.owner);
    const invokes = () =>
      p.aws.calls.filter((c) => c.target === 'lambda.Invoke:slow-lookup').length;
    const before = invokes();
    const fnCallId = p.realtime?.requestTool(call.id, 'slow_lookup', { q: 'order 9' }) ?? '';
    await eventually(
      async () => (invokes() > before ? true : undefined),
      5000,
      'the tool to start',
    );
    // The tool takes 1.5 s: the worker stops while it runs.
    expect(await owner?.stop()).toBe(0);
    const outputs = await eventually(
      async () => {
        const sent = p.realtime?.sent(call.id, 'conversation.item.create') ?? [];
        return sent.length > 0 ? sent : undefined;
      },
      10_000,
      'the output through the new owner',
    );
    expect(outputs).toHaveLength(1);
    expect(outputs[0]?.item).toMatchObject({ type: 'function_call_output', call_id: fnCallId });
    expect(JSON.parse(outputs[0]?.item.output)).toEqual({ found: { q: 'order 9' } });
    // Sent by the worker that took the call over, with a response to speak it.
    const record = await callRecord(p, call.id);
    expect(record?.owner).not.toBe(first.owner);
    const after = call.received.findIndex((r) => r.event.type === 'conversation.item.create');
    expect(call.received.slice(after + 1).some((r) => r.event.type === 'response.create')).toBe(
      true,
    );
    expect(warnings(call)).toEqual([]);
    // The tool ran once; its claim says delivered.
    expect(invokes()).toBe(before + 1);
    const claim = await eventually(async () => {
      const found = (await callParts(p, call.id)).find((x) => x.sk === `TOOL#${fnCallId}`);
      return found?.delivered === true ? found : undefined;
    });
    expect(claim).toMatchObject({ status: 'done', name: 'slow_lookup' });
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('re-signals the call of a worker killed with SIGKILL, and another worker takes it within 30 s', async () => {
    const { call } = await ring(p);
    const first = await waitForStatus(p, call.id, ['active']);
    const owner = p.workers.find(
      (w) => w.id === first.owner && w.child.exitCode === null && w.child.signalCode === null,
    );
    const killedAt = Date.now();
    await owner?.kill();
    const taken = await eventually(
      async () => {
        const record = await callRecord(p, call.id);
        return record?.owner && record.owner !== first.owner && call.sockets.size === 1
          ? record
          : undefined;
      },
      30_000,
      'the sweeper hand-on',
    );
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    expect(taken.status).toBe('active');
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('records a reattach that finds the call gone (404) as ended', async () => {
    const { call } = await ring(p);
    const first = await waitForStatus(p, call.id, ['active']);
    const owner = p.workers.find(
      (w) => w.id === first.owner && w.child.exitCode === null && w.child.signalCode === null,
    );
    await owner?.kill();
    // The caller hangs up while no worker holds the socket.
    p.realtime?.callerHangsUp(call.id);
    expect(await waitForStatus(p, call.id, ['ended'], 30_000)).toMatchObject({ endReason: 'gone' });
  });
});

describe('capacity', () => {
  it('never oversubscribes a worker, rejects with 486 when the account is full, and scales from zero', async () => {
    const base = localCallsConfig({ maxCallsPerTask: 2 });
    const p = await pipeline({
      calls: { ...base, policy: { ...base.policy, maxConcurrentCalls: 3 } },
      workers: 1,
      workerEnv: FAST_WORKERS,
      ecsService: { desiredCount: 0 },
    });
    const worker = p.workers[0];
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const health = (await (
          await fetch(worker?.healthUrl ?? '')
        )
          .json()
          .catch(() => ({ activeCalls: 0 }))) as { activeCalls: number };
        peak = Math.max(peak, health.activeCalls);
        // The sampling period, not a wait for anything: /healthz is read every 20 ms throughout.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })().catch(() => undefined);
    const calls: SimulatedCall[] = [];
    for (let i = 0; i < 4; i++) calls.push((await ring(p)).call);
    // The account allows 3: one of the 4 (they are decided concurrently) is refused as busy.
    let seen = '';
    const busy = await eventually(async () => {
      const records = await Promise.all(calls.map((x) => callRecord(p, x.id)));
      seen = JSON.stringify(records.map((r) => [r?.status, r?.endReason, r?.rejectReason]));
      const rejected = records.filter((r) => r?.status === 'rejected');
      // `rejecting` is on its way to `rejected` (the /reject call is in flight): not decided yet.
      const decided = records.filter(
        (r) => r && !['ringing', 'accepting', 'rejecting'].includes(r.status),
      );
      return decided.length === 4 ? rejected : undefined;
    });
    expect(busy, `the four calls: ${seen}`).toHaveLength(1);
    expect(busy[0]).toMatchObject({ rejectReason: 'busy', rejectStatus: 486 });
    const [a, b, c] = calls.filter((x) => x.id !== busy[0]?.callId);
    if (!a || !b || !c) throw new Error('calls missing');
    // The worker holds 2; the 3rd waits, accepted, until a slot frees.
    await eventually(async () =>
      [a, b, c].filter((x) => x.sockets.size === 1).length === 2 ? true : undefined,
    );
    // Proves that the third is NOT attached while the worker is full. Its signal is in the queue
    // from the start, and a worker with room takes one within a poll (1 s here), so a worker that
    // overstepped its capacity would attach it well within this second.
    await holdsFor(
      () => [a, b, c].filter((x) => x.sockets.size === 1).length === 2,
      1000,
      'two of the three calls attached',
    );
    const waiting = [a, b, c].find((x) => x.sockets.size === 0);
    expect(waiting).toBeDefined();
    expect((await callRecord(p, waiting?.id ?? ''))?.status).toBe('accepted');
    const attached = [a, b, c].find((x) => x.sockets.size === 1);
    p.realtime?.callerHangsUp(attached?.id ?? '');
    await waitForStatus(p, waiting?.id ?? '', ['active']);
    sampling = false;
    await sampler;
    expect(peak).toBe(2);
    // The service was at zero: the first call raised it and recorded the cold start.
    expect(p.aws.services.get([...p.aws.services.keys()][0] ?? '')?.desiredCount).toBe(1);
    expect((await callRecord(p, a.id))?.waitedForColdWorker).toBe(true);
    for (const x of [a, b, c]) if (x.state !== 'ended') p.realtime?.callerHangsUp(x.id);
  });
});

/** The longest time two sideband sockets of one call were open at once (ms). */
function longestOverlap(call: SimulatedCall, now = Date.now()): number {
  let longest = 0;
  call.spans.forEach((a, i) => {
    for (const b of call.spans.slice(i + 1)) {
      const overlap =
        Math.min(a.closedAt ?? now, b.closedAt ?? now) - Math.max(a.openedAt, b.openedAt);
      longest = Math.max(longest, overlap);
    }
  });
  return longest;
}

const leaseItem = async (p: LocalPipeline, callId: string) =>
  (
    await documents(p).send(
      new GetCommand({ TableName: p.tableName, Key: keys.lease(callId), ConsistentRead: true }),
    )
  ).Item;

describe('one owner per call, even when a worker stalls', () => {
  let p: LocalPipeline;
  let slowDynamo: LatencyProxy;
  beforeAll(async () => {
    p = await pipeline({ calls: localCallsConfig(), workers: 0, workerEnv: FAST_WORKERS });
    slowDynamo = await startLatencyProxy(p.dynamoEndpoint);
  });
  afterAll(() => slowDynamo.stop());
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail')
      for (const w of p.workers)
        process.stderr.write(
          `--- ${w.id}\n${w.logs
            .filter((l) => !l.includes('"_aws"'))
            .slice(-30)
            .join('\n')}\n`,
        );
    // Stopped cleanly: a killed worker's long poll can take the next test's signal with it (the
    // queue hands it to the dead request; it comes back only after the visibility timeout).
    const live = p.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    for (const w of live) w.child.kill('SIGCONT');
    await Promise.allSettled(live.map((w) => w.stop()));
  });

  it.each([
    ['a true clock', 0],
    ['a clock behind by the tolerated skew', -Number(FAST_WORKERS.MAX_CLOCK_SKEW_MS)],
  ])(
    'a worker that stalls past its lease (%s) lets go of its call when it comes back, and the call never has two live sidebands',
    async (_clock, offset) => {
      // A holds the call, and nothing else (a full worker takes no signal).
      const a = await p.startWorker(`stall-a${offset}`, {
        CALLS_CONFIG: JSON.stringify(localCallsConfig({ maxCallsPerTask: 1 })),
        CLOCK_OFFSET_MS: String(offset),
      });
      const { call } = await ring(p);
      expect((await waitForStatus(p, call.id, ['active'])).owner).toBe(a.id);
      p.realtime?.callerSays(call.id, 'Before the stall.');
      await eventually(async () =>
        (await callParts(p, call.id)).some((x) => x.text === 'Before the stall.')
          ? true
          : undefined,
      );
      // B's DynamoDB answers a second late, so its sweep of A goes step by step, seconds apart:
      // the window in which a stalled worker could renew between the sweeper's steps.
      slowDynamo.delayMs = 1000;
      const b = await p.startWorker(`stall-b${offset}`, {
        AWS_ENDPOINT_URL_DYNAMODB: slowDynamo.endpoint,
      });
      a.child.kill('SIGSTOP');
      p.realtime?.callerSays(call.id, 'During the stall.');
      // A's lease expires (4 s); B sweeps it and takes the call's lease.
      await eventually(
        async () => ((await leaseItem(p, call.id)) === undefined ? true : undefined),
        30_000,
        "the sweeper taking the call's lease",
      );
      // A comes back at once, in the middle of B's sweep, and renews.
      a.child.kill('SIGCONT');
      // The call is taken over (by B, or by A under a new epoch) with one socket, after A let go.
      await eventually(
        async () => (call.connections >= 2 && call.sockets.size === 1 ? true : undefined),
        20_000,
        'one sideband again after the take-over',
      );
      const record = await waitForStatus(p, call.id, ['active']);
      expect([a.id, b.id]).toContain(record.owner);
      expect(longestOverlap(call)).toBeLessThanOrEqual(Number(FAST_WORKERS.LEASE_RENEWAL_MS));
      await eventually(async () =>
        a.logs.some((l) => l.includes('lease lost: taken for dead by a sweeper'))
          ? true
          : undefined,
      );
      // The call goes on under one owner: what the caller says now is recorded once.
      p.realtime?.callerSays(call.id, 'After the stall.');
      const said = async (text: string) =>
        (await callParts(p, call.id)).filter((x) => x.kind === 'transcript' && x.text === text)
          .length;
      await eventually(async () => ((await said('After the stall.')) > 0 ? true : undefined));
      // Proves that no second owner records it too: the recorder writes at least every second, so
      // a duplicate would be stored within 1.5 s.
      await holdsFor(
        async () => (await said('After the stall.')) === 1 && call.sockets.size === 1,
        1500,
        'one transcript, one socket',
      );
      expect(await said('Before the stall.')).toBe(1);
      expect(await said('During the stall.')).toBeLessThanOrEqual(1);
      // One greeting; nobody hung up; the call was never recorded as ended.
      expect(
        p.realtime?.sent(call.id, 'response.create').filter((e) => e.response?.instructions),
      ).toHaveLength(1);
      expect(call.hangups).toBe(0);
      expect(call.state).toBe('accepted');
      p.realtime?.callerHangsUp(call.id);
      expect(await waitForStatus(p, call.id, ['ended'])).toMatchObject({
        endReason: 'caller_hung_up',
      });
      slowDynamo.delayMs = 0;
    },
  );

  it('a live worker whose clock is behind by the tolerated skew, its renewals stalled, stops acting before a sweeper can take its call: what the caller says then is recorded once', async () => {
    // A's leases tolerate 3 s of skew (8 s lease) and its clock is 3 s behind: the lease it last
    // wrote ends for a sweeper 3 s early, which is when A stops acting (8 - 3 s after that
    // renewal started). Unlike a stopped process, A runs on and hears the caller. This fails when
    // A ignores the skew (MAX_CLOCK_SKEW_MS 0) or its clock is 4.5 s behind: A records too.
    const skew = 3000;
    slowDynamo.delayMs = 0;
    const a = await p.startWorker('skew-live-a', {
      CALLS_CONFIG: JSON.stringify(localCallsConfig({ maxCallsPerTask: 1 })),
      CLOCK_OFFSET_MS: String(-skew),
      LEASE_TTL_MS: '8000',
      MAX_CLOCK_SKEW_MS: String(skew),
      AWS_ENDPOINT_URL_DYNAMODB: slowDynamo.endpoint,
    });
    const { call } = await ring(p);
    expect((await waitForStatus(p, call.id, ['active'])).owner).toBe(a.id);
    await p.startWorker('skew-live-b');
    // A's DynamoDB requests now hang (each times out in the SDK): its renewals stop confirming
    // while it keeps running and keeps its socket. B sweeps it, and the call moves.
    slowDynamo.delayMs = 60_000;
    await eventually(
      async () => (call.sockets.size === 2 ? true : undefined),
      20_000,
      'the new owner attached while A still has its socket',
    );
    // Both sockets hear the caller; only the owner may act on it.
    p.realtime?.callerSays(call.id, 'While A is cut off.');
    // A reaches DynamoDB again: its next renewal is refused (it was fenced), and anything it had
    // recorded meanwhile would be written now.
    slowDynamo.delayMs = 0;
    const said = async () =>
      (await callParts(p, call.id)).filter(
        (x) => x.kind === 'transcript' && x.text === 'While A is cut off.',
      ).length;
    await eventually(async () => ((await said()) > 0 ? true : undefined));
    await eventually(
      async () => (a.logs.some((l) => l.includes('lease lost')) ? true : undefined),
      20_000,
      'A letting go of the call',
    );
    await eventually(async () => (call.sockets.size === 1 ? true : undefined));
    // Proves that A recorded nothing: its recorder writes at least every second, and on letting
    // go it flushes at once (a second line landed within 1.3 s in the failing variants).
    await holdsFor(async () => (await said()) === 1, 3000, 'one transcript');
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
  });

  it('never takes a healthy worker for dead when its clock is behind or ahead by the tolerated skew', async () => {
    const skew = Number(FAST_WORKERS.MAX_CLOCK_SKEW_MS);
    const one = JSON.stringify(localCallsConfig({ maxCallsPerTask: 1 }));
    const held: [LocalPipeline['workers'][number], SimulatedCall][] = [];
    for (const offset of [-skew, skew]) {
      // Each holds one call (a full worker takes no other).
      const worker = await p.startWorker(`skewed${offset}`, {
        CALLS_CONFIG: one,
        CLOCK_OFFSET_MS: String(offset),
      });
      const { call } = await ring(p);
      expect((await waitForStatus(p, call.id, ['active'])).owner).toBe(worker.id);
      held.push([worker, call]);
    }
    const sweeper = await p.startWorker('true-clock');
    // Proves that the sweeper (every 500 ms) never takes either call over: two lease TTLs (4 s
    // each), the skewed workers renewing every 500 ms.
    await holdsFor(
      () => held.every(([, call]) => call.connections === 1 && call.sockets.size === 1),
      8000,
      'each call staying with its worker',
    );
    for (const [worker] of held)
      expect(worker.logs.some((l) => l.includes('lease lost'))).toBe(false);
    expect(sweeper.logs.some((l) => l.includes('re-signalling a call whose worker died'))).toBe(
      false,
    );
    for (const [, call] of held) {
      p.realtime?.callerHangsUp(call.id);
      await waitForStatus(p, call.id, ['ended']);
    }
  });
});

describe('sideband attach failures', () => {
  let p: LocalPipeline;
  beforeAll(async () => {
    p = await pipeline({
      calls: localCallsConfig(),
      workers: 1,
      workerEnv: { ...FAST_WORKERS, ATTACH_WINDOW_MS: '4000', HANDSHAKE_TIMEOUT_MS: '300' },
    });
  });

  /** Rings a call whose sideband attaches first meet `faults`. */
  async function ringWithFaults(faults: [AttachFault, number][]) {
    const call = p.realtime?.createCall();
    if (!call) throw new Error('no simulator');
    for (const [fault, count] of faults) p.realtime?.failAttach(fault, count, call.id);
    const event = sampleEvent('realtime.call.incoming', {
      objectId: call.id,
      sipHeaders: call.sipHeaders,
    });
    const response = await post(
      p.url,
      signedDelivery(p.webhookSecret, event, { webhookId: `wh_${event.id.slice(4)}` }),
    );
    expect(response.status).toBe(200);
    return call;
  }
  const emfCount = (name: string) =>
    p.workers
      .flatMap((w) => w.logs)
      .filter((l) => l.includes('"CloudWatchMetrics"') && l.includes(`"${name}":1`)).length;

  it('retries an attach that meets a 5xx, a reset connection and an unanswered upgrade, and the call goes on', async () => {
    const retriesBefore = emfCount('AttachRetries');
    const call = await ringWithFaults([
      [{ status: 503 }, 1],
      ['reset', 1],
      ['hang', 1],
    ]);
    const active = await waitForStatus(p, call.id, ['active']);
    expect(active.attachedAt).toBeGreaterThan(active.acceptedAt ?? 0);
    expect(call.connections).toBe(1);
    expect(call.hangups).toBe(0);
    await waitForSent(call, 'response.create');
    await eventually(async () =>
      emfCount('AttachRetries') - retriesBefore === 3 ? true : undefined,
    );
    p.realtime?.callerHangsUp(call.id);
    expect(await waitForStatus(p, call.id, ['ended'])).toMatchObject({
      endReason: 'caller_hung_up',
    });
  });

  it('hangs up a call no attach reached within the window, records why, and gives its slot back', async () => {
    const call = await ringWithFaults([[{ status: 502 }, 1000]]);
    const ended = await waitForStatus(p, call.id, ['ended'], 15_000);
    expect(ended).toMatchObject({ endReason: 'attach_failed_502', holdsCapacity: false });
    // The caller is not left ringing in silence: OpenAI was told to hang up.
    expect(call.hangups).toBe(1);
    expect(call.state).toBe('ended');
    expect(call.connections).toBe(0);
    const parts = await callParts(p, call.id);
    expect(parts.find((x) => x.name === 'attach_failed')?.detail).toMatchObject({
      reason: 'attach_failed_502',
    });
  });
});
