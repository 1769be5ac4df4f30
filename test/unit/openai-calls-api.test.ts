import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CallsApiError, OpenAiCallsApi } from '#adapters/openai-calls-api';
import { OpenAiApiError, OpenAiClient } from '#adapters/openai-client';
import { acceptMayHaveSucceeded } from '#core/calls/incoming-call';

/** The calls API adapter against a loopback HTTP server that answers from a script. */

type Answer = { status: number; body?: unknown } | 'hang';
let script: Answer[] = [];
const requests: { method: string; url: string; body: string }[] = [];
let server: Server;
let baseUrl: string;
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      const answer = script.shift() ?? { status: 200 };
      if (answer === 'hang') {
        hanging.push(res);
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  script = [];
  requests.length = 0;
});

function api(): { api: OpenAiCallsApi; sleeps: number[] } {
  const sleeps: number[] = [];
  const client = new OpenAiClient({ baseUrl, apiKey: async () => 'sk-test' });
  return {
    api: new OpenAiCallsApi(client, {
      timeoutMs: 150,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    }),
    sleeps,
  };
}

const notFound = {
  status: 404,
  body: { error: { code: 'call_id_not_found', message: 'No session found' } },
};

async function failure(promise: Promise<unknown>): Promise<CallsApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CallsApiError);
  return error as CallsApiError;
}

describe('OpenAiCallsApi', () => {
  it('accepts with one POST to /realtime/calls/{id}/accept', async () => {
    script = [{ status: 200 }];
    expect(await api().api.accept('rtc_1', { type: 'realtime' })).toBe('accepted');
    expect(requests).toEqual([
      { method: 'POST', url: '/v1/realtime/calls/rtc_1/accept', body: '{"type":"realtime"}' },
    ]);
  });

  it('answers gone on a 404', async () => {
    script = [notFound];
    expect(await api().api.accept('rtc_1', {})).toBe('gone');
    script = [notFound];
    expect(await api().api.reject('rtc_1', 480)).toBe('gone');
  });

  it('refuses definitely on a 4xx: not retried, not possibly accepted', async () => {
    script = [{ status: 400, body: { error: { message: 'bad session' } } }];
    const error = await failure(api().api.accept('rtc_1', {}));
    expect(error).toMatchObject({ status: 400, mayHaveSucceeded: false });
    expect(error).toBeInstanceOf(OpenAiApiError);
    expect(acceptMayHaveSucceeded(error)).toBe(false);
    expect(requests).toHaveLength(1);
  });

  it('retries a 5xx once; a 5xx may have been acted on', async () => {
    script = [{ status: 502 }, { status: 503 }];
    const { api: calls, sleeps } = api();
    const error = await failure(calls.accept('rtc_1', {}));
    expect(error).toMatchObject({ status: 503, mayHaveSucceeded: true });
    expect(acceptMayHaveSucceeded(error)).toBe(true);
    expect(requests).toHaveLength(2);
    expect(sleeps).toEqual([200]);
  });

  it('after a timeout, a 4xx to the retry is not a refusal: the first attempt may have accepted', async () => {
    script = ['hang', { status: 409, body: { error: { message: 'already accepted' } } }];
    const error = await failure(api().api.accept('rtc_1', {}));
    expect(error).toMatchObject({ status: 409, mayHaveSucceeded: true });
    expect(acceptMayHaveSucceeded(error)).toBe(true);
  });

  it('after a timeout, a 404 to the retried accept is not taken for gone', async () => {
    script = ['hang', notFound];
    const error = await failure(api().api.accept('rtc_1', {}));
    expect(error).toMatchObject({ status: 404, mayHaveSucceeded: true });
    // A reject or hang-up of a call that is not found is done, whatever came before.
    script = ['hang', notFound];
    expect(await api().api.hangup('rtc_1')).toBe('gone');
  });

  it('after a 5xx, a retry that succeeds is a success', async () => {
    script = [{ status: 500 }, { status: 200 }];
    expect(await api().api.accept('rtc_1', {})).toBe('accepted');
  });

  it('a 429 was not acted on: a 4xx after it is a refusal', async () => {
    script = [{ status: 429 }, { status: 400 }];
    const error = await failure(api().api.accept('rtc_1', {}));
    expect(error).toMatchObject({ status: 400, mayHaveSucceeded: false });
  });

  it('a network error (nothing listening) is possibly accepted: the connection may have broken after sending', async () => {
    const dead = new OpenAiClient({ baseUrl: 'http://127.0.0.1:1/v1', apiKey: async () => 'k' });
    const error = await failure(
      new OpenAiCallsApi(dead, { sleep: async () => undefined }).accept('rtc_1', {}),
    );
    expect(error).toMatchObject({ status: 0, mayHaveSucceeded: true });
  });

  it('passes other failures through untouched (the core reads them as possibly accepted)', async () => {
    const broken = new OpenAiClient({
      baseUrl,
      apiKey: async () => {
        throw new Error('secret unavailable');
      },
    });
    const error = await new OpenAiCallsApi(broken).accept('rtc_1', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(OpenAiApiError);
    expect(acceptMayHaveSucceeded(error)).toBe(true);
  });
});
