import { createServer, type Server, type Socket } from 'node:net';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import {
  awsClientConfig,
  CONNECTION_TIMEOUT_MS,
  QUICK_CALLS,
  REQUEST_TIMEOUT_MS,
  sqsClientConfig,
} from '#adapters/aws-clients';
import { ingressDepsFromEnv } from '#adapters/runtime/ingress-from-env';
import { ENV } from '#core/env';
import { noMetrics } from '#core/observability/metrics';
import { CATEGORIES } from '#core/webhooks/categories';
import { createIngressHandler } from '#core/webhooks/receive-webhook';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { signedWebhookRequest } from '../../local/signing';
import { FakeWebhookSecrets } from '../support/fakes';

/** Issue 12 §3: a stalled socket must not hold an ingress slot for the whole function timeout. */

/** A loopback server that accepts every connection and never answers. */
async function blackHole(): Promise<{ url: string; sockets: Socket[]; server: Server }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, sockets, server };
}

const servers: { sockets: Socket[]; server: Server }[] = [];
afterEach(async () => {
  for (const { sockets, server } of servers.splice(0)) {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

const local = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
};

describe('AWS SDK client timeouts', () => {
  it('gives quick-call clients a connection and a request timeout that throws', () => {
    expect(awsClientConfig(undefined, QUICK_CALLS).requestHandler).toEqual({
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    });
    // Long polls and synchronous invokes wait on purpose: a connection timeout only.
    expect(sqsClientConfig({}).requestHandler).toEqual({
      connectionTimeout: CONNECTION_TIMEOUT_MS,
    });
  });

  it('gives up on a socket that accepts and never answers, on every attempt', async () => {
    const hole = await blackHole();
    servers.push(hole);
    const client = new DynamoDBClient({
      ...awsClientConfig(hole.url, { requestTimeoutMs: 200 }),
      ...local,
    });
    const started = Date.now();
    await expect(
      client.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: 'x' } } })),
    ).rejects.toMatchObject({ name: 'TimeoutError' });
    // Three attempts of 200 ms each, plus the SDK's backoff between them.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(hole.sockets.length).toBe(3);
    client.destroy();
  });

  it('lets the ingress answer 503 well within its function timeout when DynamoDB stalls', async () => {
    const hole = await blackHole();
    servers.push(hole);
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: hole.url,
      AWS_ENDPOINT_URL_SQS: hole.url,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: hole.url,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    try {
      const secret = parseWebhookSecret(
        `whsec_${Buffer.alloc(32, 4).toString('base64')}`,
        'current',
      );
      const env = {
        [ENV.tableName]: 'events',
        [ENV.webhookSecretId]: 'secret',
        [ENV.queueUrls]: JSON.stringify(
          Object.fromEntries(CATEGORIES.map((c) => [c, `${hole.url}/000000000000/${c}`])),
        ),
        [ENV.logLevel]: 'error',
      };
      const handler = createIngressHandler({
        ...ingressDepsFromEnv(env),
        secrets: new FakeWebhookSecrets([secret]),
        metrics: noMetrics,
      });
      const request = signedWebhookRequest(secret, {
        object: 'event',
        id: 'evt_stall',
        type: 'batch.completed',
        created_at: 1,
        data: { id: 'batch_1' },
      });
      const started = Date.now();
      const result = await handler({
        headers: request.headers,
        body: request.body,
        isBase64Encoded: false,
        requestContext: { http: { method: 'POST' } },
      } as unknown as LambdaFunctionURLEvent);
      const elapsed = Date.now() - started;
      expect(result).toMatchObject({ statusCode: 503 });
      expect(JSON.parse(String((result as { body?: string }).body))).toMatchObject({
        error: { code: 'store_unavailable' },
      });
      // 3 attempts × 2 s and backoff: well inside the ingress's 10 s function timeout.
      expect(elapsed).toBeGreaterThanOrEqual(3 * REQUEST_TIMEOUT_MS);
      expect(elapsed).toBeLessThan(9000);
    } finally {
      process.env = saved;
    }
  }, 20_000);
});
