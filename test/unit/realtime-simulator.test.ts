import { describe, expect, it } from 'vitest';
import { buildAcceptBody } from '#core/calls/accept-body';
import type { SessionConfig } from '#core/calls/session-config';
import { localCallsConfig } from '../../local/calls';
import { checkAcceptBody } from '../../local/stand-ins/realtime-accept-rules';
import { SCENARIO_NAMES, SCENARIOS } from '../../local/stand-ins/realtime-scenarios';
import { timelineLines } from '../../local/stand-ins/realtime-timeline';

/**
 * The simulator's accept rules (local/stand-ins/realtime-accept-rules.ts), written from the SDK
 * types and the OpenAPI spec. The socket side (200 then a failed call and a 404 sideband, and
 * every scenario's events) is in test/integration/realtime-simulator.test.ts.
 */

const config = localCallsConfig();
const userTools = config.tools.map(({ name, description, parameters }) => ({
  name,
  description,
  parameters,
}));
const projectBody = (session: Partial<SessionConfig> = {}) =>
  JSON.parse(
    JSON.stringify(
      buildAcceptBody(
        { ...config.policy.sessions.default, ...session } as SessionConfig,
        userTools,
        Object.keys(config.transferTargets),
      ),
    ),
  ) as Record<string, unknown>;

/** Every optional field of RealtimeSessionCreateRequest that a SIP accept may carry, valid. */
const FULL_BODY = {
  type: 'realtime',
  model: 'gpt-realtime-2.1',
  instructions: 'Be brief.',
  output_modalities: ['audio'],
  audio: {
    input: {
      transcription: {
        model: 'gpt-live-transcribe',
        language: 'en',
        languages: ['en', 'fr'],
        keywords: ['Example Co'],
      },
      noise_reduction: { type: 'near_field', strength: 1 },
      turn_detection: {
        type: 'server_vad',
        idle_timeout_ms: 10_000,
        create_response: true,
        interrupt_response: true,
      },
    },
    output: { voice: { id: 'voice_1234' }, speed: 1.25 },
  },
  include: ['item.input_audio_transcription.logprobs'],
  tracing: { workflow_name: 'calls', group_id: 'g1', metadata: { a: 1 } },
  tools: [
    {
      type: 'function',
      name: 'lookup_order',
      description: 'Find an order.',
      parameters: { type: 'object', properties: {} },
    },
    { type: 'mcp', server_label: 'crm', server_url: 'https://mcp.example.com' },
  ],
  tool_choice: { type: 'function', name: 'lookup_order' },
  parallel_tool_calls: false,
  reasoning: { effort: 'low' },
  max_output_tokens: 4096,
  truncation: {
    type: 'retention_ratio',
    retention_ratio: 0.8,
    token_limits: { post_instructions: 8000 },
  },
  prompt: { id: 'pmpt_1', variables: { name: 'Ann' }, version: '2' },
};

// biome-ignore lint/suspicious/noExplicitAny: bodies are JSON the cases break field by field.
type Body = Record<string, any>;

