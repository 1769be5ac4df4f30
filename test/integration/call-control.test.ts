import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newCommandId } from '#core/sideband/call-commands';
import type { WireEvent } from '#core/wire';
import { runCli } from '../../cli/run';
import { type LocalCallControl, startCallControl } from '../../local/call-control';
import { localCallsConfig } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { sendCall } from '../../local/send-call';
import { callParts, callRecord, ring, waitForSent, waitForStatus } from '../support/calls';
import { eventually, startPipeline } from '../support/webhooks';

/**
 * Call control end to end (issue 16): the local API (the Lambda's code, no auth on loopback), the
 * worker's control queue, the worker applying each command on a live call against the Realtime
 * simulator, and the frames it sent there. Several workers, a SIGTERM hand-off and a sweeper
 * reattach with commands sent while the call has no owner.
 */

const FAST_WORKERS = {
  LOG_LEVEL: 'info',
  LEASE_TTL_MS: '4000',
  LEASE_RENEWAL_MS: '500',
  MAX_CLOCK_SKEW_MS: '1500',
  SWEEP_INTERVAL_MS: '500',
  SIGNAL_WAIT_SECONDS: '1',
  CONTROL_WAIT_SECONDS: '2',
  PING_INTERVAL_MS: '1000',
};

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON answers, read field by field.
type Json = Record<string, any>;

let p: LocalPipeline;
let api: LocalCallControl;
let started = 0;

beforeAll(async () => {
  p = await startPipeline({
    calls: localCallsConfig({ transferConfirmMs: 800 }),
    workers: 0,
    workerEnv: FAST_WORKERS,
  });
  api = await startCallControl(p.env);
}, 60_000);
afterAll(async () => {
  await api?.stop();
  await p?.stop();
});
// Two live workers at the start of every test.
beforeEach(async () => {
  while (
    p.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).length < 2
  )
    await p.startWorker(`ctl-worker-${++started}`);
});
afterEach((context) => {
  if (context.task.result?.state !== 'fail') return;
  for (const w of p.workers) process.stderr.write(`--- ${w.id}\n${w.logs.slice(-30).join('\n')}\n`);
});

