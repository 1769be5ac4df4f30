import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiWebhookEndpoints } from '#adapters/openai-webhook-endpoints';
import { CachedSecret, SecretsManagerSource } from '#adapters/secrets-manager-source';
import { SecretsManagerWebhookSecret } from '#adapters/secrets-manager-webhook-secret';
import { createLogger } from '#core/observability/logger';
import { readStoredSecret } from '#core/webhooks/endpoint-lifecycle';
import { parseWebhookSecrets } from '#core/webhooks/signature';
import {
  createHandler,
  type EndpointProperties,
  handler as lambdaHandler,
  NOT_REGISTERED,
} from '../../lambdas/webhook-endpoint/handler';
import {
  createRotationHandler,
  type RotationDeps,
} from '../../lambdas/webhook-secret-rotation/handler';
import { awsJsonFake, type LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { type AwsJsonFake, startAwsJsonFake } from '../../local/stand-ins/aws-json-fake';
import { OpenAiSimulator } from '../../local/stand-ins/openai-simulator';
import { secretVersions } from '../../local/stand-ins/secrets-manager-versions';
import { eventually, post, signedDelivery, startPipeline } from '../support/webhooks';

const HOUR = 3600_000;

/** A receiver that verifies with the openai SDK's own `webhooks.unwrap`. */
async function sdkReceiver(secret: () => string) {
  const received: { type: string; ok: boolean; signatures: number }[] = [];
  const sdk = new OpenAI({ apiKey: 'unused' });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const signatures = String(req.headers['webhook-signature'] ?? '').split(' ').length;
      try {
        const event = await sdk.webhooks.unwrap(
          body,
          req.headers as Record<string, string>,
          secret(),
        );
        received.push({ type: event.type, ok: true, signatures });
        res.writeHead(200).end();
      } catch {
        received.push({ type: 'unverified', ok: false, signatures });
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => server.close() };
}

describe('the simulator’s /v1/webhook_endpoints, driven by the openai SDK', () => {
  const sim = new OpenAiSimulator();
  let client: OpenAI;
  beforeAll(async () => {
    client = new OpenAI({ apiKey: sim.apiKey, baseURL: await sim.start(), maxRetries: 0 });
  });
  afterAll(() => sim.stop());

  it('creates, retrieves, updates, lists, tests, rotates and deletes an endpoint', async () => {
    let secret = '';
    const receiver = await sdkReceiver(() => secret);
    try {
      const created = await client.webhooks.create({
        url: receiver.url,
        name: 'orders',
        event_types: ['batch.completed', 'response.completed'],
      });
      expect(created).toMatchObject({
        object: 'webhook_endpoint',
        name: 'orders',
        url: receiver.url,
        event_types: ['batch.completed', 'response.completed'],
      });
      expect(created.id).toMatch(/^whe_/);
      expect(created.signing_secret).toMatch(/^whsec_/);
      secret = created.signing_secret;

      const read = await client.webhooks.retrieve(created.id);
      expect(read).not.toHaveProperty('signing_secret');
      expect(read.signing_secret_hint?.endsWith(secret.slice(-4))).toBe(true);

      // An unchanged update does not move updated_at; event_types replaces the set.
      const same = await client.webhooks.update(created.id, { name: 'orders' });
      expect(same.updated_at).toBe(created.updated_at);
      const updated = await client.webhooks.update(created.id, { event_types: ['batch.failed'] });
      expect(updated.event_types).toEqual(['batch.failed']);

      // The SDK's paging follows has_more/after across pages, newest first.
      const more = await client.webhooks.create({
        url: receiver.url,
        name: 'second',
        event_types: ['batch.failed'],
      });
      const ids: string[] = [];
      for await (const endpoint of client.webhooks.list({ limit: 1 })) ids.push(endpoint.id);
      expect(ids).toEqual([more.id, created.id]);

      // test delivers a real signed event, which the SDK's verifier accepts.
      const result = await client.webhooks.test(created.id, { event_type: 'batch.completed' });
      expect(result).toEqual({
        object: 'webhook_endpoint.test',
        event_type: 'batch.completed',
        status_code: 200,
        success: true,
        webhook_endpoint_id: created.id,
      });
      expect(receiver.received.at(-1)).toEqual({
        type: 'batch.completed',
        ok: true,
        signatures: 1,
      });

      // Rotation keeping the old secret: both sign; the old one alone still verifies.
      const old = secret;
      const rotated = await client.webhooks.rotateSecret(created.id, {
        keep_old_secret_active_for_24_hours: true,
      });
      expect(rotated.signing_secret).not.toBe(old);
      await client.webhooks.test(created.id, { event_type: 'batch.completed' });
      expect(receiver.received.at(-1)).toMatchObject({ ok: true, signatures: 2 });
      secret = rotated.signing_secret;
      await client.webhooks.test(created.id, { event_type: 'batch.completed' });
      expect(receiver.received.at(-1)).toMatchObject({ ok: true, signatures: 2 });
      // Without keeping it, the old one stops at once.
      const again = await client.webhooks.rotateSecret(created.id);
      await client.webhooks.test(created.id, { event_type: 'batch.completed' });
      expect(receiver.received.at(-1)).toMatchObject({ ok: false, signatures: 1 });
      secret = again.signing_secret;

      const deleted = await client.webhooks.delete(created.id);
      expect(deleted).toEqual({
        id: created.id,
        deleted: true,
        object: 'webhook_endpoint.deleted',
      });
      await expect(client.webhooks.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
      expect((await client.webhooks.eventTypes.list()).data).toContain('realtime.call.incoming');
    } finally {
      receiver.close();
    }
  });

  it('refuses what the SDK types do not allow', async () => {
    const bad = (body: unknown) =>
      client.webhooks.create(body as Parameters<OpenAI['webhooks']['create']>[0]);
    await expect(
      bad({ url: 'https://example.com/h', name: 'x', event_types: ['batch.exploded'] }),
    ).rejects.toMatchObject({ status: 400, param: 'event_types' });
    await expect(
      bad({ url: 'http://example.com/h', name: 'x', event_types: ['batch.failed'] }),
    ).rejects.toMatchObject({ status: 400, param: 'url' });
    await expect(bad({ url: 'https://example.com/h', name: 'x' })).rejects.toMatchObject({
      status: 400,
      param: 'event_types',
    });
    await expect(
      client.webhooks.test('whe_missing', { event_type: 'batch.failed' }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it('answers a key without the webhook scope with OpenAI’s 401 shape', async () => {
    const restricted = `sk-restricted-${randomUUID()}`;
    sim.webhookEndpoints.keysWithoutWebhookScope.add(restricted);
    const limited = new OpenAI({ apiKey: restricted, baseURL: sim.baseUrl, maxRetries: 0 });
    const error = await limited.webhooks
      .create({ url: 'https://example.com/h', name: 'x', event_types: ['batch.failed'] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((error as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({
      type: 'invalid_request_error',
      code: null,
      message: expect.stringMatching(/^You have insufficient permissions.*Missing scopes/),
    });
  });
});

describe('the webhook endpoint custom resource, against the simulator', () => {
  const sim = new OpenAiSimulator();
  let aws: AwsJsonFake;
  let secrets: SecretsManagerClient;
  const logs: string[] = [];
  const answers: Record<string, unknown>[] = [];
  let apiKey = sim.apiKey;
  let handler: ReturnType<typeof createHandler>;

  beforeAll(async () => {
    await sim.start();
    aws = await startAwsJsonFake();
    secretVersions(aws);
    secrets = new SecretsManagerClient({
      endpoint: aws.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    handler = createHandler(
      {
        endpoints: new OpenAiWebhookEndpoints({ baseUrl: sim.baseUrl, apiKey: async () => apiKey }),
        secretStore: (id) => new SecretsManagerWebhookSecret(secrets, id),
        log: createLogger({ service: 'webhook-endpoint', sink: (line) => logs.push(line) }),
        now: Date.now,
      },
      (async (_url: string, init: { body: string }) => {
        answers.push(JSON.parse(init.body) as Record<string, unknown>);
        return new Response(null, { status: 200 });
      }) as unknown as typeof fetch,
    );
  });
  afterAll(async () => {
    secrets.destroy();
    await Promise.all([sim.stop(), aws.stop()]);
  });

  const props = (over: Partial<EndpointProperties> = {}): EndpointProperties => ({
    Url: 'https://abc.lambda-url.eu-west-1.on.aws/',
    Name: 'stack-webhooks',
    EventTypes: ['batch.completed', 'batch.failed'],
    WebhookSecretId: 'stack/webhook-secret',
    ...over,
  });
  const event = (
    type: 'Create' | 'Update' | 'Delete',
    properties: EndpointProperties,
    extra: Record<string, unknown> = {},
  ) =>
    ({
      RequestType: type,
      ServiceToken: 'arn:aws:lambda:eu-west-1:1:function:x',
      ResponseURL: 'https://cloudformation-custom-resource-response.example/signed',
      StackId: 'arn:aws:cloudformation:eu-west-1:1:stack/s/1',
      RequestId: randomUUID(),
      LogicalResourceId: 'Endpoint',
      ResourceType: 'Custom::OpenAiWebhookEndpoint',
      ResourceProperties: { ServiceToken: 'x', ...properties },
      ...extra,
    }) as unknown as CloudFormationCustomResourceEvent;
  const stored = () => aws.secrets.get('stack/webhook-secret') ?? '';

  it('creates, updates and deletes the endpoint; the secret goes to Secrets Manager only', async () => {
    aws.secrets.set('stack/webhook-secret', 'placeholder');
    await handler(event('Create', props()));
    const created = answers.at(-1) ?? {};
    expect(created).toMatchObject({ Status: 'SUCCESS', NoEcho: true });
    expect(created).not.toHaveProperty('Data');
    const id = String(created.PhysicalResourceId);
    const endpoint = sim.webhookEndpoints.endpoints.get(id);
    expect(endpoint?.event_types).toEqual(['batch.completed', 'batch.failed']);
    expect(readStoredSecret(stored()).current).toBe(endpoint?.secret);

    await handler(
      event(
        'Update',
        props({ Url: 'https://def.lambda-url.eu-west-1.on.aws/', EventTypes: ['batch.failed'] }),
        {
          PhysicalResourceId: id,
          OldResourceProperties: props(),
        },
      ),
    );
    expect(answers.at(-1)).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: id });
    expect(sim.webhookEndpoints.endpoints.get(id)).toMatchObject({
      url: 'https://def.lambda-url.eu-west-1.on.aws/',
      event_types: ['batch.failed'],
    });

    await handler(event('Delete', props(), { PhysicalResourceId: id }));
    expect(answers.at(-1)).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: id });
    expect(sim.webhookEndpoints.endpoints.has(id)).toBe(false);

    // Every answer and log line: never a secret.
    const secret = endpoint?.secret ?? 'none';
    for (const text of [...logs, ...answers.map((a) => JSON.stringify(a))]) {
      expect(text).not.toContain(secret);
      expect(text).not.toMatch(/whsec_/);
    }
  });

  it('keeps a retained endpoint on delete, and re-registers one deleted at OpenAI', async () => {
    aws.secrets.set('stack/webhook-secret', 'placeholder');
    await handler(event('Create', props()));
    const id = String(answers.at(-1)?.PhysicalResourceId);
    await handler(event('Delete', props({ Retain: 'true' }), { PhysicalResourceId: id }));
    expect(sim.webhookEndpoints.endpoints.has(id)).toBe(true);
    sim.webhookEndpoints.endpoints.delete(id);
    await handler(
      event('Update', props(), { PhysicalResourceId: id, OldResourceProperties: props() }),
    );
    const again = answers.at(-1) ?? {};
    expect(again).toMatchObject({ Status: 'SUCCESS' });
    expect(again.PhysicalResourceId).not.toBe(id);
    expect(sim.webhookEndpoints.endpoints.has(String(again.PhysicalResourceId))).toBe(true);
  });

  it('moves the endpoint to another secret by rotating, the old secret kept as previous', async () => {
    aws.secrets.set('stack/webhook-secret', 'placeholder');
    aws.secrets.set('stack/other-secret', 'placeholder');
    await handler(event('Create', props()));
    const id = String(answers.at(-1)?.PhysicalResourceId);
    const first = readStoredSecret(stored()).current;
    await handler(
      event('Update', props({ WebhookSecretId: 'stack/other-secret' }), {
        PhysicalResourceId: id,
        OldResourceProperties: props(),
      }),
    );
    expect(answers.at(-1)).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: id });
    const moved = readStoredSecret(aws.secrets.get('stack/other-secret') ?? '');
    expect(moved.previous).toBe(first);
    expect(moved.current).toBe(sim.webhookEndpoints.endpoints.get(id)?.secret);
  });

  it('fails a key without permission with a clear reason, registering nothing', async () => {
    const before = sim.webhookEndpoints.endpoints.size;
    apiKey = `sk-restricted-${randomUUID()}`;
    sim.webhookEndpoints.keysWithoutWebhookScope.add(apiKey);
    try {
      await handler(event('Create', props()));
    } finally {
      apiKey = sim.apiKey;
    }
    const answer = answers.at(-1) ?? {};
    expect(answer).toMatchObject({ Status: 'FAILED', PhysicalResourceId: NOT_REGISTERED });
    expect(String(answer.Reason)).toMatch(
      /OpenAI refused to register .* may not manage webhook endpoints.*Missing scopes/,
    );
    expect(sim.webhookEndpoints.endpoints.size).toBe(before);
    // The rollback's delete of a resource that was never registered succeeds without a call.
    await handler(event('Delete', props(), { PhysicalResourceId: NOT_REGISTERED }));
    expect(answers.at(-1)).toMatchObject({ Status: 'SUCCESS' });
  });

  it('answers CloudFormation at its URL even when the function cannot start', async () => {
    // The real PUT to the pre-signed URL, here a loopback server; the environment lacks the key's id.
    const received: { method?: string; contentType?: string; body: string }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({
          ...(req.method ? { method: req.method } : {}),
          ...(req.headers['content-type'] !== undefined
            ? { contentType: req.headers['content-type'] }
            : {}),
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const create = event('Create', props()) as unknown as Record<string, unknown>;
      await lambdaHandler({
        ...create,
        ResponseURL: `http://127.0.0.1:${port}/signed?X-Amz-Signature=x`,
      } as unknown as CloudFormationCustomResourceEvent);
      expect(received).toHaveLength(1);
      expect(received[0]?.method).toBe('PUT');
      expect(JSON.parse(received[0]?.body ?? '{}')).toMatchObject({
        Status: 'FAILED',
        Reason: expect.stringMatching(/OPENAI_API_KEY_SECRET_ID is required/),
        PhysicalResourceId: NOT_REGISTERED,
        LogicalResourceId: 'Endpoint',
        NoEcho: true,
      });
    } finally {
      server.close();
    }
  });

  it('deletes the endpoint again when the secret cannot be written', async () => {
    const before = sim.webhookEndpoints.endpoints.size;
    await handler(event('Create', props({ WebhookSecretId: 'no-such-secret' })));
    const answer = answers.at(-1) ?? {};
    expect(answer).toMatchObject({ Status: 'FAILED' });
    expect(String(answer.Reason)).toMatch(
      /Could not write the signing secret into .*no-such-secret/,
    );
    expect(sim.webhookEndpoints.endpoints.size).toBe(before);
  });
});

describe('scheduled rotation, verified by the real ingress', () => {
  let p: LocalPipeline;
  let secrets: SecretsManagerClient;
  let offset = 0;
  const now = () => Date.now() + offset;

  beforeAll(async () => {
    const fake = await awsJsonFake();
    p = await startPipeline({
      // The ingress's own loader and verifier, without the 5-minute cache and the 30-second
      // limit on forced reloads, so each step's stored value is what the next delivery meets.
      decorateIngress: (deps) => {
        const source = new SecretsManagerSource(
          new SecretsManagerClient({
            endpoint: fake.endpoint,
            region: 'us-east-1',
            credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
          }),
        );
        return {
          ...deps,
          secrets: new CachedSecret(
            async () =>
              parseWebhookSecrets(await source.getSecretString(String(p.env.WEBHOOK_SECRET_ID))),
            0,
            Date.now,
            0,
          ),
        };
      },
    });
    secretVersions(p.aws);
    secrets = new SecretsManagerClient({
      endpoint: p.aws.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
  });
  afterAll(async () => {
    secrets?.destroy();
    await p?.stop();
  });

  it('accepts old and new secrets during the overlap, and only the new one after 24 h', async () => {
    const sim = p.simulator;
    if (!sim) throw new Error('the pipeline has no simulator');
    sim.webhookEndpoints.now = now;
    const secretId = String(p.env.WEBHOOK_SECRET_ID);
    const endpoints = new OpenAiWebhookEndpoints({
      baseUrl: p.openAiBaseUrl,
      apiKey: async () => sim.apiKey,
    });
    const store = new SecretsManagerWebhookSecret(secrets, secretId);
    const answers: Record<string, unknown>[] = [];
    const register = createHandler(
      {
        endpoints,
        secretStore: (id) => new SecretsManagerWebhookSecret(secrets, id),
        log: createLogger({ service: 't', sink: () => undefined }),
        now,
      },
      (async (_u: string, init: { body: string }) => {
        answers.push(JSON.parse(init.body));
        return new Response(null, { status: 200 });
      }) as unknown as typeof fetch,
    );
    await register({
      RequestType: 'Create',
      ResponseURL: 'https://example/x',
      StackId: 's',
      RequestId: 'r',
      LogicalResourceId: 'Endpoint',
      ResourceType: 'Custom::OpenAiWebhookEndpoint',
      ServiceToken: 'x',
      ResourceProperties: {
        ServiceToken: 'x',
        Url: p.url,
        Name: 'local',
        EventTypes: ['batch.completed'],
        WebhookSecretId: secretId,
      },
    } as CloudFormationCustomResourceEvent);
    const endpointId = String(answers.at(-1)?.PhysicalResourceId);
    expect(endpointId).toMatch(/^whe_/);
    const first = readStoredSecret(p.aws.secrets.get(secretId) ?? '').current;

    // OpenAI's test event reaches the ingress, verified with the registered secret.
    expect((await endpoints.test(endpointId, 'batch.completed')).status_code).toBe(200);

    // The schedule's rotation, step by step as Secrets Manager drives it.
    const emitted: string[] = [];
    const rotationLogs: string[] = [];
    const deps: RotationDeps = {
      endpoints,
      endpointId,
      store,
      log: createLogger({ service: 't', sink: (line) => rotationLogs.push(line) }),
      now,
      emit: (line) => emitted.push(line),
      stackName: 'local',
    };
    const rotate = createRotationHandler(deps);
    secretVersions(p.aws).enableRotation(secretId);
    const token = randomUUID();
    // What RotateSecret does before calling the function: a version labelled AWSPENDING.
    secretVersions(p.aws).startRotation(secretId, token);
    for (const Step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) {
      await rotate({ Step, SecretId: secretId, ClientRequestToken: token });
      // Every step may be retried by Secrets Manager: running it twice changes nothing.
      await rotate({ Step, SecretId: secretId, ClientRequestToken: token });
    }
    const rotated = readStoredSecret(p.aws.secrets.get(secretId) ?? '');
    expect(rotated.previous).toBe(first);
    expect(rotated.current).not.toBe(first);
    expect(secretVersions(p.aws).stagesOf(secretId)[token]).toContain('AWSCURRENT');
    expect(emitted.some((l) => l.includes('"SecretRotations":1'))).toBe(true);

    const deliver = async (secret: string) => {
      const e = sampleEvent('batch.completed');
      return (await post(p.url, signedDelivery(secret, e))).status;
    };
    // Overlap: either secret alone verifies, and OpenAI's own delivery carries both signatures.
    expect(await deliver(first)).toBe(200);
    expect(await deliver(rotated.current)).toBe(200);
    expect((await endpoints.test(endpointId, 'batch.completed')).status_code).toBe(200);
    expect(sim.webhookEndpoints.deliveries.at(-1)?.signatures).toBe(2);

    // Before 24 h the scheduled step keeps the previous secret; after, it drops it.
    await rotate({ action: 'expirePrevious' });
    expect(readStoredSecret(p.aws.secrets.get(secretId) ?? '').previous).toBe(first);
    offset = 24 * HOUR + 60_000;
    await rotate({ action: 'expirePrevious' });
    const after = readStoredSecret(p.aws.secrets.get(secretId) ?? '');
    expect(after).toMatchObject({ current: rotated.current });
    expect(after.previous).toBeUndefined();
    // The ingress serves its cached secrets while it reloads them: the old one stops once read.
    await eventually(
      async () => ((await deliver(first)) === 401 ? true : undefined),
      10_000,
      'the old secret refused',
    );
    expect(await deliver(rotated.current)).toBe(200);
    expect((await endpoints.test(endpointId, 'batch.completed')).status_code).toBe(200);
    expect(sim.webhookEndpoints.deliveries.at(-1)?.signatures).toBe(1);
    offset = 0;
    // The rotation's log lines name steps and ids, never a secret.
    expect(rotationLogs.length).toBeGreaterThan(0);
    for (const line of [...rotationLogs, ...emitted])
      for (const secret of [first, rotated.current])
        expect(line.includes(secret.slice(6))).toBe(false);
  });

  it('counts a failed rotation and leaves the current secret alone', async () => {
    const secretId = String(p.env.WEBHOOK_SECRET_ID);
    const before = p.aws.secrets.get(secretId);
    const emitted: string[] = [];
    const rotate = createRotationHandler({
      endpoints: new OpenAiWebhookEndpoints({
        baseUrl: p.openAiBaseUrl,
        apiKey: async () => p.simulator?.apiKey ?? '',
      }),
      endpointId: 'whe_missing',
      store: new SecretsManagerWebhookSecret(secrets, secretId),
      log: createLogger({ service: 't', sink: () => undefined }),
      now: Date.now,
      emit: (line) => emitted.push(line),
    });
    const token = randomUUID();
    secretVersions(p.aws).enableRotation(secretId);
    secretVersions(p.aws).startRotation(secretId, token);
    await expect(
      rotate({ Step: 'createSecret', SecretId: secretId, ClientRequestToken: token }),
    ).rejects.toThrow(/Could not rotate the secret of webhook endpoint whe_missing/);
    expect(emitted.some((l) => l.includes('"SecretRotationFailures":1'))).toBe(true);
    expect(p.aws.secrets.get(secretId)).toBe(before);
  });
});
