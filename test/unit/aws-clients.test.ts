import { createHash } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
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
import { createIngressHandler, DEFAULT_LEDGER_WAIT_MS } from '#core/webhooks/receive-webhook';
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
    // A bigger socket pool where asked (a request queued for a socket counts against the
    // connection timeout): the sideband worker's DynamoDB client.
    expect(
      awsClientConfig(undefined, { ...QUICK_CALLS, maxSockets: 256 }).requestHandler,
    ).toMatchObject({
      httpAgent: { maxSockets: 256, keepAlive: true },
      httpsAgent: { maxSockets: 256, keepAlive: true },
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

  /** Runs one signed webhook through the ingress with DynamoDB (and maybe SQS) black-holed. */
  async function ingressWith(
    sqs: 'stalled' | 'up',
  ): Promise<{ status: number; code?: string; elapsed: number; sent: number }> {
    const hole = await blackHole();
    servers.push(hole);
    // A minimal SQS endpoint that accepts SendMessage (JSON protocol), counting what it got.
    let sent = 0;
    const queue = createHttpServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        sent += 1;
        const { MessageBody = '' } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        response.setHeader('content-type', 'application/x-amz-json-1.0');
        response.end(
          JSON.stringify({
            MessageId: `m${sent}`,
            // The SDK checks the body's MD5 (middleware-sdk-sqs).
            MD5OfMessageBody: createHash('md5').update(MessageBody).digest('hex'),
          }),
        );
      });
    });
    await new Promise<void>((resolve) => queue.listen(0, '127.0.0.1', resolve));
    const queueUrl = `http://127.0.0.1:${(queue.address() as { port: number }).port}`;
    const sqsUrl = sqs === 'stalled' ? hole.url : queueUrl;
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: hole.url,
      AWS_ENDPOINT_URL_SQS: sqsUrl,
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
          Object.fromEntries(CATEGORIES.map((c) => [c, `${sqsUrl}/000000000000/${c}`])),
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
      const result = (await handler({
        headers: request.headers,
        body: request.body,
        isBase64Encoded: false,
        requestContext: { http: { method: 'POST' } },
      } as unknown as LambdaFunctionURLEvent)) as { statusCode: number; body?: string };
      const elapsed = Date.now() - started;
      const code =
        result.statusCode === 200 ? undefined : JSON.parse(String(result.body)).error.code;
      return { status: result.statusCode, code, elapsed, sent };
    } finally {
      process.env = saved;
      await new Promise((resolve) => queue.close(resolve));
    }
  }

  it('acknowledges a queued event at once when DynamoDB stalls: the event head waits are bounded', async () => {
    const outcome = await ingressWith('up');
    // Queued, so durable: 200, and the consumer writes the head from the message.
    expect(outcome).toMatchObject({ status: 200, sent: 1 });
    // Two bounded waits (the dedupe read, the head write), not the SDK's three 2 s attempts each.
    expect(outcome.elapsed).toBeGreaterThanOrEqual(2 * DEFAULT_LEDGER_WAIT_MS - 50);
    expect(outcome.elapsed).toBeLessThan(2 * DEFAULT_LEDGER_WAIT_MS + 3000);
  }, 20_000);

  it('answers 503 well within its function timeout when DynamoDB and SQS both stall', async () => {
    const outcome = await ingressWith('stalled');
    expect(outcome).toMatchObject({ status: 503, code: 'queue_unavailable' });
    // The bounded dedupe read, then 3 SQS attempts × 2 s and backoff: inside the 10 s timeout.
    expect(outcome.elapsed).toBeGreaterThanOrEqual(3 * REQUEST_TIMEOUT_MS);
    expect(outcome.elapsed).toBeLessThan(9500);
  }, 20_000);
});