async function send(callId: string, body: unknown, raw?: string) {
  const response = await fetch(`${api.url}/calls/${encodeURIComponent(callId)}/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-owh-sender': 'test@ops' },
    body: raw ?? JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Json };
}

async function statusOf(callId: string, id: string) {
  const response = await fetch(`${api.url}/calls/${callId}/commands/${id}`);
  return { status: response.status, body: (await response.json()) as Json };
}

function settled(callId: string, id: string, timeoutMs = 10_000) {
  return eventually(
    async () => {
      const { body } = await statusOf(callId, id);
      return body.status !== 'pending' ? body : undefined;
    },
    timeoutMs,
    `command ${id} settled`,
  );
}

/** A call attached, greeted, and its greeting played. */
async function liveCall() {
  const { call } = await ring(p);
  const record = await waitForStatus(p, call.id, ['active']);
  await waitForSent(call, 'response.create');
  return { call, record };
}

function sent(callId: string, type: string): WireEvent[] {
  return p.realtime?.sent(callId, type) ?? [];
}

/**
 * The frames once they arrived: `applied` is written when the worker claims a command, just
 * before it sends the frames (the claim must come first for a command to be applied once).
 */
function arrived<T>(probe: () => T[], what: string): Promise<T[]> {
  return eventually(
    async () => {
      const found = probe();
      return found.length > 0 ? found : undefined;
    },
    5000,
    what,
  );
}

function messagesSaying(callId: string, text: string): WireEvent[] {
  return sent(callId, 'conversation.item.create').filter(
    (e) => (e.item as { content?: { text?: string }[] })?.content?.[0]?.text === text,
  );
}

describe('each command on a live call', () => {
  it('say: 202 with an id, the message and a response reach the model, and the timeline says who sent it', async () => {
    const { call, record } = await liveCall();
    const responsesBefore = sent(call.id, 'response.create').length;
    const posted = await send(call.id, { action: 'say', text: 'Your refund went through.' });
    expect(posted.status).toBe(202);
    expect(posted.body).toMatchObject({
      id: expect.stringMatching(/^cmd_/),
      status: 'pending',
      action: 'say',
      sender: 'test@ops',
      routed: 'held',
    });
    const done = await settled(call.id, posted.body.id);
    expect(done).toMatchObject({ status: 'applied', appliedBy: record.owner });
    const items = await arrived(
      () => messagesSaying(call.id, 'Your refund went through.'),
      'the message',
    );
    expect(items).toHaveLength(1);
    expect(items[0]?.item).toEqual({
      type: 'message',
      role: 'system',
      content: [{ type: 'input_text', text: 'Your refund went through.' }],
    });
    await eventually(
      async () => (sent(call.id, 'response.create').length > responsesBefore ? true : undefined),
      5000,
      'the response after the message',
    );
    const timeline = await eventually(
      async () =>
        (await callParts(p, call.id)).find(
          (part) => part.kind === 'event' && part.name === 'command',
        ),
      5000,
      'the command on the timeline',
    );
    expect(timeline.detail).toMatchObject({
      id: posted.body.id,
      action: 'say',
      sender: 'test@ops',
      status: 'applied',
    });
    p.realtime?.callerHangsUp(call.id);
  });

  it('update: session.update with type realtime and the new instructions and tools', async () => {
    const { call } = await liveCall();
    const posted = await send(call.id, {
      action: 'update',
      instructions: 'Answer only in Spanish.',
      tools: [],
      tool_choice: 'auto',
    });
    expect(posted.status).toBe(202);
    expect(await settled(call.id, posted.body.id)).toMatchObject({ status: 'applied' });
    const [update] = await arrived(() => sent(call.id, 'session.update'), 'the update');
    expect(update?.session).toMatchObject({
      type: 'realtime',
      instructions: 'Answer only in Spanish.',
      tool_choice: 'auto',
    });
    const tools = (update?.session as { tools?: { name: string }[] } | undefined)?.tools ?? [];
    expect(tools.map((t) => t.name).sort()).toEqual(['end_call', 'transfer_call']);
    p.realtime?.callerHangsUp(call.id);
  });

  it('refuses a voice change with a clear error and sends nothing', async () => {
    const { call } = await liveCall();
    const posted = await send(call.id, { action: 'update', voice: 'cedar' });
    expect(posted.status).toBe(409);
    expect(posted.body.error).toMatchObject({
      code: 'voice_locked',
      message: expect.stringMatching(/responded with audio/),
    });
    expect(sent(call.id, 'session.update')).toEqual([]);
    p.realtime?.callerHangsUp(call.id);
  });

  it('cancel: response.cancel then output_audio_buffer.clear while a response runs; refused when none does', async () => {
    const { call } = await liveCall();
    // The greeting played out and nothing runs: nothing to cancel.
    await eventually(
      async () => (call.activeResponses === 0 && !call.audioPlaying ? true : undefined),
      5000,
      'the greeting done',
    );
    const idle = await send(call.id, { action: 'cancel' });
    expect(await settled(call.id, idle.body.id)).toMatchObject({
      status: 'refused',
      error: { code: 'no_active_response' },
    });
    // A server response held open for a while (a VAD turn calling a tool no session has).
    p.realtime?.requestTool(call.id, 'not_a_tool', {}, { holdMs: 4000 });
    const running = await send(call.id, { action: 'cancel' });
    expect(await settled(call.id, running.body.id)).toMatchObject({ status: 'applied' });
    const types = (p.realtime?.sentToWorker(call.id) ?? []).length;
    expect(types).toBeGreaterThan(0);
    await arrived(() => sent(call.id, 'output_audio_buffer.clear'), 'the clear');
    const frames = call.received.map((r) => r.event.type);
    const cancelAt = frames.indexOf('response.cancel');
    expect(cancelAt).toBeGreaterThanOrEqual(0);
    expect(frames[cancelAt + 1]).toBe('output_audio_buffer.clear');
    p.realtime?.callerHangsUp(call.id);
  });

  it('hangup: a goodbye plays out, then /hangup; the call ends hung up by the agent', async () => {
    const { call } = await liveCall();
    const posted = await send(call.id, {
      action: 'hangup',
      goodbye: 'Thanks for calling, goodbye.',
    });
    expect(await settled(call.id, posted.body.id)).toMatchObject({ status: 'applied' });
    const ended = await waitForStatus(p, call.id, ['ended']);
    expect(ended.endReason).toBe('hung_up_by_agent');
    expect(call.hangups).toBe(1);
    const goodbye = sent(call.id, 'response.create').at(-1);
    expect(String((goodbye?.response as { instructions?: string })?.instructions)).toContain(
      'Thanks for calling, goodbye.',
    );
    // The goodbye was not cut off: /hangup came after its audio drained.
    expect(call.cutOffs).toEqual([]);
  });

  it('transfer: /refer to the allowlisted target, confirmed by the socket closing', async () => {
    const { call } = await liveCall();
    const posted = await send(call.id, { action: 'transfer', target: 'support' });
    expect(await settled(call.id, posted.body.id)).toMatchObject({ status: 'applied' });
    const ended = await waitForStatus(p, call.id, ['ended']);
    expect(call.referTarget).toBe('sip:support@example.com');
    expect(ended).toMatchObject({ endReason: 'transferred', transferStatus: 'confirmed' });
  });
});

describe('refusals', () => {
  it('an unknown call, an ended call, and a command whose call ended first', async () => {
    const unknown = await send('rtc_nosuchcall', { action: 'say', text: 'hello' });
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'call_not_found' } } });
    const { call } = await liveCall();
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);
    const late = await send(call.id, { action: 'say', text: 'too late' });
    expect(late).toMatchObject({ status: 409, body: { error: { code: 'call_ended' } } });
    const missing = await statusOf(call.id, 'cmd_000000000abc');
    expect(missing).toMatchObject({ status: 404, body: { error: { code: 'command_not_found' } } });
    // A command stored just before its call ended, which no worker applied: reported failed.
    const now = Date.now();
    await api.deps.commands.create(
      {
        id: newCommandId(now, 'abcdef'),
        callId: call.id,
        command: { action: 'cancel' },
        sender: 'test@ops',
        createdAt: now,
        status: 'pending',
      },
      Math.floor(now / 1000) + 3600,
    );
    const orphan = await statusOf(call.id, newCommandId(now, 'abcdef'));
    expect(orphan).toMatchObject({
      status: 200,
      body: { status: 'failed', error: { code: 'call_ended' } },
    });
    expect((await statusOf(call.id, newCommandId(now, 'abcdef'))).body.status).toBe('failed');
  });

  it('bad bodies: 400 with a JSON error, and nothing stored or sent', async () => {
    const { call } = await liveCall();
    const cases: [unknown, string | undefined, number, string][] = [
      [undefined, '{oops', 400, 'invalid_json'],
      [{ action: 'dance' }, undefined, 400, 'unknown_action'],
      [{ action: 'say', text: 'x'.repeat(5000) }, undefined, 400, 'text_too_long'],
      [{ action: 'transfer', target: 'sales' }, undefined, 400, 'unknown_transfer_target'],
      [{ action: 'transfer', target: '__proto__' }, undefined, 400, 'unknown_transfer_target'],
      [{ action: 'update', tools: ['admin_tool'] }, undefined, 400, 'unknown_tool'],
      [{ action: 'say', text: 'hi', extra: 1 }, undefined, 400, 'invalid_body'],
    ];
    for (const [body, raw, status, code] of cases) {
      const answer = await send(call.id, body, raw);
      expect(answer, code).toMatchObject({ status, body: { error: { code } } });
    }
    expect(sent(call.id, 'session.update')).toEqual([]);
    expect(sent(call.id, 'conversation.item.create')).toEqual([]);
    p.realtime?.callerHangsUp(call.id);
  });
});

describe('commands across a change of owner', () => {
  it('a command sent during a SIGTERM hand-off is applied once, by the new owner', async () => {
    const { call, record } = await liveCall();
    const owner = p.workers.find((w) => w.id === record.owner);
    expect(owner).toBeTruthy();
    const stopping = owner?.stop();
    // Sent while the owner drains: it no longer applies commands, and the next owner does.
    const posted = await send(call.id, { action: 'say', text: 'Sent during the hand-off.' });
    expect(posted.status).toBe(202);
    await stopping;
    const done = await settled(call.id, posted.body.id, 15_000);
    expect(done.status).toBe('applied');
    expect(done.appliedBy).not.toBe(record.owner);
    const now = await callRecord(p, call.id);
    expect(done.appliedBy).toBe(now?.owner);
    await arrived(() => messagesSaying(call.id, 'Sent during the hand-off.'), 'the message');
    expect(messagesSaying(call.id, 'Sent during the hand-off.')).toHaveLength(1);
    p.realtime?.callerHangsUp(call.id);
  });

  it('a hang-up applied whose goodbye had not played at a SIGTERM hand-off is given back, and the new owner hangs up once', async () => {
    const { call, record } = await liveCall();
    await eventually(
      async () => (call.activeResponses === 0 && !call.audioPlaying ? true : undefined),
      5000,
      'the greeting done',
    );
    // A server response held open: the goodbye cannot start (nor /hangup go out) before it ends.
    p.realtime?.requestTool(call.id, 'not_a_tool', {}, { holdMs: 3000 });
    const posted = await send(call.id, { action: 'hangup', goodbye: 'Goodbye across a hand-off.' });
    expect(await settled(call.id, posted.body.id)).toMatchObject({
      status: 'applied',
      appliedBy: record.owner,
    });
    const owner = p.workers.find((w) => w.id === record.owner);
    await owner?.stop();
    expect(call.hangups).toBe(0);
    // Given back (applied → pending) by the draining owner, applied again by the next one.
    const ended = await waitForStatus(p, call.id, ['ended'], 20_000);
    expect(ended.endReason).toBe('hung_up_by_agent');
    expect(call.hangups).toBe(1);
    const final = await statusOf(call.id, posted.body.id);
    expect(final.body).toMatchObject({ status: 'applied' });
    expect(final.body.appliedBy).not.toBe(record.owner);
    expect(final.body.appliedBy).toBe(ended.owner);
  });

  it('a hang-up applied by a worker SIGKILLed before its /hangup is applied again by the worker the sweeper hands the call to, and hangs up once', async () => {
    const { call, record } = await liveCall();
    await eventually(
      async () => (call.activeResponses === 0 && !call.audioPlaying ? true : undefined),
      5000,
      'the greeting done',
    );
    // A server response held open: the goodbye cannot start (nor /hangup go out) before it ends.
    p.realtime?.requestTool(call.id, 'not_a_tool', {}, { holdMs: 3000 });
    const posted = await send(call.id, { action: 'hangup', goodbye: 'Goodbye across a crash.' });
    expect(await settled(call.id, posted.body.id)).toMatchObject({
      status: 'applied',
      appliedBy: record.owner,
    });
    await p.workers.find((w) => w.id === record.owner)?.kill();
    expect(call.hangups).toBe(0);
    const ended = await waitForStatus(p, call.id, ['ended'], 30_000);
    expect(ended.endReason).toBe('hung_up_by_agent');
    expect(call.hangups).toBe(1);
    const final = await statusOf(call.id, posted.body.id);
    expect(final.body).toMatchObject({ status: 'applied' });
    expect(final.body.appliedBy).not.toBe(record.owner);
  });

  it('a command sent while the owner is dead is applied once, by the worker the sweeper hands the call to', async () => {
    const { call, record } = await liveCall();
    const owner = p.workers.find((w) => w.id === record.owner);
    await owner?.kill();
    // The lease still names the dead worker: the nudge goes to its queue, where nobody reads it.
    const posted = await send(call.id, { action: 'say', text: 'Sent to a dead worker.' });
    expect(posted.status).toBe(202);
    const done = await settled(call.id, posted.body.id, 20_000);
    expect(done.status).toBe('applied');
    expect(done.appliedBy).not.toBe(record.owner);
    await arrived(() => messagesSaying(call.id, 'Sent to a dead worker.'), 'the message');
    expect(messagesSaying(call.id, 'Sent to a dead worker.')).toHaveLength(1);
    p.realtime?.callerHangsUp(call.id);
  });
});

describe('owh calls say|update|cancel|hangup|transfer', () => {
  function io(options: { interactive?: boolean; answer?: boolean } = {}) {
    const out: string[] = [];
    const err: string[] = [];
    const questions: string[] = [];
    return {
      out,
      err,
      questions,
      io: {
        out: (t: string) => out.push(t),
        err: (t: string) => err.push(t),
        interactive: options.interactive ?? false,
        confirm: async (q: string) => {
          questions.push(q);
          return options.answer ?? false;
        },
        progressInPlace: false,
        env: {},
        now: Date.now,
      },
    };
  }

  it('sends, waits until applied, and exits with the documented codes', async () => {
    const { call } = await liveCall();
    const ok = io();
    const args = ['--url', api.url, '--yes', '--wait', '--json'];
    expect(await runCli(['calls', 'say', call.id, 'From the CLI.', ...args], ok.io)).toBe(0);
    expect(JSON.parse(ok.out.join(''))).toMatchObject({ action: 'say', status: 'applied' });
    await arrived(() => messagesSaying(call.id, 'From the CLI.'), 'the message');
    expect(messagesSaying(call.id, 'From the CLI.')).toHaveLength(1);
    // Refused by the API: 3.
    const bad = io();
    expect(await runCli(['calls', 'transfer', call.id, 'sales', ...args], bad.io)).toBe(3);
    // Refused by the worker (nothing to cancel): 3.
    await eventually(
      async () => (call.activeResponses === 0 && !call.audioPlaying ? true : undefined),
      5000,
      'nothing playing',
    );
    expect(await runCli(['calls', 'cancel', call.id, ...args], io().io)).toBe(3);
    // Not on a terminal and no --yes: 2, nothing sent. Declined at the prompt: 3.
    const noTty = io();
    expect(await runCli(['calls', 'hangup', call.id, '--url', api.url], noTty.io)).toBe(2);
    const declined = io({ interactive: true, answer: false });
    expect(await runCli(['calls', 'hangup', call.id, '--url', api.url], declined.io)).toBe(3);
    expect(declined.questions[0]).toMatch(/^Send to call rtc_.*: hangup\? \[y\/N\] $/);
    // Bad arguments: 2. An unknown call: 1.
    expect(await runCli(['calls', 'say', call.id, '--url', api.url, '--yes'], io().io)).toBe(2);
    expect(
      await runCli(['calls', 'say', 'rtc_unknown', 'x', '--url', api.url, '--yes'], io().io),
    ).toBe(1);
    // --local reads npm start's state file for the API's URL.
    const stateDir = mkdtempSync(path.join(tmpdir(), 'owh-ctl-'));
    const stateFile = path.join(stateDir, 'state.json');
    writeFileSync(stateFile, JSON.stringify({ callControlUrl: api.url, pid: process.pid }));
    const local = io();
    expect(
      await runCli(
        [
          'calls',
          'update',
          call.id,
          '--instructions',
          'Be terse.',
          '--local',
          '--state',
          stateFile,
          '--yes',
          '--wait',
        ],
        local.io,
      ),
    ).toBe(0);
    expect(local.out.join('')).toMatch(/^update cmd_\w+: applied by /);
    // Confirmed on a terminal: the hang-up goes through.
    const confirmed = io({ interactive: true, answer: true });
    expect(
      await runCli(['calls', 'hangup', call.id, '--url', api.url, '--wait'], confirmed.io),
    ).toBe(0);
    expect((await waitForStatus(p, call.id, ['ended'])).endReason).toBe('hung_up_by_agent');
  });
});

describe('npm run send -- call --scenario control', () => {
  it('plays a call that receives each command, applied in order, the last one refused', async () => {
    const lines: string[] = [];
    const ok = await sendCall(
      {
        webhookUrl: p.url,
        webhookSecret: p.webhookSecret,
        openAiBaseUrl: p.openAiBaseUrl,
        tableName: p.tableName,
        dynamoEndpoint: p.dynamoEndpoint,
        callControlUrl: api.url,
      } as Parameters<typeof sendCall>[0],
      (line) => lines.push(line),
      { scenario: 'control' },
    );
    const commands = lines.filter((l) => l.startsWith('⇢  '));
    // On a failure, the message is what the call printed.
    expect(
      commands.map((l) => l.replace(/cmd_\w+/, 'cmd').replace(/ in \d+ ms$/, '')),
      lines.join('\n'),
    ).toEqual([
      '⇢  say: 202 cmd → applied',
      '⇢  update: 202 cmd → applied',
      ...commands
        .filter((l) => l.startsWith('⇢  cancel') && l.includes('no_active_response'))
        .map(() => '⇢  cancel: 202 cmd → refused (no_active_response)'),
      '⇢  cancel: 202 cmd → applied',
      '⇢  transfer: 202 cmd → applied',
      '⇢  hangup: 202 cmd → refused (call_leaving)',
    ]);
    expect(ok).toBe(true);
    expect(lines.some((l) => l.includes('status ended: transferred'))).toBe(true);
    // Nothing a correct worker would not cause (the legend line names the mark too).
    expect(lines.filter((l) => l.includes('⚠') && !l.includes('Timeline'))).toEqual([]);
    // The workers' EMF: each applied command counted by Action with its accept → applied
    // latency, the refused hang-up by Reason.
    const emf = await eventually(async () => {
      const records = p.workers
        .flatMap((w) => w.logs)
        .filter((line) => line.includes('"_aws"') && line.includes('CallCommand'))
        .map((line) => JSON.parse(line) as Json);
      return records.some((r) => r.Action === 'transfer' && 'CallCommandsApplied' in r) &&
        records.some((r) => r.Reason === 'call_leaving' && 'CallCommandsRefused' in r)
        ? records
        : undefined;
    });
    // The cancel ends the held response with response.done cancelled (client_cancelled), as the
    // reference says, not when the scenario's hold runs out.
    expect(lines.join('\n')).toMatch(/← response\.done resp_\w+ cancelled \(client_cancelled\)/);
    const applied = emf.filter((r) => 'CallCommandsApplied' in r);
    for (const action of ['say', 'update', 'cancel', 'transfer'])
      expect(applied.find((r) => r.Action === action)).toMatchObject({
        Stack: 'local',
        CallCommandsApplied: 1,
        CallCommandLatency: expect.any(Number),
        _aws: {
          CloudWatchMetrics: [
            {
              Namespace: 'OpenAiWebhooks',
              Dimensions: [['Stack'], ['Stack', 'Action']],
              Metrics: [
                { Name: 'CallCommandsApplied', Unit: 'Count' },
                { Name: 'CallCommandLatency', Unit: 'Milliseconds' },
              ],
            },
          ],
        },
      });
  });
});