/** A valid body with one change, and the rule it breaks. */
const VIOLATIONS: [string, (b: Body) => void, string][] = [
  ['no type', (b) => delete b.type, 'type'],
  ['type "transcription"', (b) => (b.type = 'transcription'), 'type'],
  ['model not a string', (b) => (b.model = 42), 'model.type'],
  ['instructions not a string', (b) => (b.instructions = ['hi']), 'instructions.type'],
  ['output_modalities both', (b) => (b.output_modalities = ['audio', 'text']), 'output_modalities'],
  ['output_modalities empty', (b) => (b.output_modalities = []), 'output_modalities'],
  ['output_modalities "image"', (b) => (b.output_modalities = ['image']), 'output_modalities'],
  ['audio.input.format', (b) => (b.audio.input.format = { type: 'audio/pcmu' }), 'audio.format'],
  [
    'audio.output.format',
    (b) => (b.audio.output.format = { type: 'audio/pcm', rate: 24000 }),
    'audio.format',
  ],
  [
    'VAD threshold (SIP)',
    (b) => (b.audio.input.turn_detection.threshold = 0.6),
    'turn_detection.sip_vad_field',
  ],
  [
    'VAD prefix_padding_ms (SIP)',
    (b) => (b.audio.input.turn_detection.prefix_padding_ms = 300),
    'turn_detection.sip_vad_field',
  ],
  [
    'VAD silence_duration_ms (SIP)',
    (b) => (b.audio.input.turn_detection.silence_duration_ms = 500),
    'turn_detection.sip_vad_field',
  ],
  [
    'idle_timeout_ms 4999',
    (b) => (b.audio.input.turn_detection.idle_timeout_ms = 4999),
    'turn_detection.idle_timeout_ms',
  ],
  [
    'idle_timeout_ms 30001',
    (b) => (b.audio.input.turn_detection.idle_timeout_ms = 30_001),
    'turn_detection.idle_timeout_ms',
  ],
  [
    'idle_timeout_ms 7500.5',
    (b) => (b.audio.input.turn_detection.idle_timeout_ms = 7500.5),
    'turn_detection.idle_timeout_ms',
  ],
  [
    'idle_timeout_ms "10000"',
    (b) => (b.audio.input.turn_detection.idle_timeout_ms = '10000'),
    'turn_detection.idle_timeout_ms',
  ],
  [
    'idle_timeout_ms with semantic_vad',
    (b) => (b.audio.input.turn_detection = { type: 'semantic_vad', idle_timeout_ms: 10_000 }),
    'turn_detection.idle_timeout_ms',
  ],
  [
    'semantic_vad eagerness "fast"',
    (b) => (b.audio.input.turn_detection = { type: 'semantic_vad', eagerness: 'fast' }),
    'turn_detection.eagerness',
  ],
  [
    'turn_detection type "none"',
    (b) => (b.audio.input.turn_detection = { type: 'none' }),
    'turn_detection.type',
  ],
  [
    'create_response "yes"',
    (b) => (b.audio.input.turn_detection.create_response = 'yes'),
    'turn_detection.type',
  ],
  ['voice "nova" (not a Realtime voice)', (b) => (b.audio.output.voice = 'nova'), 'voice'],
  ['voice {id: 42}', (b) => (b.audio.output.voice = { id: 42 }), 'voice'],
  ['voice {id, name}', (b) => (b.audio.output.voice = { id: 'voice_1', name: 'x' }), 'voice'],
  ['voice {}', (b) => (b.audio.output.voice = {}), 'voice'],
  ['speed 2', (b) => (b.audio.output.speed = 2), 'speed'],
  [
    'transcription model "whisper-2"',
    (b) => (b.audio.input.transcription.model = 'whisper-2'),
    'transcription.model',
  ],
  [
    'transcription languages []',
    (b) => (b.audio.input.transcription.languages = []),
    'transcription',
  ],
  [
    'noise_reduction "mid_field"',
    (b) => (b.audio.input.noise_reduction = { type: 'mid_field' }),
    'noise_reduction',
  ],
  ['tools not an array', (b) => (b.tools = { lookup_order: {} }), 'tools'],
  ['tool without type', (b) => delete b.tools[0].type, 'tools.type'],
  ['tool type "custom"', (b) => (b.tools[0].type = 'custom'), 'tools.type'],
  ['tool without name', (b) => delete b.tools[0].name, 'tools.name'],
  ['tool name with a space', (b) => (b.tools[0].name = 'look up'), 'tools.name'],
  ['tool declared twice', (b) => b.tools.push({ ...b.tools[0] }), 'tools.name'],
  ['tool parameters missing', (b) => delete b.tools[0].parameters, 'tools.parameters'],
  [
    'tool parameters of type string',
    (b) => (b.tools[0].parameters = { type: 'string' }),
    'tools.parameters',
  ],
  ['MCP tool without server', (b) => delete b.tools[1].server_url, 'tools.mcp'],
  ['tool_choice "any"', (b) => (b.tool_choice = 'any'), 'tool_choice'],
  [
    'tool_choice an undeclared function',
    (b) => (b.tool_choice = { type: 'function', name: 'nope' }),
    'tool_choice',
  ],
  [
    'tool_choice an undeclared MCP server',
    (b) => (b.tool_choice = { type: 'mcp', server_label: 'x' }),
    'tool_choice',
  ],
  ['max_output_tokens 0', (b) => (b.max_output_tokens = 0), 'max_output_tokens'],
  ['max_output_tokens 4097', (b) => (b.max_output_tokens = 4097), 'max_output_tokens'],
  ['max_output_tokens "infinite"', (b) => (b.max_output_tokens = 'infinite'), 'max_output_tokens'],
  ['parallel_tool_calls "no"', (b) => (b.parallel_tool_calls = 'no'), 'parallel_tool_calls'],
  ['reasoning effort "max"', (b) => (b.reasoning = { effort: 'max' }), 'reasoning'],
  ['truncation ratio 1.5', (b) => (b.truncation.retention_ratio = 1.5), 'truncation'],
  ['truncation "sometimes"', (b) => (b.truncation = 'sometimes'), 'truncation'],
  ['tracing "on"', (b) => (b.tracing = 'on'), 'tracing'],
  ['include an unknown field', (b) => (b.include = ['item.audio']), 'include'],
  ['prompt without id', (b) => (b.prompt = { version: '1' }), 'prompt'],
  ['an unknown top-level parameter', (b) => (b.voice = 'marin'), 'unknown-parameter'],
  ['an unknown audio.input parameter', (b) => (b.audio.input.vad = true), 'unknown-parameter'],
];

