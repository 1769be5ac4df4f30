import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localCallsConfig } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { callParts, callRecord, ring, waitForSent, waitForStatus } from '../support/calls';
import { eventually, startPipeline } from '../support/webhooks';

let p: LocalPipeline;
beforeAll(async () => {
  p = await startPipeline({
    calls: localCallsConfig(),
    workers: 1,
    workerEnv: { LOG_LEVEL: 'warn' },
  });
});
afterAll(async () => {
  await p?.stop();
});

describe('a phone call, end to end', () => {
  it('accepts, attaches, greets, runs a tool, and records the end when the caller hangs up', async () => {
    const { call, responses } = await ring(p);
    expect(responses[0]?.status).toBe(200);
    const active = await waitForStatus(p, call.id, ['active']);
    expect(active).toMatchObject({
      from: '+14155550123',
      to: '+18005550100',
      sessionKey: 'default',
      owner: 'worker-1',
    });
    expect(call.accepts).toBe(1);
    expect(call.acceptBody).toMatchObject({
      type: 'realtime',
      model: 'gpt-realtime-2.1',
      audio: { output: { voice: 'marin' } },
    });

    // The greeting goes out as soon as the socket opens.
    const greeting = await waitForSent(call, 'response.create');
    expect(greeting[0]?.event.response?.instructions).toContain('Greet the caller');

    p.realtime?.callerSays(call.id, 'Where is my order 1234?');
    const fnCallId =
      p.realtime?.requestTool(call.id, 'lookup_order', { order_number: '1234' }) ?? '';
    const outputs = await waitForSent(call, 'conversation.item.create');
    expect(outputs[0]?.event.item).toMatchObject({
      type: 'function_call_output',
      call_id: fnCallId,
    });
    expect(JSON.parse(outputs[0]?.event.item.output)).toEqual({
      order_number: '1234',
      status: 'shipped',
      eta: 'tomorrow',
    });

    p.realtime?.callerHangsUp(call.id);
    const ended = await waitForStatus(p, call.id, ['ended']);
    expect(ended).toMatchObject({ endReason: 'caller_hung_up', holdsCapacity: false });
    expect(ended.durationMs).toBeGreaterThanOrEqual(0);
    const parts = await eventually(async () => {
      const found = await callParts(p, call.id);
      return found.some((x) => x.kind === 'tool' && x.output) &&
        found.some((x) => x.name === 'ended')
        ? found
        : undefined;
    });
    expect(parts.filter((x) => x.kind === 'transcript').map((x) => x.role)).toEqual(
      expect.arrayContaining(['caller', 'assistant']),
    );
    expect(parts.find((x) => x.kind === 'tool')).toMatchObject({
      name: 'lookup_order',
      latencyMs: expect.any(Number),
    });
    expect(await callRecord(p, call.id)).toMatchObject({ totalTokens: expect.any(Number) });
  });
});
