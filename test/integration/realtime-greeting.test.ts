import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildAcceptBody } from '#core/calls/accept-body';
import { localCallsConfig } from '../../local/calls';
import { OpenAiSimulator } from '../../local/stand-ins/openai-simulator';
import { RealtimeSimulator, type WireFrame } from '../../local/stand-ins/realtime-simulator';

/**
 * The Realtime simulator's greeting says what the worker asked it to say, however the worker asks:
 * a `response.create` whose `response.instructions` carry the greeting, or a system message item
 * with it followed by a bare `response.create`.
 */

const GREETING = 'Thanks for calling Example Co. How can I help?';
let api: OpenAiSimulator;
let sim: RealtimeSimulator;

beforeAll(async () => {
  api = new OpenAiSimulator();
  await api.start();
  sim = new RealtimeSimulator(api, { responseMs: 20, workerWaitMs: 1500 });
  sim.attach();
});
afterAll(async () => {
  sim.close();
  await api.stop();
});

const config = localCallsConfig();
const BODY = buildAcceptBody(
  config.policy.sessions.default,
  config.tools.map(({ name, description, parameters }) => ({ name, description, parameters })),
  Object.keys(config.transferTargets),
);

/** Accepts a call, attaches, sends `frames` and returns the first assistant transcript. */
async function greetingSaid(frames: readonly WireFrame[]): Promise<string> {
  const call = sim.createCall();
  const accepted = await fetch(`${api.baseUrl}/realtime/calls/${call.id}/accept`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(BODY),
  });
  expect(accepted.status).toBe(200);
  const ws = new WebSocket(`${api.baseUrl.replace(/^http/, 'ws')}/realtime?call_id=${call.id}`, {
    headers: { Authorization: `Bearer ${api.apiKey}` },
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no transcript within 5 s')), 5000);
      ws.on('error', reject);
      ws.on('open', () => {
        for (const frame of frames) ws.send(JSON.stringify(frame));
      });
      ws.on('message', (data) => {
        const event = JSON.parse(String(data)) as WireFrame;
        if (event.type === 'response.output_audio_transcript.done') {
          clearTimeout(timer);
          resolve(String(event.transcript));
        }
      });
    });
  } finally {
    ws.terminate();
  }
}

const instructions = config.policy.sessions.default.instructions;

describe('the greeting the simulator speaks', () => {
  it('is the greeting in response.instructions (after the session instructions)', async () => {
    expect(
      await greetingSaid([
        {
          type: 'response.create',
          response: { instructions: `${instructions}\n\nGreet the caller: ${GREETING}` },
        },
      ]),
    ).toBe(GREETING);
  });

  it('is the greeting of a system message item followed by response.create', async () => {
    expect(
      await greetingSaid([
        {
          type: 'conversation.item.create',
          item: {
            type: 'message',
            role: 'system',
            content: [{ type: 'input_text', text: `Greet the caller with exactly: "${GREETING}"` }],
          },
        },
        { type: 'response.create' },
      ]),
    ).toBe(GREETING);
  });

  it('is a generic hello when the worker names no greeting', async () => {
    expect(
      await greetingSaid([
        { type: 'response.create', response: { instructions: 'Greet the caller.' } },
      ]),
    ).toBe('Hello, thanks for calling.');
  });
});
