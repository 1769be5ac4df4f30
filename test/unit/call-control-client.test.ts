import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallControlClient } from '#adapters/call-control-client';
import type { CallControlDeps } from '#core/calls/call-control';
import { handleControlRequest, senderOf } from '../../lambdas/call-control/handler';

/**
 * The call-control client (`sendCallCommand`, `owh calls …`) and the Lambda's sender: a request to
 * the deployed API is SigV4-signed for execute-api; one to local mode's loopback API is not; the
 * sender on the timeline is the identity API Gateway verified.
 */

const seen: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
let port = 0;
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', () => {
    seen.push({ path: req.url ?? '', headers: req.headers, body });
    res
      .writeHead(202, { 'content-type': 'application/json' })
      .end(JSON.stringify({ id: 'cmd_000000001abc', status: 'pending', action: 'cancel' }));
  });
});
beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'AKIDEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'secret';
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
  const address = server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('CallControlClient', () => {
  it('signs a request to a non-loopback API with SigV4 for execute-api', async () => {
    const client = new CallControlClient({ url: `http://127.0.0.2:${port}`, region: 'eu-west-1' });
    const answer = await client.send('rtc_1', { action: 'cancel' });
    expect(answer).toMatchObject({ ok: true, status: 202, command: { id: 'cmd_000000001abc' } });
    const request = seen.at(-1);
    expect(request?.path).toBe('/calls/rtc_1/commands');
    expect(request?.body).toBe('{"action":"cancel"}');
    expect(request?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*host[^,]*, Signature=[0-9a-f]{64}$/,
    );
    expect(request?.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    // A sender label is for local mode only: the deployed API records the signed identity.
    expect(request?.headers['x-owh-sender']).toBeUndefined();
  });

  it('sends a bearer token instead when given one (a JWT-protected API), and signs nothing', async () => {
    const client = new CallControlClient({ url: `http://127.0.0.2:${port}`, token: 'eyJ.t.s' });
    await client.status('rtc_1', 'cmd_000000001abc');
    const request = seen.at(-1);
    expect(request?.path).toBe('/calls/rtc_1/commands/cmd_000000001abc');
    expect(request?.headers.authorization).toBe('Bearer eyJ.t.s');
  });

  it('needs an endpoint', () => {
    const saved = process.env.CALL_CONTROL_URL;
    delete process.env.CALL_CONTROL_URL;
    expect(() => new CallControlClient()).toThrow(/CALL_CONTROL_URL/);
    if (saved !== undefined) process.env.CALL_CONTROL_URL = saved;
  });
});

describe('the sender of a command', () => {
  const event = (authorizer: unknown) =>
    ({ requestContext: { authorizer } }) as unknown as APIGatewayProxyEventV2;

  it('is the IAM principal, or the JWT issuer and subject, never the body', () => {
    expect(senderOf(event({ iam: { userArn: 'arn:aws:iam::123456789012:user/lead' } }))).toBe(
      'arn:aws:iam::123456789012:user/lead',
    );
    expect(
      senderOf(event({ jwt: { claims: { iss: 'https://issuer.example.com', sub: 'u-1' } } })),
    ).toBe('jwt:https://issuer.example.com#u-1');
    expect(senderOf(event({ iam: { callerId: 'AIDAEXAMPLE' } }))).toBe('iam:AIDAEXAMPLE');
    expect(senderOf(event(undefined))).toBeUndefined();
    expect(senderOf(event({}))).toBeUndefined();
  });
});

describe('the call-control Lambda without an authorizer', () => {
  // Deps that fail the test if touched: a refused request reads and writes nothing.
  const untouchable = new Proxy({} as CallControlDeps, {
    get(_target, key) {
      throw new Error(`deps.${String(key)} used by an unauthenticated request`);
    },
  });
  const request = (method: 'POST' | 'GET', authorizer: unknown, id?: string) =>
    ({
      version: '2.0',
      rawPath: `/calls/rtc_1/commands${id ? `/${id}` : ''}`,
      pathParameters: { call_id: 'rtc_1', ...(id ? { id } : {}) },
      body: '{"action":"cancel"}',
      isBase64Encoded: false,
      requestContext: { http: { method }, ...(authorizer === undefined ? {} : { authorizer }) },
    }) as unknown as APIGatewayProxyEventV2;

  it('refuses a POST or GET that came through no authorizer with a 401 JSON error', async () => {
    for (const [method, id] of [
      ['POST', undefined],
      ['GET', 'cmd_000000001abc'],
    ] as const) {
      for (const authorizer of [undefined, {}, { iam: {} }, { jwt: { claims: {} } }]) {
        const response = await handleControlRequest(untouchable, request(method, authorizer, id));
        expect(response.statusCode).toBe(401);
        expect(response.body).toEqual({
          error: { code: 'unauthenticated', message: expect.any(String) },
        });
      }
    }
  });
});
