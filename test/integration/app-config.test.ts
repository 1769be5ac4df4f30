import * as path from 'node:path';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LambdaToolRunner } from '#adapters/lambda-tool-runner';
import type { ToolContext } from '#core/ports/sideband';
import { loadAppConfig } from '../../lib/app-config-file';
import { UserHandler } from '../../lib/config';
import {
  type LambdaProcess,
  serveFunctions,
  startLambdaProcess,
} from '../../local/lambda-invoke-server';
import { type LocalApp, loadLocalApp } from '../../local/local-app';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import { ring, waitForSent, waitForStatus } from '../support/calls';
import { received } from '../support/recording-handler';
import { eventually, post, signedDelivery, startPipeline } from '../support/webhooks';

/**
 * The examples' app config (examples/app-config.ts) run as `npm start` runs an app config: loaded
 * and checked by the same code, its `CallTool.fromEntry` tools served by the local Lambda Invoke
 * server, the sideband worker's Lambda client pointed there. A call through the Realtime
 * simulator then invokes each tool, and the test reads the function_call_output the worker sent.
 */

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('the examples app config in local mode', () => {
  let app: LocalApp;
  let tools: LambdaProcess;
  let p: LocalPipeline;

  beforeAll(async () => {
    app = await loadLocalApp(
      await loadAppConfig({ OWH_APP_CONFIG: 'examples/app-config.ts' }, ROOT),
      ROOT,
    );
    tools = await startLambdaProcess(app.functions, { cwd: ROOT });
    p = await startPipeline({
      ...(app.calls ? { calls: app.calls } : {}),
      userHandlers: app.userHandlers,
      workers: 1,
      workerEnv: { LOG_LEVEL: 'warn', AWS_ENDPOINT_URL_LAMBDA: tools.endpoint },
    });
  });

  afterAll(async () => {
    await p?.stop();
    await tools?.stop();
  });

  it('loads both example tools, each under its local function name, and both example handlers', () => {
    expect(app.configFile).toBe('examples/app-config.ts');
    expect(app.handlers).toEqual([
      'batch ← examples/handlers/batch-completed.ts',
      'response ← examples/handlers/response-completed.ts',
    ]);
    expect(app.tools).toEqual([
      'lookup_order ← examples/tools/lookup-order.ts',
      'check_warranty ← examples/tools/failing-tool.ts',
    ]);
    expect(app.calls?.tools.map((t) => [t.name, t.functionName])).toEqual([
      ['lookup_order', 'tool-lookup_order'],
      ['check_warranty', 'tool-check_warranty'],
    ]);
    expect(Object.keys(app.functions).sort()).toEqual(['tool-check_warranty', 'tool-lookup_order']);
  });

  it('a call: lookup_order answers, the failing check_warranty becomes a tool_failed output, and the call goes on', async () => {
    const { call, responses } = await ring(p);
    expect(responses[0]?.status).toBe(200);
    await waitForStatus(p, call.id, ['active']);
    const realtime = p.realtime;
    if (!realtime) throw new Error('no Realtime simulator');

    const lookupId = realtime.requestTool(call.id, 'lookup_order', { order_number: '1234' });
    const first = await waitForSent(call, 'conversation.item.create');
    const lookup = first.find((r) => r.event.item?.call_id === lookupId)?.event.item;
    expect(lookup).toMatchObject({ type: 'function_call_output', call_id: lookupId });
    // The example's answer, with the call context it was given: the caller is unverified.
    expect(JSON.parse(lookup.output)).toEqual({
      order_number: '1234',
      status: 'shipped',
      eta: 'tomorrow',
      caller_verified: false,
    });

    const warrantyId = realtime.requestTool(call.id, 'check_warranty', { serial_number: 'SN-1' });
    const second = await waitForSent(call, 'conversation.item.create', 2);
    const warranty = second.find((r) => r.event.item?.call_id === warrantyId)?.event.item;
    expect(warranty).toMatchObject({ type: 'function_call_output', call_id: warrantyId });
    // The thrown message stays in the logs; the model hears that the tool failed.
    expect(JSON.parse(warranty.output)).toEqual({
      error: { code: 'tool_failed', message: 'The check_warranty tool failed.' },
    });
    expect(warranty.output).not.toContain('unreachable');

    // A failed tool does not end the call.
    expect((await waitForStatus(p, call.id, ['active'])).status).toBe('active');
    realtime.callerHangsUp(call.id);
    expect((await waitForStatus(p, call.id, ['ended'])).endReason).toBe('caller_hung_up');
  });

  it("the tool runner reads the Lambda protocol as it does Lambda's: a ToolError returned, an unknown function", async () => {
    const runner = new LambdaToolRunner(
      new LambdaClient({
        endpoint: tools.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      }),
      [
        ...(app.calls?.tools ?? []),
        { ...(app.calls?.tools[0] ?? ({} as never)), name: 'ghost', functionName: 'tool-ghost' },
      ],
    );
    const context: ToolContext = {
      callId: 'rtc_test',
      fnCallId: 'call_1',
      from: '+14155550123',
      callerVerified: false,
      sessionKey: 'default',
    };
    const notFound = await runner.run('lookup_order', '{"order_number":"99"}', context);
    expect(JSON.parse(notFound.output)).toEqual({
      error: { code: 'not_found', message: 'There is no order 99.' },
    });
    expect(notFound.error).toBeUndefined();
    const ghost = await runner.run('ghost', '{}', context);
    expect(JSON.parse(ghost.output)).toMatchObject({ error: { code: 'tool_unavailable' } });
    expect(ghost.error).toMatch(/Function not found: tool-ghost/);
  });
});

