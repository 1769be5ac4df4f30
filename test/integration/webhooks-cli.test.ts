import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStoredSecret } from '#core/webhooks/endpoint-lifecycle';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { adoptNewSecretsAtOnce, webhookEndpointState } from '../../local/webhook-endpoint-state';
import {
  npmRunSend,
  npmStart,
  type OwhRun,
  owhAgainst,
  readJson,
  type Spawned,
  spawned,
  stateFileFor,
  until,
} from '../support/local-mode';
import { post, signedDelivery, startPipeline } from '../support/webhooks';

describe('owh webhooks and owh doctor against local mode', () => {
  let p: LocalPipeline;
  let stateFile: string;
  let run: ReturnType<typeof owhAgainst>;
  const state = () => JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  const issued = new Set<string>();
  const stored = () => {
    const value = readStoredSecret(p.aws.secrets.get(String(p.env.WEBHOOK_SECRET_ID)) ?? '');
    issued.add(value.current);
    return value;
  };
  const seen: string[] = [];
  const record = (r: OwhRun) => {
    seen.push(r.out, r.err);
    return r;
  };

  beforeAll(async () => {
    // As npm start runs it (local/main.ts): a new secret is taken up at once.
    const prefix = `owhcli${randomUUID().slice(0, 8)}`;
    p = await startPipeline({
      prefix,
      decorateIngress: adoptNewSecretsAtOnce(`${prefix}/webhook-secret`),
    });
    stateFile = stateFileFor(p, { calls: false, simulator: true, ...webhookEndpointState(p) });
    run = owhAgainst(stateFile);
  });
  afterAll(async () => {
    await p?.stop();
  });

  it('registers local mode with the simulator, and the running pipeline adopts the secret at once', async () => {
    const refused = record(await run('webhooks', 'register'));
    expect(refused.code).toBe(3);
    expect(refused.err).toMatch(/pass --yes/);
    expect(p.simulator?.webhookEndpoints.endpoints.size).toBe(0);

    const registered = record(await run('webhooks', 'register', '--yes', '--json'));
    expect(registered.code).toBe(0);
    const view = JSON.parse(registered.out) as { id: string; url: string; event_types: string[] };
    expect(view.url).toBe(p.url);
    expect(view.event_types).not.toContain('realtime.call.incoming');
    const endpoint = p.simulator?.webhookEndpoints.endpoints.get(view.id);
    expect(stored().current).toBe(endpoint?.secret);
    // npm run send signs with state.json's secret: the new one.
    expect(state().webhookSecret).toBe(endpoint?.secret);

    const tested = record(await run('webhooks', 'test', '--json', '--timeout', '90'));
    expect(tested.code).toBe(0);
    const outcome = JSON.parse(tested.out) as {
      ok: boolean;
      status: string;
      statusCode: number;
      timeline: { atMs: number; what: string }[];
    };
    expect(outcome).toMatchObject({ ok: true, status: 'processed', statusCode: 200 });
    expect(outcome.timeline.map((s) => s.what)).toEqual([
      expect.stringMatching(/^test batch.completed sent/),
      'OpenAI delivered it; the webhook URL answered 200',
      expect.stringMatching(/^stored as evt_\w+ \(verified with the current secret\)$/),
      'processed',
    ]);

    const human = record(await run('webhooks', 'test', '--timeout', '90'));
    expect(human.out).toMatch(/\+\d+ ms {2}processed\nOK\n$/);
    // Each run follows its own test event, not the one the run before it sent.
    expect(human.out).not.toMatch(/\+-\d/);
    const again = JSON.parse(
      record(await run('webhooks', 'test', '--json', '--timeout', '90')).out,
    ) as { eventId: string };
    const first = (outcome as unknown as { eventId: string }).eventId;
    expect(again.eventId).toMatch(/^evt_/);
    expect(again.eventId).not.toBe(first);
  });

  it('lists, updates and rotates in two phases; both secrets verify during the overlap', async () => {
    const listed = record(await run('webhooks', 'list'));
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/whe_\w+ .*← local mode/);

    const updated = record(
      await run('webhooks', 'update', '--event-types', 'batch.completed,batch.failed', '--json'),
    );
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.out)).toMatchObject({
      event_types: ['batch.completed', 'batch.failed'],
      changed: ['event_types'],
    });
    const bad = record(await run('webhooks', 'update', '--event-types', 'realtime.call.incoming'));
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/needs calls on/);

    const old = stored().current;
    const rotated = record(await run('webhooks', 'rotate', '--json'));
    expect(rotated.code).toBe(0);
    const now = stored();
    expect(now.previous).toBe(old);
    expect(now.current).not.toBe(old);
    expect(state().webhookSecret).toBe(now.current);
    for (const secret of [old, now.current]) {
      const response = await post(p.url, signedDelivery(secret, sampleEvent('batch.completed')));
      expect(response.status).toBe(200);
    }
    const tested = record(await run('webhooks', 'test', '--timeout', '90'));
    expect(tested.code).toBe(0);
    expect(p.simulator?.webhookEndpoints.deliveries.at(-1)?.signatures).toBe(2);

    const early = record(await run('webhooks', 'rotate', '--drop-previous'));
    expect(early.code).toBe(3);
    expect(early.err).toMatch(/stays until .*--force/);
    const forced = record(await run('webhooks', 'rotate', '--drop-previous', '--force'));
    expect(forced.code).toBe(0);
    expect(stored().previous).toBeUndefined();
  });

  it('doctor passes every check it can make, then names the fix once the endpoint is gone', async () => {
    // The endpoint was narrowed to two types above: against the defaults, doctor names the fix.
    const drifted = record(await run('doctor', '--no-test'));
    expect(drifted.code).toBe(1);
    expect(drifted.out).toMatch(
      /FAIL endpoint .* is not subscribed to .*\n.*fix: owh webhooks update whe_\w+ --local --event-types batch.completed,batch.failed,/,
    );
    const healthy = record(
      await run('doctor', '--event-types', 'batch.completed,batch.failed', '--timeout', '90'),
    );
    expect(healthy.code).toBe(0);
    const lines = healthy.out.trim().split('\n');
    expect(lines.map((l) => l.slice(0, 19).trim())).toEqual([
      'ok   webhook secret',
      'ok   api key',
      'ok   webhook url',
      'ok   endpoint',
      'ok   test event',
      'skip alarm topic',
      'ok   dead letters',
      'skip sideband',
    ]);

    const id = [...(p.simulator?.webhookEndpoints.endpoints.keys() ?? [])][0] ?? '';
    const deleted = record(await run('webhooks', 'delete', id, '--yes'));
    expect(deleted.code).toBe(0);
    const broken = record(await run('doctor', '--no-test', '--json'));
    expect(broken.code).toBe(1);
    const checks = JSON.parse(broken.out) as { name: string; result: string; fix?: string }[];
    expect(checks.find((c) => c.name === 'endpoint')).toMatchObject({
      result: 'fail',
      fix: 'owh webhooks register --local',
    });
  });

  it('explains a key without permission, and registers nothing', async () => {
    const restricted = `sk-restricted-${randomUUID()}`;
    p.simulator?.webhookEndpoints.keysWithoutWebhookScope.add(restricted);
    const before = p.simulator?.webhookEndpoints.endpoints.size;
    const limited = owhAgainst(stateFile, { OPENAI_API_KEY: restricted });
    const refused = record(await limited('webhooks', 'register', '--yes'));
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/may not manage webhook endpoints.*Missing scopes: api.webhooks/);
    expect(p.simulator?.webhookEndpoints.endpoints.size).toBe(before);
    const doctor = record(await limited('doctor', '--no-test'));
    expect(doctor.out).toMatch(/FAIL api key/);
  });

  it('never prints a signing secret', () => {
    expect(issued.size).toBeGreaterThanOrEqual(2);
    for (const text of seen)
      for (const secret of issued) expect(text.includes(secret.slice('whsec_'.length))).toBe(false);
  });
});

