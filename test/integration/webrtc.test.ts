import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CreateQueueCommand, DeleteQueueCommand } from '@aws-sdk/client-sqs';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricsPublisher } from '#core/observability/metrics';
import { runCli } from '../../cli/run';
import { localCallsConfig } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { SAMPLE_OFFER } from '../../local/send-webrtc';
import {
  type LocalSessionEndpoint,
  localSessionEndpoint,
  startSessionEndpoint,
} from '../../local/session-endpoint';
import { startLatencyProxy } from '../../local/stand-ins/latency-proxy';
import { apiError, OpenAiSimulator } from '../../local/stand-ins/openai-simulator';
import { RealtimeSimulator } from '../../local/stand-ins/realtime-simulator';
import { callParts, callRecord, documents, ring, waitForStatus } from '../support/calls';
import { eventually, startPipeline } from '../support/webhooks';

const FAST_WORKERS = {
  LOG_LEVEL: 'warn',
  LEASE_TTL_MS: '4000',
  LEASE_RENEWAL_MS: '500',
  MAX_CLOCK_SKEW_MS: '1500',
  SWEEP_INTERVAL_MS: '500',
  SIGNAL_WAIT_SECONDS: '1',
  PING_INTERVAL_MS: '1000',
};

/** A loopback port nothing listens on: connections to it are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The metrics a session endpoint publishes, as `name/Reason` strings. */
function collectMetrics(): { metrics: MetricsPublisher; names: string[] } {
  const names: string[] = [];
  return {
    names,
    metrics: (points) => {
      for (const point of points) {
        const reason = point.dimension?.name === 'Reason' ? point.dimension.value : undefined;
        names.push(reason ? `${point.name}/${reason}` : point.name);
      }
    },
  };
}

const pipelines: LocalPipeline[] = [];
afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.stop()));
});

async function offer(
  endpoint: LocalSessionEndpoint,
  options: {
    query?: string;
    body?: string;
    contentType?: string;
    headers?: Record<string, string>;
  } = {},
) {
  const response = await fetch(`${endpoint.url}/session${options.query ?? ''}`, {
    method: 'POST',
    headers: { 'content-type': options.contentType ?? 'application/sdp', ...options.headers },
    body: options.body ?? SAMPLE_OFFER,
  });
  const text = await response.text();
  return { response, text, json: () => JSON.parse(text) as { error: Record<string, unknown> } };
}