describe('a handler of the app config in local mode', () => {
  it('runs UserHandler.fromEntry files (named exports too) in the local consumers, after the event is stored', async () => {
    const app = await loadLocalApp(
      {
        file: 'inline',
        props: {
          categories: {
            batch: { userHandler: UserHandler.fromEntry('test/support/recording-handler.ts') },
            response: {
              userHandler: UserHandler.fromEntry('test/support/recording-handler.ts', 'onEvent'),
            },
          },
        },
      },
      ROOT,
    );
    expect(app.handlers).toEqual([
      'batch ← test/support/recording-handler.ts',
      'response ← test/support/recording-handler.ts (onEvent)',
    ]);
    const p = await startPipeline({ userHandlers: app.userHandlers });
    try {
      const batch = sampleEvent('batch.completed');
      const response = sampleEvent('response.completed');
      for (const event of [batch, response])
        expect((await post(p.url, signedDelivery(p.webhookSecret, event))).status).toBe(200);
      const got = await eventually(
        async () => {
          const mine = received.filter((e) => e.eventId === batch.id || e.eventId === response.id);
          return mine.length >= 2 ? mine : undefined;
        },
        15_000,
        'both events at the handler',
      );
      expect(got.find((e) => e.eventId === batch.id)).toMatchObject({
        type: 'batch.completed',
        category: 'batch',
        attempt: 1,
      });
      expect(got.find((e) => e.eventId === response.id)?.type).toBe('named:response.completed');
      // Stored before the handler ran: the consumer's own work comes first, as deployed.
      expect(await p.store.getEvent(batch.id)).toBeDefined();
    } finally {
      await p.stop();
    }
  });

  it('refuses a handler file without the named export, naming the category and the file', async () => {
    await expect(
      loadLocalApp(
        {
          file: 'inline',
          props: {
            categories: {
              batch: {
                userHandler: UserHandler.fromEntry('test/support/recording-handler.ts', 'nope'),
              },
            },
          },
        },
        ROOT,
      ),
    ).rejects.toThrow(
      'categories.batch.userHandler: test/support/recording-handler.ts does not export a function named nope.',
    );
  });
});

describe('the local Lambda Invoke server', () => {
  it('answers a function past its timeout, and a thrown error, as Lambda does: 200 with X-Amz-Function-Error', async () => {
    const { endpoint, server } = await serveFunctions(
      new Map([
        ['stuck', { handler: () => new Promise(() => undefined), timeoutMs: 200 }],
        ['thrower', { handler: () => Promise.reject(new TypeError('bad input')), timeoutMs: 1000 }],
        ['echo', { handler: async (event: unknown) => ({ got: event }), timeoutMs: 1000 }],
      ]),
    );
    const invoke = (name: string, body = '{}') =>
      fetch(`${endpoint}/2015-03-31/functions/${encodeURIComponent(name)}/invocations`, {
        method: 'POST',
        body,
      });
    try {
      const stuck = await invoke('stuck');
      expect(stuck.status).toBe(200);
      expect(stuck.headers.get('x-amz-function-error')).toBe('Unhandled');
      expect(await stuck.json()).toMatchObject({
        errorType: 'Sandbox.Timedout',
        errorMessage: 'Task timed out after 0.20 seconds',
      });
      const thrower = await invoke('thrower');
      expect(thrower.headers.get('x-amz-function-error')).toBe('Unhandled');
      expect(await thrower.json()).toMatchObject({
        errorType: 'TypeError',
        errorMessage: 'bad input',
      });
      // Named by ARN, as the deployed config names it.
      const echo = await invoke('arn:aws:lambda:us-east-1:000000000000:function:echo', '{"a":1}');
      expect(echo.headers.get('x-amz-function-error')).toBeNull();
      expect(await echo.json()).toEqual({ got: { a: 1 } });
      const missing = await invoke('nobody');
      expect(missing.status).toBe(404);
      expect(missing.headers.get('x-amzn-errortype')).toBe('ResourceNotFoundException');
      expect((await invoke('echo', '{not json')).status).toBe(400);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