describe('npm start, then owh webhooks register --local', () => {
  it('registers the running local mode, which takes the secret at once: test, doctor and send all pass', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'owh-register-local-'));
    const main = npmStart(dir);
    try {
      await until(
        () => (readJson(path.join(dir, 'state.json'))?.awsEndpoint ? true : undefined),
        90_000,
        () => `npm start to write its state: ${main.err()}`,
      );
      const owhBin = (...args: string[]) =>
        spawned(['bin/owh.mjs', ...args, '--local'], { OWH_LOCAL_DIR: dir });
      const said = (r: Spawned) => `${r.out()}${r.err()}`;
      const registered = owhBin('webhooks', 'register', '--yes', '--json');
      expect(await registered.exited, said(registered)).toBe(0);
      const view = JSON.parse(registered.out()) as { id: string; event_types: string[] };
      expect(view.id).toMatch(/^whe_/);
      // Calls are on in local mode: the call event is subscribed by default.
      expect(view.event_types).toContain('realtime.call.incoming');

      // A loaded machine (2 cores, several suites) can be slow: the wait is a deadline, not a sleep.
      const tested = owhBin('webhooks', 'test', '--timeout', '90');
      expect(await tested.exited, said(tested)).toBe(0);
      expect(tested.out()).toMatch(/verified with the current secret[\s\S]*processed\nOK/);

      const doctor = owhBin('doctor', '--timeout', '90');
      expect(await doctor.exited, said(doctor)).toBe(0);
      expect(doctor.out()).toMatch(/^ok {3}test event/m);

      // npm run send signs with state.json's secret, which is now the registered one.
      const send = npmRunSend(['batch.completed'], { OWH_LOCAL_DIR: dir });
      expect(await send.exited, said(send)).toBe(0);
    } finally {
      main.child.kill('SIGTERM');
      await main.exited;
    }
  }, 400_000);
});