async function attach(endpoint: LocalSessionEndpoint, callId: string, body: unknown) {
  const response = await fetch(`${endpoint.url}/calls/${encodeURIComponent(callId)}/attach`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('WebRTC session endpoint (local mode, the session Lambda code)', () => {
  let p: LocalPipeline;
  let endpoint: LocalSessionEndpoint;
  beforeAll(async () => {
    const config = localCallsConfig({ transferConfirmMs: 800 });
    p = await startPipeline({
      calls: {
        ...config,
        policy: {
          ...config.policy,
          sessions: {
            ...config.policy.sessions,
            support: {
              model: 'gpt-realtime-2.1',
              instructions: 'You are the support agent of Example Co.',
              voice: 'cedar',
              greeting: 'Support here, how can I help?',
            },
          },
        },
      },
      workers: 1,
      workerEnv: FAST_WORKERS,
    });
    pipelines.push(p);
    endpoint = await startSessionEndpoint(p, { maxConcurrentSessions: 50 });
  });

  it('answers an offer with OpenAI SDP answer and the call id, and the sideband attaches', async () => {
    const { response, text } = await offer(endpoint, { query: '?profile=support' });
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('application/sdp');
    const callId = response.headers.get('x-call-id') ?? '';
    expect(callId).toMatch(/^rtc_/);
    expect(response.headers.get('location')).toBe(`/v1/realtime/calls/${callId}`);
    expect(text.startsWith('v=0')).toBe(true);
    expect(text).toContain('a=setup:active');
    // OpenAI got the offer with the profile's session, the project key, and multipart.
    const create = p.simulator?.requests.filter((r) => r.path === '/v1/realtime/calls').at(-1);
    expect(create?.contentType).toMatch(/^multipart\/form-data; boundary=/);
    expect(create?.authorization).toBe(`Bearer ${p.simulator?.apiKey}`);
    const sim = p.realtime?.calls.get(callId);
    expect(sim?.acceptBody).toMatchObject({
      type: 'realtime',
      instructions: 'You are the support agent of Example Co.',
      audio: { output: { voice: 'cedar' } },
    });
    // No transfer_call on WebRTC (REFER is SIP only); end_call is there.
    const body = sim?.acceptBody as { tools?: { name: string }[] } | undefined;
    const tools = (body?.tools ?? []).map((t) => t.name);
    expect(tools).toContain('end_call');
    expect(tools).not.toContain('transfer_call');
    const record = await waitForStatus(p, callId, ['active']);
    expect(record).toMatchObject({ channel: 'webrtc', profile: 'support', sessionKey: 'support' });
    expect(record.owner).toBeTruthy();
  });

  /** Requests OpenAI got for new calls: a refused request must not reach it. */
  const creates = () =>
    p.simulator?.requests.filter((r) => r.path === '/v1/realtime/calls').length ?? 0;

  it('refuses an unknown profile with a 400 JSON error, own properties only, and calls nobody', async () => {
    const before = creates();
    for (const name of ['nope', 'toString', '__proto__', 'constructor']) {
      const { response, json } = await offer(endpoint, { query: `?profile=${name}` });
      expect(response.status, name).toBe(400);
      expect(json().error).toMatchObject({ code: 'unknown_profile' });
    }
    const byHeader = await offer(endpoint, { headers: { 'x-session-profile': 'nope' } });
    expect(byHeader.response.status).toBe(400);
    expect(creates()).toBe(before);
  });

  it('refuses a wrong content type (415), a bad SDP (400) and an oversized one (413), calling nobody', async () => {
    const before = creates();
    const wrongType = await offer(endpoint, {
      contentType: 'application/json',
      body: '{"sdp":"v=0"}',
    });
    expect(wrongType.response.status).toBe(415);
    expect(wrongType.json().error.code).toBe('unsupported_media_type');
    for (const body of ['hello', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n', `x${SAMPLE_OFFER}`]) {
      const bad = await offer(endpoint, { body });
      expect(bad.response.status).toBe(400);
      expect(bad.json().error.code).toBe('invalid_sdp');
    }
    const huge = await offer(endpoint, { body: `${SAMPLE_OFFER}${'a=x-pad:0\r\n'.repeat(7000)}` });
    expect(huge.response.status).toBe(413);
    expect(huge.json().error.code).toBe('sdp_too_large');
    expect(creates()).toBe(before);
  });

  it("answers OpenAI's 4xx and 5xx with a 502 carrying OpenAI's status and code, and no secret", async () => {
    const key = p.simulator?.apiKey ?? '';
    p.simulator?.failNext(
      '/v1/realtime/calls',
      401,
      1,
      apiError('invalid_api_key', `Incorrect API key provided: ${key}. Bearer ${key}`),
    );
    const refused = await offer(endpoint);
    expect(refused.response.status).toBe(502);
    expect(refused.json().error).toMatchObject({ code: 'invalid_api_key', openai_status: 401 });
    expect(refused.text).not.toContain(key);
    expect(refused.text).not.toContain(key.slice(3));
    p.simulator?.failNext('/v1/realtime/calls', 400, 1, apiError('invalid_offer', 'Bad offer.'));
    const invalid = await offer(endpoint);
    expect(invalid.json().error).toMatchObject({ code: 'invalid_offer', openai_status: 400 });
    p.simulator?.failNext('/v1/realtime/calls', 503);
    const down = await offer(endpoint);
    expect(down.response.status).toBe(502);
    expect(down.json().error).toMatchObject({ code: 'server_error', openai_status: 503 });
    // Nothing was recorded for the failed calls: the next one goes through.
    expect((await offer(endpoint)).response.status).toBe(201);
  });

  it('attach: 202 once queued and the sideband attaches; 409 for a call that has an owner; 400 for a bad id', async () => {
    const realtime = p.realtime;
    if (!realtime) throw new Error('no simulator');
    // A team that did its own SDP exchange: the call exists at OpenAI, we only attach.
    const call = realtime.createWebRtcCall({
      type: 'realtime',
      model: 'gpt-realtime-2.1',
      instructions: 'Own exchange.',
      audio: { output: { voice: 'marin' } },
    });
    const first = await attach(endpoint, call.id, {
      profile: 'support',
      metadata: { user: 'u-42' },
    });
    expect(first).toMatchObject({ status: 202, body: { call_id: call.id, profile: 'support' } });
    const record = await waitForStatus(p, call.id, ['active']);
    expect(record).toMatchObject({
      channel: 'webrtc',
      profile: 'support',
      metadata: { user: 'u-42' },
    });
    const again = await attach(endpoint, call.id, { profile: 'support' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'already_attached' } });
    for (const id of ['nope', 'rtc_', 'rtc_a/b', 'rtc_x;drop']) {
      const bad = await attach(endpoint, id, {});
      expect(bad.status, id).toBe(400);
    }
    expect((await attach(endpoint, 'rtc_abcdef123456', { profile: 'nope' })).status).toBe(400);
    expect((await attach(endpoint, 'rtc_abcdef123456', '{not json')).status).toBe(400);
    expect(
      (await attach(endpoint, 'rtc_abcdef123456', { profile: 'default', extra: 1 })).status,
    ).toBe(400);
    expect(await callRecord(p, 'rtc_abcdef123456')).toBeUndefined();
  });

  it('the concurrency cap: 429 when full, and a call created at OpenAI in a race is hung up and released', async () => {
    const store = endpoint.deps.store;
    const active = await store.activeCalls();
    const capped = await startSessionEndpoint(p, { maxConcurrentSessions: active + 1 });
    const before = creates();
    const results = await Promise.all([offer(capped), offer(capped), offer(capped)]);
    const statuses = results.map((r) => r.response.status).sort();
    expect(statuses).toEqual([201, 429, 429]);
    for (const r of results.filter((r) => r.response.status === 429)) {
      expect(r.json().error.code).toBe('too_many_sessions');
      expect(r.response.headers.get('retry-after')).toBeTruthy();
    }
    // Any loser that got as far as OpenAI was hung up there, and holds no slot here.
    const raced =
      (p.simulator?.requests ?? []).slice(0).filter((r) => r.path === '/v1/realtime/calls').length -
      before;
    const hungUp = [...(p.realtime?.calls.values() ?? [])].filter(
      (c) => c.hangups > 0 && c.from === 'webrtc',
    );
    expect(hungUp.length).toBeGreaterThanOrEqual(raced - 1);
    expect(await store.activeCalls()).toBe(active + 1);
    await capped.stop();
  });

  it('open mode per-IP limit: the source address gets 429 past the limit, counted in the table', async () => {
    const limited = await startSessionEndpoint(p, { perIp: { limit: 2, windowSeconds: 60 } });
    expect((await offer(limited)).response.status).toBe(201);
    expect((await offer(limited)).response.status).toBe(201);
    const third = await offer(limited);
    expect(third.response.status).toBe(429);
    expect(third.json().error.code).toBe('rate_limited');
    const counters = await documents(p).send(
      new QueryCommand({
        TableName: p.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': 'RATE#ip#127.0.0.1' },
      }),
    );
    expect(counters.Items?.[0]).toMatchObject({ count: 2 });
    await limited.stop();
  });

  it('end_call on a WebRTC call is a /hangup, and no transfer_call is offered to the worker either', async () => {
    const { response } = await offer(endpoint);
    const callId = response.headers.get('x-call-id') ?? '';
    await waitForStatus(p, callId, ['active']);
    const realtime = p.realtime;
    if (!realtime) throw new Error('no simulator');
    // A transfer_call (the model may make one up) is refused: REFER is SIP only.
    realtime.requestTool(callId, 'transfer_call', { target: 'support' });
    await eventually(async () =>
      realtime.calls
        .get(callId)
        ?.received.some(
          (r) =>
            r.event.type === 'conversation.item.create' &&
            r.event.item?.type === 'function_call_output',
        )
        ? true
        : undefined,
    );
    // The model asks to end the call: the worker says goodbye, then POST /hangup.
    realtime.requestTool(callId, 'end_call', { reason: 'done' });
    await eventually(async () =>
      (realtime.calls.get(callId)?.hangups ?? 0) > 0 ? true : undefined,
    );
    const ended = await waitForStatus(p, callId, ['ended']);
    expect(ended.endReason).toBe('hung_up_by_agent');
    expect(realtime.calls.get(callId)?.referTarget).toBeUndefined();
  });

  it('npm start: the endpoint for state.json (sessionEndpoint) and the banner, and its demo page', async () => {
    const started = await localSessionEndpoint(p, {});
    expect(started?.state.sessionEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(started?.banner.join('\n')).toMatch(
      /WebRTC session .*\/session .*profiles default, support/,
    );
    const page = await fetch(`${started?.state.sessionEndpoint}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('app.js');
  });

  it('auth refused for each mode: without its authorizer result, the function itself answers 401', async () => {
    const before = creates();
    for (const kind of ['jwt', 'iam'] as const) {
      const guarded = await startSessionEndpoint(p, { auth: { session: kind, attach: kind } });
      const session = await offer(guarded);
      expect(session.response.status, kind).toBe(401);
      expect(session.json().error.code).toBe('unauthenticated');
      const attached = await attach(guarded, 'rtc_abcdef654321', { profile: 'default' });
      expect(attached.status, kind).toBe(401);
      await guarded.stop();
    }
    // open: no authorizer expected (the per-IP limit and throttling stand in for it).
    const open = await startSessionEndpoint(p, { auth: { session: 'open', attach: 'iam' } });
    expect((await offer(open)).response.status).toBe(201);
    expect((await attach(open, 'rtc_abcdef654321', {})).status).toBe(401);
    await open.stop();
    expect(creates()).toBe(before + 1);
    expect(await callRecord(p, 'rtc_abcdef654321')).toBeUndefined();
  });

  it('owh calls list shows each call with its channel and profile, and --channel splits them', async () => {
    // The SIP call rang 10 s ago: it lists behind the two browser sessions opened after it.
    const { call: sip } = await ring(p, { createdAt: Math.floor(Date.now() / 1000) - 10 });
    await waitForStatus(p, sip.id, ['active']);
    const { response } = await offer(endpoint, { query: '?profile=support' });
    const webrtcId = response.headers.get('x-call-id') ?? '';
    expect((await offer(endpoint)).response.status).toBe(201);
    await waitForStatus(p, webrtcId, ['active']);
    // The CLI in-process, against a state file like the one `npm start` writes.
    const stateFile = path.join(mkdtempSync(path.join(tmpdir(), 'owh-')), 'state.json');
    writeFileSync(
      stateFile,
      JSON.stringify({
        tableName: p.tableName,
        dynamoEndpoint: p.dynamoEndpoint,
        sqsEndpoint: p.sqsEndpoint,
        queues: { ...p.queues, ...(p.signalQueue ? { signals: p.signalQueue } : {}) },
      }),
    );
    const owh = async (...argv: string[]) => {
      let out = '';
      let err = '';
      const code = await runCli([...argv, '--local', '--state', stateFile], {
        out: (text) => {
          out += text;
        },
        err: (text) => {
          err += text;
        },
        interactive: false,
        progressInPlace: false,
        confirm: async () => false,
        env: {},
        now: Date.now,
      });
      return { code, out, err };
    };
    const all = await owh('calls', 'list', '--limit', '100');
    expect(all.code).toBe(0);
    const header = all.out.split('\n')[0] ?? '';
    expect(header).toMatch(/CALL\s+CHANNEL\s+PROFILE\s+STATUS/);
    const rowOf = (out: string, id: string) => out.split('\n').find((line) => line.includes(id));
    expect(rowOf(all.out, webrtcId)).toMatch(
      new RegExp(`${webrtcId}\\s+webrtc\\s+support\\s+active`),
    );
    expect(rowOf(all.out, sip.id)).toMatch(new RegExp(`${sip.id}\\s+sip\\s+default\\s+active`));
    // --channel: only that channel's calls, however many of the other there are.
    const browser = await owh('calls', 'list', '--channel', 'webrtc', '--limit', '100', '--json');
    const browserCalls = JSON.parse(browser.out) as { callId: string; channel?: string }[];
    expect(browserCalls.map((c) => c.callId)).toContain(webrtcId);
    expect(browserCalls.every((c) => c.channel === 'webrtc')).toBe(true);
    const phone = await owh('calls', 'list', '--channel', 'sip', '--json');
    const phoneCalls = JSON.parse(phone.out) as { callId: string; channel?: string }[];
    expect(phoneCalls.map((c) => c.callId)).toEqual([sip.id]);
    // A small --limit still finds the SIP call behind newer WebRTC ones (the channel is not in
    // the listing index: the filter reads on, round after round, until enough calls match).
    const one = await owh('calls', 'list', '--channel', 'sip', '--limit', '1');
    expect(one.out).toContain(sip.id);
    expect(one.out).not.toContain(webrtcId);
    const bad = await owh('calls', 'list', '--channel', 'fax');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--channel takes sip or webrtc');
    p.realtime?.callerHangsUp(sip.id);
    await waitForStatus(p, sip.id, ['ended']);
  });

  describe('faults injected for real', () => {
    /** The WebRTC calls the simulator has, by id (OpenAI's side). */
    const webRtcCalls = () =>
      new Map(
        [...(p.realtime?.calls.values() ?? [])]
          .filter((c) => c.from === 'webrtc')
          .map((c) => [c.id, c] as const),
      );

    /**
     * Signal queue unavailable after OpenAI created the call: the queue is gone (deleted on the
     * SQS emulator, which answers QueueDoesNotExist) or SQS itself is not there (a closed port).
     * The call must be hung up at OpenAI, its slot given back, its record ended, and the browser
     * told 503.
     */
    for (const fault of ['queue deleted', 'SQS unreachable'] as const) {
      it(`signal failure (${fault}): the call is hung up at OpenAI, the slot released, 503`, async () => {
        const sqs = p.sqs;
        let env: Record<string, string>;
        if (fault === 'queue deleted') {
          const created = await sqs.send(
            new CreateQueueCommand({ QueueName: `${p.tableName}-gone-signals` }),
          );
          const queueUrl = created.QueueUrl ?? '';
          await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
          env = { SIGNAL_QUEUE_URL: queueUrl };
        } else {
          env = { AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${await closedPort()}` };
        }
        const seen = collectMetrics();
        const broken = await startSessionEndpoint(p, {
          maxConcurrentSessions: 50,
          env,
          metrics: seen.metrics,
        });
        const store = broken.deps.store;
        const activeBefore = await store.activeCalls();
        const callsBefore = webRtcCalls();
        const { response, json, text } = await offer(broken, { query: '?profile=support' });
        expect(response.status).toBe(503);
        expect(json().error).toMatchObject({ code: 'unavailable' });
        expect(text).not.toContain(p.simulator?.apiKey ?? 'sk-');
        // OpenAI created exactly one call for this offer, and it was hung up there.
        const created = [...webRtcCalls().values()].filter((c) => !callsBefore.has(c.id));
        expect(created).toHaveLength(1);
        const call = created[0];
        if (!call) throw new Error('no call');
        await eventually(async () => (call.hangups > 0 ? true : undefined));
        // Its record is ended (attach_failed) and holds no slot.
        const record = await callRecord(p, call.id);
        expect(record).toMatchObject({ status: 'ended', endReason: 'attach_failed' });
        expect(await store.activeCalls()).toBe(activeBefore);
        expect(seen.names).not.toContain('WebRtcSessionsOpened');
        await broken.stop();
      });
    }

    it('signal failure (SQS accepts and never answers): one round of SDK attempts, then hang-up, release, 503', async () => {
      // A socket server that takes every connection and says nothing: each SDK attempt is cut
      // at its request timeout (2 s) and the next opens a new connection.
      const connections = { count: 0 };
      const held = new Set<Socket>();
      const stall = createServer((socket) => {
        connections.count++;
        held.add(socket);
        socket.on('close', () => held.delete(socket));
      });
      await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
      const address = stall.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      try {
        const stalled = await startSessionEndpoint(p, {
          maxConcurrentSessions: 50,
          env: { AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${port}` },
        });
        const activeBefore = await stalled.deps.store.activeCalls();
        const callsBefore = webRtcCalls();
        const { response, json } = await offer(stalled);
        expect(response.status).toBe(503);
        expect(json().error).toMatchObject({ code: 'unavailable' });
        const created = [...webRtcCalls().values()].filter((c) => !callsBefore.has(c.id));
        expect(created).toHaveLength(1);
        expect(created[0]?.hangups).toBe(1);
        expect(await stalled.deps.store.activeCalls()).toBe(activeBefore);
        // The SDK's own 3 attempts, and no second round of them (which would outlast the
        // function's timeout and leave the call up at OpenAI).
        expect(connections.count).toBe(3);
        await stalled.stop();
      } finally {
        for (const socket of held) socket.destroy();
        await new Promise<void>((resolve) => stall.close(() => resolve()));
      }
    }, 30_000);

    it('OpenAI unreachable (connection refused): 502 openai_unreachable, no secret, no call, no slot', async () => {
      const seen = collectMetrics();
      const refused = await startSessionEndpoint(p, {
        env: { OPENAI_BASE_URL: `http://127.0.0.1:${await closedPort()}/v1` },
        metrics: seen.metrics,
      });
      const activeBefore = await refused.deps.store.activeCalls();
      const before = creates();
      const { response, json, text } = await offer(refused);
      expect(response.status).toBe(502);
      expect(json().error).toMatchObject({ code: 'openai_unreachable' });
      expect(json().error.message).toMatch(/could not be reached/);
      expect(text).not.toContain(p.simulator?.apiKey ?? 'sk-');
      expect(text).not.toMatch(/Bearer|ECONNREFUSED|127\.0\.0\.1/);
      expect(seen.names).toContain('WebRtcSessionsRefused/openai_unreachable');
      expect(creates()).toBe(before);
      expect(await refused.deps.store.activeCalls()).toBe(activeBefore);
      await refused.stop();
    });

    it('OpenAI unreachable (a proxy that stalls): 502 openai_unreachable after the timeout, no slot', async () => {
      // Every byte sent to OpenAI is held for a minute: the request is never answered in time.
      const stall = await startLatencyProxy(p.openAiBaseUrl, { delayMs: 60_000 });
      try {
        const stalled = await startSessionEndpoint(p, {
          env: { OPENAI_BASE_URL: `${stall.endpoint}/v1` },
          openAiTimeoutMs: 500,
        });
        const activeBefore = await stalled.deps.store.activeCalls();
        const callsBefore = webRtcCalls().size;
        const { response, json, text } = await offer(stalled);
        expect(response.status).toBe(502);
        expect(json().error).toMatchObject({ code: 'openai_unreachable' });
        expect(text).not.toContain(p.simulator?.apiKey ?? 'sk-');
        expect(webRtcCalls().size).toBe(callsBefore);
        expect(await stalled.deps.store.activeCalls()).toBe(activeBefore);
        await stalled.stop();
      } finally {
        await stall.stop();
      }
    });
  });
});

describe('maxSessionLength in a real worker (WEBRTC_MAX_SESSION_MS, as the construct sets it)', () => {
  it('wraps a WebRTC call up at its max session length: the goodbye, then /hangup; a SIP call is not capped', async () => {
    // The cap is 2 s and the wrap-up grace 0.4 s: the worker asks for the goodbye at 1.6 s and
    // hangs up after the grace. SIP calls keep the calls config's 55-minute wrap-up.
    const p = await startPipeline({
      calls: localCallsConfig({ wrapUpGraceMs: 400 }),
      workers: 1,
      workerEnv: { ...FAST_WORKERS, WEBRTC_MAX_SESSION_MS: '2000' },
    });
    pipelines.push(p);
    const realtime = p.realtime;
    if (!realtime) throw new Error('no simulator');
    const endpoint = await startSessionEndpoint(p, { maxConcurrentSessions: 10 });
    const { call: sip } = await ring(p);
    await waitForStatus(p, sip.id, ['active']);
    const { response } = await offer(endpoint);
    expect(response.status).toBe(201);
    const callId = response.headers.get('x-call-id') ?? '';
    await waitForStatus(p, callId, ['active']);
    const ended = await waitForStatus(p, callId, ['ended']);
    expect(ended.endReason).toBe('hung_up_by_agent');
    const call = realtime.calls.get(callId);
    expect(call?.hangups).toBe(1);
    // The wrap-up response (the goodbye) went out before the /hangup.
    const log = call?.log ?? [];
    const goodbye = log.findIndex(
      (e) =>
        e.dir === 'in' &&
        e.type === 'response.create' &&
        String(e.event?.response?.instructions).includes('wrap up'),
    );
    const hangup = log.findIndex((e) => e.dir === 'api' && e.type === 'POST /hangup');
    expect(goodbye).toBeGreaterThanOrEqual(0);
    expect(hangup).toBeGreaterThan(goodbye);
    const parts = await callParts(p, callId);
    expect(parts.some((x) => x.name === 'wrap_up')).toBe(true);
    // The SIP call, older than the WebRTC one, is still up and was never asked to wrap up.
    expect((await callRecord(p, sip.id))?.status).toBe('active');
    expect((await callParts(p, sip.id)).some((x) => x.name === 'wrap_up')).toBe(false);
    expect(sip.hangups).toBe(0);
  });
});

describe('local mode with OPENAI_BASE_URL (another OpenAI than the built-in simulator)', () => {
  it('the session endpoint forwards offers to the configured base URL and the sideband attaches there', async () => {
    // A second simulator on its own port and key stands in for "real OpenAI".
    const external = new OpenAiSimulator();
    const baseUrl = await external.start();
    const externalRealtime = new RealtimeSimulator(external);
    externalRealtime.attach();
    let p: LocalPipeline | undefined;
    try {
      p = await startPipeline({
        openAiBaseUrl: baseUrl,
        openAiApiKey: external.apiKey,
        calls: localCallsConfig(),
        workers: 1,
        workerEnv: FAST_WORKERS,
      });
      // As npm start does with OPENAI_BASE_URL set: no built-in simulator at all.
      expect(p.simulator).toBeUndefined();
      expect(p.realtime).toBeUndefined();
      const started = await localSessionEndpoint(p, {});
      const response = await fetch(`${started?.state.sessionEndpoint}/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp' },
        body: SAMPLE_OFFER,
      });
      expect(response.status).toBe(201);
      const callId = response.headers.get('x-call-id') ?? '';
      // The offer went to the configured base URL, with that OpenAI's key.
      const create = external.requests.filter((r) => r.path === '/v1/realtime/calls');
      expect(create).toHaveLength(1);
      expect(create[0]?.authorization).toBe(`Bearer ${external.apiKey}`);
      const call = externalRealtime.calls.get(callId);
      expect(call?.from).toBe('webrtc');
      // The worker attached its sideband to that OpenAI: the record is active, owned, and the
      // external simulator saw the socket and the greeting's response.create.
      const record = await waitForStatus(p, callId, ['active']);
      expect(record).toMatchObject({ channel: 'webrtc', profile: 'default' });
      expect(record.owner).toBeTruthy();
      await eventually(async () =>
        call?.log.some((e) => e.dir === 'socket') &&
        externalRealtime.sentToWorker(callId).length > 0
          ? true
          : undefined,
      );
      expect(externalRealtime.sent(callId, 'response.create').length).toBeGreaterThan(0);
    } finally {
      await p?.stop();
      externalRealtime.close();
      await external.stop();
    }
  });
});
