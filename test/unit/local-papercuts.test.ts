import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { recordedLines } from '../../local/send-call';
import { listenError, serveFunctionUrl } from '../../local/stand-ins/function-url';

/** Issue 13 §3, local mode without papercuts: the ones in local/send-call.ts and function-url.ts. */
describe('npm run send -- call: the worker record', () => {
  it('prints transcripts in conversation order (order ?? at), tools and events at their time', () => {
    // The caller's transcription completed after the assistant answered: recorded later (`at`),
    // but its item came first in the conversation (`order`).
    const items = [
      { kind: 'event', name: 'attached', at: 1000 },
      { kind: 'transcript', role: 'assistant', text: 'Thanks for calling.', at: 1100, order: 1010 },
      { kind: 'transcript', role: 'assistant', text: 'It has shipped.', at: 2000, order: 1900 },
      { kind: 'transcript', role: 'caller', text: 'Where is order 1234?', at: 2100, order: 1500 },
      // Recorded before transcripts had an order: sorted by `at`.
      { kind: 'transcript', role: 'caller', text: 'Thanks, bye.', at: 2500 },
      { kind: 'tool', name: 'lookup_order', arguments: '{}', output: '{}', latencyMs: 5, at: 1700 },
    ];
    expect(recordedLines(items)).toEqual([
      '  event    : attached',
      '  assistant: Thanks for calling.',
      '  caller   : Where is order 1234?',
      '  tool     : lookup_order({}) → {} in 5 ms',
      '  assistant: It has shipped.',
      '  caller   : Thanks, bye.',
    ]);
  });

  it('marks an answer the caller did not hear to its end', () => {
    const items = [
      {
        kind: 'transcript',
        role: 'assistant',
        text: 'Thanks for calling Example',
        at: 1000,
        responseId: 'resp_1',
      },
      {
        kind: 'event',
        name: 'assistant_cut_off',
        at: 1050,
        detail: { responseId: 'resp_1', reason: 'interrupted' },
      },
      { kind: 'transcript', role: 'assistant', text: 'Sure.', at: 2000, responseId: 'resp_2' },
    ];
    expect(recordedLines(items)).toEqual([
      '  assistant: Thanks for calling Example [cut off: interrupted]',
      '  event    : assistant_cut_off {"responseId":"resp_1","reason":"interrupted"}',
      '  assistant: Sure.',
    ]);
  });
});

describe('the local function URL', () => {
  let blocker: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve()));
    blocker = undefined;
  });

  it('refuses a port in use with one line naming the port and the fix', async () => {
    const taken = createServer();
    blocker = taken;
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address ? address.port : 0;

    const failure = await serveFunctionUrl(async () => ({ statusCode: 200 }), port).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: string; port?: number },
    );
    expect(failure).toBeInstanceOf(Error);
    expect(failure?.message).toBe(
      `port ${port} is in use (another npm start, or another program): stop it, or choose another port: PORT=${port + 1} npm start`,
    );
    expect(failure?.message).not.toContain('\n');
    // Kept for local mode's crash handler, which prints the same line for any EADDRINUSE.
    expect(failure).toMatchObject({ code: 'EADDRINUSE', port });
  });

  it('names other listen failures with their code', () => {
    expect(listenError(Object.assign(new Error('x'), { code: 'EACCES' }), 80).message).toMatch(
      /^port 80 needs privileges .*PORT=8787 npm start$/,
    );
    expect(listenError(Object.assign(new Error('x'), { code: 'EADDRNOTAVAIL' }), 9).message).toBe(
      'cannot listen on 127.0.0.1:9: EADDRNOTAVAIL',
    );
  });

  it('still serves on a free port', async () => {
    const served = await serveFunctionUrl(async () => ({ statusCode: 204 }), 0);
    try {
      expect((await fetch(served.url, { method: 'POST' })).status).toBe(204);
    } finally {
      await served.stop();
    }
  });
});