const clone = () => JSON.parse(JSON.stringify(FULL_BODY)) as Body;

describe('accept rules (from the SDK types and the OpenAPI spec, not the project validator)', () => {
  it('passes a body that uses every optional field correctly', () => {
    expect(checkAcceptBody(FULL_BODY).problems).toEqual([]);
  });

  it('passes the bodies this project builds: default, semantic VAD, server VAD idle timeouts, language, old transcription model', () => {
    const sessions: Partial<SessionConfig>[] = [
      {},
      { turnDetection: { type: 'semantic_vad', eagerness: 'low' } },
      { turnDetection: { type: 'server_vad', idle_timeout_ms: 5000 } },
      { turnDetection: { type: 'server_vad', idle_timeout_ms: 30_000 } },
      { turnDetection: { type: 'server_vad' } },
      { language: 'de', voice: 'cedar' },
      { transcriptionModel: 'gpt-4o-transcribe' },
    ];
    for (const session of sessions)
      expect(checkAcceptBody(projectBody(session)).problems, JSON.stringify(session)).toEqual([]);
  });

  it.each(VIOLATIONS)('refuses %s', (_label, change, rule) => {
    const body = clone();
    change(body);
    const { problems } = checkAcceptBody(body);
    expect(problems.map((p) => p.rule)).toContain(rule);
  });

  it('refuses a body that is not an object, and reports every problem at once', () => {
    for (const body of [null, [], 'realtime', 42])
      expect(checkAcceptBody(body).problems.map((p) => p.rule)).toEqual(['body.object']);
    const { problems } = checkAcceptBody({
      model: 1,
      audio: { input: { format: { type: 'audio/pcmu' } }, output: { voice: 'nova' } },
    });
    expect(problems.map((p) => p.rule)).toEqual(['type', 'model.type', 'audio.format', 'voice']);
    expect(problems.find((p) => p.rule === 'audio.format')?.path).toBe('audio.input.format');
  });

  it('accepts deprecated models, and null or "inf" where the spec allows them, with warnings only', () => {
    const body = clone();
    body.model = 'gpt-realtime';
    body.audio.input.transcription = { model: 'gpt-4o-transcribe' };
    body.audio.input.turn_detection = { type: 'server_vad', idle_timeout_ms: null };
    body.max_output_tokens = 'inf';
    body.tracing = null;
    body.prompt = null;
    body.tool_choice = 'required';
    body.truncation = 'disabled';
    const { problems, warnings } = checkAcceptBody(body);
    expect(problems).toEqual([]);
    expect(warnings.join('\n')).toMatch(/gpt-realtime.*deprecated.*2027-01-20/);
    expect(warnings.join('\n')).toMatch(/gpt-4o-transcribe.*deprecated.*2027-02-26/);
    expect(
      checkAcceptBody(projectBody({ transcriptionModel: 'whisper-1' })).warnings.join(),
    ).toMatch(/whisper-1.*deprecated/);
  });

  it('warns (does not fail) when the model is left to the server or caller transcription is off', () => {
    const body = clone();
    delete body.model;
    delete body.audio.input.transcription;
    const { problems, warnings } = checkAcceptBody(body);
    expect(problems).toEqual([]);
    expect(warnings.join('\n')).toMatch(/model is absent/);
    expect(warnings.join('\n')).toMatch(/transcription is off/);
    expect(checkAcceptBody({ type: 'realtime', model: 'gpt-realtime-2.1' }).problems).toEqual([]);
  });

  it('takes every built-in voice and a custom voice id', () => {
    for (const voice of [
      'alloy',
      'ash',
      'ballad',
      'coral',
      'echo',
      'sage',
      'shimmer',
      'verse',
      'marin',
      'cedar',
      { id: 'voice_x' },
    ]) {
      const body = clone();
      body.audio.output.voice = voice;
      expect(checkAcceptBody(body).problems).toEqual([]);
    }
  });
});

