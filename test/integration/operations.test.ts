import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count as countPoint, type MetricPoint } from '#core/observability/metrics';
import { toMessageAttributes } from '#core/webhooks/queue-message';
import { runCli } from '../../cli/run';
import { localCallsConfig } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { callParts, ring, waitForSent, waitForStatus } from '../support/calls';
import { owhAgainst, ROOT, spawned, stateFileFor } from '../support/local-mode';
import { eventually, post, signedDelivery, startPipeline } from '../support/webhooks';

const deliverTo = async (
  p: LocalPipeline,
  type: string,
  options: { objectId?: string; createdAt?: number } = {},
) => {
  const event = sampleEvent(type, options);
  const response = await post(p.url, signedDelivery(p.webhookSecret, event));
  expect(response.status).toBe(200);
  return event;
};
const processedIn = (p: LocalPipeline, eventId: string) =>
  eventually(
    async () => {
      const event = await p.store.getEvent(eventId);
      return event?.status === 'processed' ? event : undefined;
    },
    15_000,
    `event ${eventId} processed`,
  );
const metricNames = (points: readonly MetricPoint[]) =>
  points.map((m) => (m.dimension ? `${m.name}{${m.dimension.value}}` : m.name));

describe('operations against local mode: metrics, redaction and the operator CLI', () => {
  // One pipeline (with a sideband worker) for the tests that only add events and calls of their
  // own and read back only those. Tests that need a queue to themselves (the DLQ ones) start a
  // pipeline of their own below.
  let p: LocalPipeline;
  let owh: ReturnType<typeof owhAgainst>;
  const metrics: MetricPoint[] = [];
  const handled: string[] = [];
  const own: LocalPipeline[] = [];
  /** A pipeline for one test alone: its own table and queues. */
  async function ownPipeline(options: Parameters<typeof startPipeline>[0]) {
    const started = await startPipeline(options);
    own.push(started);
    return started;
  }

  beforeAll(async () => {
    p = await startPipeline({
      metrics: (points) => metrics.push(...points),
      maxReceiveCount: 2,
      userHandlers: {
        batch: async (event) => {
          handled.push(event.eventId);
        },
      },
      calls: localCallsConfig({ redactTranscripts: true }),
      workers: 1,
      workerEnv: { LOG_LEVEL: 'info', SIGNAL_WAIT_SECONDS: '1', GAUGE_INTERVAL_MS: '300' },
    });
    owh = owhAgainst(stateFileFor(p));
  });
  afterAll(async () => {
    await Promise.all([p?.stop(), ...own.map((o) => o.stop())]);
  });

  const deliver = (type: string, options: { objectId?: string; createdAt?: number } = {}) =>
    deliverTo(p, type, options);
  const processed = (eventId: string) => processedIn(p, eventId);

  it('emits the documented metrics from the ingress and the consumers', async () => {
    const from = metrics.length;
    const event = await deliver('batch.completed');
    await processed(event.id);
    await post(p.url, { headers: { 'content-type': 'application/json' }, body: '{}' });
    // The consumer publishes its metrics just after it marks the event processed.
    await eventually(
      async () => metricNames(metrics.slice(from)).includes('EventLatency{batch}') || undefined,
      5000,
      'the consumer metrics',
    );
    const names = metricNames(metrics.slice(from));
    expect(names).toEqual(
      expect.arrayContaining([
        'WebhooksReceived',
        'WebhooksVerified',
        'SecretMatched{current}',
        'WebhooksAccepted{batch}',
        'AckLatency',
        'EventsProcessed{batch}',
        'ProcessingTime{batch}',
        'EventLatency{batch}',
        'WebhooksRejected{missing_header}',
      ]),
    );
  });

  it('lists, filters and shows events, and shows an object state with its history', async () => {
    const objectId = `batch_cli_${randomBytes(6).toString('hex')}`;
    const older = await deliver('batch.in_progress', {
      objectId,
      createdAt: Math.floor(Date.now() / 1000) - 60,
    });
    const newer = await deliver('batch.completed', { objectId });
    const job = await deliver('fine_tuning.job.succeeded');
    await Promise.all([older, newer, job].map((e) => processed(e.id)));

    const all = await owh('events', 'list', '--json', '--limit', '50');
    expect(all.code).toBe(0);
    const ids = (JSON.parse(all.out) as { eventId: string }[]).map((e) => e.eventId);
    expect(ids).toEqual(expect.arrayContaining([older.id, newer.id, job.id]));
    expect(ids.indexOf(newer.id)).toBeLessThan(ids.indexOf(older.id));

    const batches = JSON.parse(
      (await owh('events', 'list', '--category', 'batch', '--json', '--limit', '50')).out,
    ) as { category: string }[];
    expect(batches.every((e) => e.category === 'batch')).toBe(true);
    const byPrefix = JSON.parse(
      (await owh('events', 'list', '--type', 'fine_tuning.*', '--json')).out,
    ) as { eventId: string; type: string }[];
    // Of this test's events, only the job; and nothing else that is not fine_tuning.*.
    const mine = new Set([older.id, newer.id, job.id]);
    expect(byPrefix.map((e) => e.eventId).filter((id) => mine.has(id))).toEqual([job.id]);
    expect(byPrefix.every((e) => e.type.startsWith('fine_tuning.'))).toBe(true);
    const recent = JSON.parse((await owh('events', 'list', '--since', '30s', '--json')).out) as {
      eventId: string;
    }[];
    expect(recent.map((e) => e.eventId)).not.toContain(older.id);

    const human = await owh('events', 'list', '--status', 'processed');
    expect(human.out).toMatch(/^CREATED\s+EVENT\s+TYPE\s+CATEGORY\s+STATUS/);
    expect(human.out).toContain(job.id);

    const shown = await owh('events', 'show', newer.id);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('batch.completed (category batch)');
    expect(shown.out).toContain(`"id": "${objectId}"`);

    const state = await owh('state', objectId);
    expect(state.code).toBe(0);
    expect(state.out).toContain('Status   completed');
    expect(state.out).toMatch(/in_progress[\s\S]*completed/);
    const stateJson = JSON.parse((await owh('state', objectId, '--json')).out);
    expect(stateJson.history.map((t: { status: string }) => t.status)).toEqual([
      'in_progress',
      'completed',
    ]);
  });

  it('says when more events exist and pages through them with --before', async () => {
    // A type of its own (an unknown type lands in `other`), so the pages hold only these.
    const type = `paging.${randomBytes(4).toString('hex')}`;
    const now = Math.floor(Date.now() / 1000);
    const events = [];
    for (let i = 0; i < 5; i++) events.push(await deliver(type, { createdAt: now - 10 + i }));
    await Promise.all(events.map((e) => processed(e.id)));
    const newestFirst = events.map((e) => e.id).reverse();

    const first = await owh('events', 'list', '--type', type, '--limit', '2');
    expect(first.code).toBe(0);
    const more = /More events: add --before (\S+)/.exec(first.out);
    expect(more, first.out).not.toBeNull();
    expect(first.out).toContain(newestFirst[0]);
    expect(first.out).toContain(newestFirst[1]);
    expect(first.out).not.toContain(newestFirst[2]);

    // --json stays an array on stdout; the next page's cursor goes to stderr.
    const firstJson = await owh('events', 'list', '--type', type, '--limit', '2', '--json');
    expect((JSON.parse(firstJson.out) as { eventId: string }[]).map((e) => e.eventId)).toEqual(
      newestFirst.slice(0, 2),
    );
    expect(firstJson.err).toContain(`--before ${more?.[1]}`);

    const pages: string[] = [];
    let before: string | undefined = more?.[1];
    while (before) {
      const page = await owh(
        'events',
        'list',
        '--type',
        type,
        '--limit',
        '2',
        '--json',
        '--before',
        before,
      );
      expect(page.code).toBe(0);
      pages.push(...(JSON.parse(page.out) as { eventId: string }[]).map((e) => e.eventId));
      before = /--before (\S+)/.exec(page.err)?.[1];
    }
    expect(pages).toEqual(newestFirst.slice(2));
    const last = await owh('events', 'list', '--type', type, '--limit', '5');
    expect(last.out).not.toContain('More events');

    const bad = await owh('events', 'list', '--before', 'yesterday');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--before takes');
  });

  it('prints pure JSON on stdout when run the README way: npx owh, npm run --silent owh', async () => {
    await processed((await deliver('batch.completed')).id);
    const stateFile = stateFileFor(p);
    const run = async (command: string, args: string[]) => {
      const child = spawned(args, {}, { command });
      return { code: await child.exited, out: child.out(), err: child.err() };
    };
    const owhArgs = ['events', 'list', '--local', '--state', stateFile, '--json', '--limit', '1'];
    for (const [command, args] of [
      ['npx', ['owh', ...owhArgs]],
      ['npm', ['run', '--silent', 'owh', '--', ...owhArgs]],
    ] as const) {
      const result = await run(command, [...args]);
      expect(result.code, `${command} ${args.join(' ')}: ${result.err}`).toBe(0);
      expect(JSON.parse(result.out)).toHaveLength(1);
    }
    // Why the README says so: plain `npm run` prints its "> script" banner on stdout.
    const plain = await run('npm', ['run', 'owh', '--', ...owhArgs]);
    expect(plain.out).toContain('> openai-webhooks-cdk@');
  });

  it('refuses a replay of a processed event, then runs it again when forced', async () => {
    const event = await deliver('batch.failed');
    await processed(event.id);
    const before = handled.filter((id) => id === event.id).length;
    expect(before).toBe(1);

    const refused = await owh('replay', event.id);
    expect(refused.code).toBe(3);
    expect(refused.err).toContain(`Replay ${event.id}`);
    expect(refused.err).toContain('Refused');
    expect(refused.err).toContain('--force');

    const unconfirmed = await owh('replay', event.id, '--force');
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.err).toContain('--yes');

    const forced = await owh('replay', event.id, '--force', '--yes', '--json');
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.out)).toMatchObject({ result: 'queued', forced: true });
    await eventually(async () =>
      handled.filter((id) => id === event.id).length === 2 ? true : undefined,
    );
  });

  it('redrives a seeded DLQ back to its queue, with progress and a final count', async () => {
    // Its own pipeline: the counts below are of this DLQ's messages alone.
    const p = await ownPipeline({});
    const owh = owhAgainst(stateFileFor(p));
    const processed = (eventId: string) => processedIn(p, eventId);
    const queue = p.queues.batch;
    const events = ['batch.completed', 'batch.expired', 'batch.cancelled'].map((type) =>
      sampleEvent(type),
    );
    for (const event of events) {
      const body = JSON.stringify(event);
      await p.sqs.send(
        new SendMessageCommand({
          QueueUrl: queue.dlqUrl,
          MessageBody: body,
          MessageAttributes: toMessageAttributes({
            webhookId: `wh_${event.id}`,
            eventId: event.id,
            type: event.type,
            category: 'batch',
            receivedAt: Date.now(),
            secretLabel: 'current',
          }),
        }),
      );
    }
    const run = await owh('redrive', 'batch', '--yes');
    expect(run.code).toBe(0);
    expect(run.err).toContain('move 3 message(s)');
    expect(run.err).toContain('3/3');
    expect(run.out).toContain('Moved 3 message(s)');
    await Promise.all(events.map((e) => processed(e.id)));
    const { Attributes } = await p.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queue.dlqUrl,
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    expect(Attributes?.ApproximateNumberOfMessages).toBe('0');
    const empty = await owh('redrive', 'batch', '--yes', '--json');
    expect(JSON.parse(empty.out)).toEqual({ queue: 'batch', moved: 0, failed: 0 });
  });

  it('dead-letters a failing event that the operator can find and redrive after the fix', async () => {
    // Its own pipeline: the DLQ depth below is of this event alone, and the failing handler
    // fails no other test's events.
    const metrics: MetricPoint[] = [];
    let failBatch = true;
    const p = await ownPipeline({
      metrics: (points) => metrics.push(...points),
      maxReceiveCount: 2,
      userHandlers: {
        batch: async () => {
          if (failBatch) throw new Error('handler down');
        },
      },
    });
    const owh = owhAgainst(stateFileFor(p));
    const event = await deliverTo(p, 'batch.completed');
    await eventually(
      async () => {
        const failed = JSON.parse(
          (await owh('events', 'list', '--status', 'failed', '--json')).out,
        ) as { eventId: string }[];
        const depth = await p.sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: p.queues.batch.dlqUrl,
            AttributeNames: ['ApproximateNumberOfMessages'],
          }),
        );
        return failed.some((e) => e.eventId === event.id) &&
          depth.Attributes?.ApproximateNumberOfMessages === '1'
          ? true
          : undefined;
      },
      20_000,
      'the event in the DLQ',
    );
    failBatch = false;
    const run = await owh('redrive', 'batch', '--yes');
    expect(run.out).toContain('Moved 1 message(s)');
    await processedIn(p, event.id);
    expect(metrics).toContainEqual(
      countPoint('ProcessingFailures', { name: 'Category', value: 'batch' }),
    );
  });

  it('lists and shows a call with its timeline, redacted transcript, tool calls and usage', async () => {
    const { call } = await ring(p);
    await waitForStatus(p, call.id, ['active']);
    await waitForSent(call, 'response.create');
    p.realtime?.callerSays(call.id, 'My number is +44 20 7946 0958, order 1234.');
    p.realtime?.requestTool(call.id, 'lookup_order', { order_number: '1234' });
    await waitForSent(call, 'conversation.item.create');
    // The recorder flushes every second: wait until the transcript line and the tool call are
    // stored before the caller hangs up.
    await eventually(
      async () => {
        const parts = await callParts(p, call.id);
        return parts.some((x) => x.kind === 'transcript' && x.role === 'caller') &&
          parts.some((x) => x.kind === 'tool' && x.status === 'done')
          ? true
          : undefined;
      },
      10_000,
      'the transcript and the tool call stored',
    );
    p.realtime?.callerHangsUp(call.id);
    await waitForStatus(p, call.id, ['ended']);

    const list = await owh('calls', 'list');
    expect(list.code).toBe(0);
    expect(list.out).toContain(call.id);
    expect(list.out).toContain('caller_hung_up');
    expect(list.out).not.toContain('4155550123');
    expect(list.out).toContain('+***23');
    const revealed = JSON.parse((await owh('calls', 'list', '--json', '--show-numbers')).out) as {
      callId: string;
      from: string;
    }[];
    expect(revealed.find((c) => c.callId === call.id)?.from).toBe('+14155550123');

    const shown = await owh('calls', 'show', call.id);
    expect(shown.code).toBe(0);
    for (const step of [
      'webhook received',
      'accepted',
      'sideband attached',
      'ended: caller_hung_up',
    ])
      expect(shown.out).toContain(step);
    expect(shown.out).toMatch(/caller: My number is .*order/);
    // Redaction on: the stored transcript holds no caller number.
    expect(shown.out).not.toContain('7946');
    // Redaction covers tool arguments and outputs too (issue 12): the order number is masked.
    expect(shown.out).toMatch(/lookup_order\(.*\[number\].*\) → .*shipped.*\[done, \d+ ms\]/);
    expect(shown.out).not.toMatch(/lookup_order\(.*1234/);
    const view = JSON.parse((await owh('calls', 'show', call.id, '--json')).out);
    expect(view.tools).toHaveLength(1);
    expect(view.record.from).toBe('+***23');

    // Call metrics: the incoming-call handler's (in-process) and the worker's (EMF on stdout).
    const names = metrics.map((m) => m.name);
    expect(names).toEqual(
      expect.arrayContaining(['CallsIncoming', 'CallsAccepted', 'AcceptLatency']),
    );
    const worker = p.workers[0];
    const emf = await eventually(async () => {
      const records = (worker?.logs ?? [])
        .filter((line) => line.includes('"_aws"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      return records.some((r) => 'CallsEnded' in r) &&
        records.some((r) => 'AccountActiveCalls' in r)
        ? records
        : undefined;
    });
    const ended = emf.find((r) => 'CallsEnded' in r);
    expect(ended).toMatchObject({ Stack: 'local', EndReason: 'caller_hung_up', CallsEnded: 1 });
    expect(emf.find((r) => 'ToolCalls' in r)).toMatchObject({ Tool: 'lookup_order' });
    expect(emf.some((r) => 'AttachLatency' in r)).toBe(true);
    expect(emf.find((r) => 'CallDuration' in r)?._aws).toMatchObject({
      CloudWatchMetrics: expect.arrayContaining([
        {
          Namespace: 'OpenAiWebhooks',
          Dimensions: [['Stack']],
          Metrics: [{ Name: 'CallDuration', Unit: 'Seconds' }],
        },
      ]),
    });
    // The worker's logs never carry the caller's number in clear.
    const logs = (worker?.logs ?? []).join('\n');
    expect(logs).not.toContain('4155550123');
    expect(logs).not.toContain('7946 0958');
  });

  it('answers bad arguments and missing things with a clear message and exit code', async () => {
    const none = await runCli(['events', 'list'], {
      out: () => undefined,
      err: () => undefined,
      interactive: false,
      progressInPlace: false,
      confirm: async () => false,
      env: {},
      now: Date.now,
    });
    expect(none).toBe(2);
    const cases: [string[], number, RegExp][] = [
      [['frobnicate'], 2, /Unknown command "frobnicate"/],
      [['events'], 2, /events takes list or show/],
      [['events', 'list', '--category', 'nope'], 2, /--category must be one of/],
      [['events', 'list', '--since', 'yesterday'], 2, /--since takes a duration/],
      [['events', 'list', '--limit', '0'], 2, /--limit must be a positive integer/],
      [['events', 'list', '--bogus'], 2, /Unknown option '--bogus'/],
      [['events', 'show'], 2, /events show needs an event id/],
      [['events', 'show', 'evt_missing'], 1, /No event evt_missing in local mode/],
      [['state', 'batch_missing'], 1, /No state for object batch_missing/],
      [['calls', 'show', 'rtc_missing'], 1, /No call rtc_missing/],
      [['redrive', 'nope', '--yes'], 2, /No queue "nope"/],
      [['replay', 'evt_missing', '--yes'], 1, /No event evt_missing/],
      [['state', 'a', 'b'], 2, /Unexpected argument "b"/],
    ];
    for (const [argv, code, message] of cases) {
      const run = await owh(...argv);
      expect(run.code, argv.join(' ')).toBe(code);
      expect(run.err, argv.join(' ')).toMatch(message);
    }
    const missingState = await owhAgainst(path.join(tmpdir(), 'no-such-dir', 'state.json'))(
      'events',
      'list',
    );
    expect(missingState.code).toBe(1);
    expect(missingState.err).toContain('local mode is not running: start it with `npm start`');

    // A state file left by an `npm start` that is gone (its pid is not alive): the same answer,
    // not a connection error from its dead endpoints.
    const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((resolve) => gone.once('exit', resolve));
    const staleFile = path.join(mkdtempSync(path.join(tmpdir(), 'owh-stale-')), 'state.json');
    writeFileSync(
      staleFile,
      JSON.stringify({
        tableName: 'local-events',
        dynamoEndpoint: 'http://127.0.0.1:9',
        sqsEndpoint: 'http://127.0.0.1:9',
        queues: {},
        pid: gone.pid,
      }),
    );
    const stale = await owhAgainst(staleFile)('events', 'list');
    expect(stale.code).toBe(1);
    expect(stale.err).toBe(
      `owh: local mode is not running: start it with \`npm start\` (${staleFile} was left by process ${gone.pid}, which has exited).\n`,
    );
  });

  it('finds a deployed stack through its OperatorConfig output, and says when the stack is missing', async () => {
    // At least one event to list, whatever the other tests did.
    await processed((await deliver('batch.completed')).id);
    p.aws.stacks.set('Prod', {
      OperatorConfig: JSON.stringify({ tableName: p.tableName, queues: p.queues }),
    });
    process.env.AWS_ENDPOINT_URL_CLOUDFORMATION = p.aws.endpoint;
    try {
      const viaStack = await owh('--stack', 'Prod', 'events', 'list', '--json', '--limit', '1');
      expect(viaStack.code).toBe(0);
      expect(JSON.parse(viaStack.out)).toHaveLength(1);
    } finally {
      delete process.env.AWS_ENDPOINT_URL_CLOUDFORMATION;
    }

    // The installed bin, as an operator runs it.
    const missing = spawned([path.join(ROOT, 'bin/owh.mjs'), 'events', 'list'], {
      OWH_STACK: 'Missing',
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL_CLOUDFORMATION: p.aws.endpoint,
    });
    expect(await missing.exited).toBe(1);
    expect(missing.err()).toContain('Stack Missing was not found in eu-west-1');
  });
});