describe('scenarios', () => {
  it('has the named scenarios, each documented', () => {
    expect(SCENARIO_NAMES).toEqual([
      'happy',
      'barge-in',
      'interrupted-end-call',
      'interrupted-transfer',
      'interrupted-tool',
      'goodbye',
      'goodbye-transfer',
      'ghost',
      'silent-caller',
      'dtmf',
      'rotation',
      'rotation-1000',
      'junk',
      'control',
      'late-transcript',
    ]);
    for (const s of SCENARIOS) {
      expect(s.summary.length, s.name).toBeGreaterThan(20);
      expect(s.sequence.length, s.name).toBeGreaterThan(20);
      expect(s.expect.length, s.name).toBeGreaterThan(20);
    }
  });
});

describe('timeline', () => {
  it('collapses deltas, marks lost frames and facts, and shows both directions', () => {
    const lines = timelineLines(
      [
        { at: 1000, dir: 'in', type: 'response.create', event: { type: 'response.create' } },
        ...['Hello, ', 'there.'].map((delta, i) => ({
          at: 1001 + i,
          dir: 'out',
          type: 'response.output_audio_transcript.delta',
          event: { type: 'response.output_audio_transcript.delta', item_id: 'item_1', delta },
          delivered: 1,
        })),
        { at: 1010, dir: 'api', type: 'POST /hangup', text: '200' },
        { at: 1011, dir: 'note', type: 'cut_off', text: 'cut off', warn: true },
        {
          at: 1012,
          dir: 'out',
          type: 'output_audio_buffer.stopped',
          event: { type: 'output_audio_buffer.stopped', response_id: 'resp_1' },
          delivered: 0,
        },
      ],
      { origin: 1000 },
    );
    expect(lines).toEqual([
      '+     0 ms  → response.create',
      '+     1 ms  ← response.output_audio_transcript.delta ×2 "Hello, there."',
      '+    10 ms  ⇢ POST /hangup 200',
      '+    11 ms  ⚠ cut off',
      '+    12 ms  ← output_audio_buffer.stopped resp_1  (no socket attached: lost)',
    ]);
  });
});
