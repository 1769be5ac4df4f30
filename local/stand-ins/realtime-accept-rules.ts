/**
 * What OpenAI accepts in `POST /v1/realtime/calls/{call_id}/accept`, written from the API
 * reference and NOT from this project's validator (nothing here comes from `core/`): the
 * simulator checks our bodies against OpenAI's rules, not against our own understanding of them.
 *
 * Sources, cited per rule below:
 * - [SDK calls]    test/reference-sdk/node_modules/openai/resources/realtime/calls.d.ts (openai 7.55.0), `CallAcceptParams`
 * - [SDK rt]       test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts: `RealtimeSessionCreateRequest`,
 *                  `RealtimeAudioConfigInput`/`Output`, `RealtimeAudioInputTurnDetection`,
 *                  `RealtimeTranscriptionSessionAudioInputTurnDetection`, `AudioTranscription`,
 *                  `RealtimeFunctionTool`, `RealtimeToolsConfigUnion.Mcp`, `RealtimeTruncation`,
 *                  `RealtimeTracingConfig`, `RealtimeReasoning`
 * - [SDK resp]     test/reference-sdk/node_modules/openai/resources/responses/responses.d.ts: `ToolChoiceOptions`,
 *                  `ToolChoiceFunction`, `ToolChoiceMcp`, `ResponsePrompt`
 * - [OAS]          openai/openai-openapi @f85dbe2 openapi.yaml: `RealtimeSessionCreateRequestGA`,
 *                  `RealtimeTurnDetection` (idle_timeout_ms minimum 5000, maximum 30000),
 *                  `VoiceIdsOrCustomVoice` (additionalProperties: false), `AudioTranscription`
 * - [REF §n]       ../shared/reference/openai-protocol.md, section n
 *
 * How the real API treats a violation (REF §3.4, §4.5, pitfall 3): `/accept` still answers 200,
 * then the SIP leg fails (400) and the sideband 404s. The simulator does exactly that with every
 * `problem` found here. `warnings` are bodies that work but deserve a look (deprecated models,
 * no caller transcription): the call goes on.
 */

export interface AcceptProblem {
  /** A stable rule id, for tests and the timeline. */
  readonly rule: string;
  /** Where in the body: `audio.input.turn_detection.idle_timeout_ms`. */
  readonly path: string;
  readonly message: string;
}

export interface AcceptCheck {
  readonly problems: AcceptProblem[];
  readonly warnings: string[];
}

/** [SDK rt] `RealtimeAudioConfigOutput.voice`; [OAS] `VoiceIdsShared`. */
export const BUILT_IN_VOICES = [
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
] as const;

/** [SDK rt] `AudioTranscription.model`, with its "Deprecated values" note (shutdown 2027-02-26). */
export const TRANSCRIPTION_MODELS = [
  'whisper-1',
  'gpt-transcribe',
  'gpt-live-transcribe',
  'gpt-4o-mini-transcribe',
  'gpt-4o-mini-transcribe-2025-12-15',
  'gpt-4o-transcribe',
  'gpt-4o-transcribe-diarize',
  'gpt-realtime-whisper',
] as const;
export const DEPRECATED_TRANSCRIPTION_MODELS: ReadonlySet<string> = new Set([
  'whisper-1',
  'gpt-4o-mini-transcribe',
  'gpt-4o-mini-transcribe-2025-12-15',
  'gpt-4o-transcribe',
  'gpt-4o-transcribe-diarize',
]);

/** [SDK rt] `RealtimeSessionCreateRequest.model` (an open union: other strings are allowed). */
export const REALTIME_MODELS = [
  'gpt-realtime',
  'gpt-realtime-1.5',
  'gpt-realtime-2',
  'gpt-realtime-2.1',
  'gpt-realtime-2.1-mini',
  'gpt-realtime-2025-08-28',
  'gpt-4o-realtime-preview',
  'gpt-4o-realtime-preview-2024-10-01',
  'gpt-4o-realtime-preview-2024-12-17',
  'gpt-4o-realtime-preview-2025-06-03',
  'gpt-4o-mini-realtime-preview',
  'gpt-4o-mini-realtime-preview-2024-12-17',
  'gpt-realtime-mini',
  'gpt-realtime-mini-2025-10-06',
  'gpt-realtime-mini-2025-12-15',
  'gpt-audio-1.5',
  'gpt-audio-mini',
  'gpt-audio-mini-2025-10-06',
  'gpt-audio-mini-2025-12-15',
] as const;
/** [SDK rt] `RealtimeSessionCreateRequest.model`, "Deprecated values" (shutdown 2027-01-20). */
export const DEPRECATED_REALTIME_MODELS: ReadonlySet<string> = new Set([
  'gpt-realtime',
  'gpt-realtime-2025-08-28',
  'gpt-realtime-mini',
  'gpt-realtime-mini-2025-12-15',
  'gpt-audio-mini',
  'gpt-audio-mini-2025-12-15',
]);

/** [OAS] `RealtimeTurnDetection` Server VAD `idle_timeout_ms`: integer, minimum 5000, maximum 30000. */
export const IDLE_TIMEOUT_MS = { min: 5000, max: 30_000 } as const;

/**
 * [REF §3.2] (agents-js openaiRealtimeSip.ts, PR #1170): the Calls API rejects these VAD tuning
 * fields for SIP, although [SDK rt] `RealtimeAudioInputTurnDetection.ServerVad` declares them.
 */
export const SIP_REJECTED_VAD_FIELDS = ['threshold', 'prefix_padding_ms', 'silence_duration_ms'];

/**
 * Function names: [a-zA-Z0-9_-], at most 64 characters. The Realtime types say only "the name of
 * the function" ([SDK rt] `RealtimeFunctionTool.name`); this is OpenAI's function-name rule
 * everywhere else (Responses / Chat Completions `FunctionDefinition.name`).
 */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

type Json = Record<string, unknown>;

export function checkAcceptBody(body: unknown): AcceptCheck {
  const problems: AcceptProblem[] = [];
  const warnings: string[] = [];
  const fail = (rule: string, path: string, message: string) =>
    problems.push({ rule, path, message });

  if (!isObject(body)) {
    fail('body.object', '', 'The body must be a JSON object (a session configuration).');
    return { problems, warnings };
  }

  // [OAS] RealtimeSessionCreateRequestGA properties. The API refuses parameters it does not know
  // ("Unknown parameter: 'session.x'"), and a refused session is a failed call (REF §3.4).
  unknownKeys(body, '', TOP_LEVEL_KEYS, fail);

  // [SDK calls] CallAcceptParams.type: 'realtime' (required); [OAS] required: [type]; REF §3.2:
  // without it the session dies after the 200 ("Missing required parameter: 'session.type'").
  if (body.type !== 'realtime')
    fail('type', 'type', 'type is required and must be "realtime" (REF §3.2, [C-accept200]).');

  // [SDK rt] model?: string (open union). Absent: the server's default model, which REF §3.2
  // says to avoid; deprecated values carry a shutdown date.
  if (body.model === undefined) warnings.push('model is absent: the server picks its default.');
  else if (typeof body.model !== 'string' || body.model.length === 0)
    fail('model.type', 'model', 'model must be a non-empty string.');
  else if (DEPRECATED_REALTIME_MODELS.has(body.model))
    warnings.push(`model "${body.model}" is deprecated (shutdown 2027-01-20, SDK types).`);
  else if (!(REALTIME_MODELS as readonly string[]).includes(body.model))
    warnings.push(`model "${body.model}" is not one the SDK lists.`);

  // [SDK rt] instructions?: string.
  if (body.instructions !== undefined && typeof body.instructions !== 'string')
    fail('instructions.type', 'instructions', 'instructions must be a string.');

  // [SDK rt] output_modalities?: Array<'text'|'audio'>: "It is not possible to request both".
  if (body.output_modalities !== undefined) {
    const m = body.output_modalities;
    if (!Array.isArray(m) || m.length !== 1 || (m[0] !== 'audio' && m[0] !== 'text'))
      fail(
        'output_modalities',
        'output_modalities',
        'output_modalities must be ["audio"] or ["text"] (not both, not empty).',
      );
  }

  checkAudio(body.audio, fail, warnings);

  // [SDK rt] include?: Array<'item.input_audio_transcription.logprobs'>.
  if (body.include !== undefined) {
    if (
      !Array.isArray(body.include) ||
      body.include.some((x) => x !== 'item.input_audio_transcription.logprobs')
    )
      fail(
        'include',
        'include',
        'include may only list "item.input_audio_transcription.logprobs".',
      );
  }

  // [SDK rt] RealtimeTracingConfig: 'auto' | { workflow_name?, group_id?, metadata? } | null.
  if (body.tracing !== undefined && body.tracing !== null && body.tracing !== 'auto') {
    if (!isObject(body.tracing))
      fail('tracing', 'tracing', 'tracing must be null, "auto" or a configuration object.');
    else {
      unknownKeys(body.tracing, 'tracing', ['workflow_name', 'group_id', 'metadata'], fail);
      for (const key of ['workflow_name', 'group_id'])
        if (body.tracing[key] !== undefined && typeof body.tracing[key] !== 'string')
          fail('tracing', `tracing.${key}`, `tracing.${key} must be a string.`);
      if (body.tracing.metadata !== undefined && !isObject(body.tracing.metadata))
        fail('tracing', 'tracing.metadata', 'tracing.metadata must be an object.');
    }
  }

  const functionNames = checkTools(body.tools, fail);
  checkToolChoice(body.tool_choice, functionNames, body.tools, fail);

  // [SDK rt] parallel_tool_calls?: boolean.
  if (body.parallel_tool_calls !== undefined && typeof body.parallel_tool_calls !== 'boolean')
    fail('parallel_tool_calls', 'parallel_tool_calls', 'parallel_tool_calls must be a boolean.');

  // [SDK rt] RealtimeReasoning { effort?: 'minimal'|'low'|'medium'|'high'|'xhigh' }.
  if (body.reasoning !== undefined) {
    if (!isObject(body.reasoning)) fail('reasoning', 'reasoning', 'reasoning must be an object.');
    else {
      unknownKeys(body.reasoning, 'reasoning', ['effort'], fail);
      if (
        body.reasoning.effort !== undefined &&
        !['minimal', 'low', 'medium', 'high', 'xhigh'].includes(String(body.reasoning.effort))
      )
        fail(
          'reasoning',
          'reasoning.effort',
          'reasoning.effort must be minimal, low, medium, high or xhigh.',
        );
    }
  }

  // [SDK rt] max_output_tokens?: number | 'inf': "an integer between 1 and 4096 ... or `inf`".
  if (body.max_output_tokens !== undefined && body.max_output_tokens !== 'inf') {
    const n = body.max_output_tokens;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 4096)
      fail(
        'max_output_tokens',
        'max_output_tokens',
        'max_output_tokens must be an integer from 1 to 4096, or "inf".',
      );
  }

  // [SDK rt] RealtimeTruncation: 'auto' | 'disabled' | { type: 'retention_ratio',
  // retention_ratio: 0.0–1.0, token_limits?: { post_instructions?: integer ≥ 0 } }.
  if (
    body.truncation !== undefined &&
    body.truncation !== 'auto' &&
    body.truncation !== 'disabled'
  ) {
    const t = body.truncation;
    if (!isObject(t) || t.type !== 'retention_ratio')
      fail(
        'truncation',
        'truncation',
        'truncation must be "auto", "disabled" or {type:"retention_ratio", …}.',
      );
    else {
      unknownKeys(t, 'truncation', ['type', 'retention_ratio', 'token_limits'], fail);
      const r = t.retention_ratio;
      if (typeof r !== 'number' || r < 0 || r > 1)
        fail(
          'truncation',
          'truncation.retention_ratio',
          'truncation.retention_ratio must be a number from 0.0 to 1.0.',
        );
      if (t.token_limits !== undefined) {
        const limits = t.token_limits;
        const post = isObject(limits) ? limits.post_instructions : undefined;
        if (
          !isObject(limits) ||
          (post !== undefined && (typeof post !== 'number' || !Number.isInteger(post) || post < 0))
        )
          fail(
            'truncation',
            'truncation.token_limits',
            'truncation.token_limits.post_instructions must be an integer ≥ 0.',
          );
      }
    }
  }

  // [SDK resp] ResponsePrompt { id: string, variables?: object|null, version?: string|null } | null.
  if (body.prompt !== undefined && body.prompt !== null) {
    const p = body.prompt;
    if (!isObject(p) || typeof p.id !== 'string')
      fail('prompt', 'prompt', 'prompt must be null or {id: string, …}.');
    else {
      unknownKeys(p, 'prompt', ['id', 'variables', 'version'], fail);
      if (p.variables !== undefined && p.variables !== null && !isObject(p.variables))
        fail('prompt', 'prompt.variables', 'prompt.variables must be an object or null.');
      if (p.version !== undefined && p.version !== null && typeof p.version !== 'string')
        fail('prompt', 'prompt.version', 'prompt.version must be a string or null.');
    }
  }

  return { problems, warnings };
}

const TOP_LEVEL_KEYS = [
  'type',
  'model',
  'instructions',
  'output_modalities',
  'audio',
  'include',
  'tracing',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'reasoning',
  'max_output_tokens',
  'truncation',
  'prompt',
];

type Fail = (rule: string, path: string, message: string) => void;

function checkAudio(audio: unknown, fail: Fail, warnings: string[]): void {
  if (audio === undefined) {
    warnings.push('audio is absent: no caller transcription (audio.input.transcription is off).');
    return;
  }
  // [SDK rt] RealtimeAudioConfig { input?, output? }.
  if (!isObject(audio)) {
    fail('audio.object', 'audio', 'audio must be an object.');
    return;
  }
  unknownKeys(audio, 'audio', ['input', 'output'], fail);
  const input = audio.input;
  const output = audio.output;
  if (input !== undefined && !isObject(input))
    fail('audio.object', 'audio.input', 'audio.input must be an object.');
  if (output !== undefined && !isObject(output))
    fail('audio.object', 'audio.output', 'audio.output must be an object.');

  // REF §3.2 ([C-400], OpenAI staff): omit audio.*.format, the codec is negotiated in SDP. The SDK
  // types allow `format` (RealtimeAudioFormats) because they also describe WebRTC and WebSocket.
  for (const [side, value] of [
    ['input', input],
    ['output', output],
  ] as const)
    if (isObject(value) && value.format !== undefined)
      fail(
        'audio.format',
        `audio.${side}.format`,
        `audio.${side}.format must be omitted for SIP: the codec is negotiated in SDP (REF §3.2).`,
      );

  if (isObject(input)) {
    unknownKeys(
      input,
      'audio.input',
      ['format', 'transcription', 'noise_reduction', 'turn_detection'],
      fail,
    );
    checkTranscription(input.transcription, fail, warnings);
    // [SDK rt] RealtimeAudioConfigInput.NoiseReduction { type?: 'near_field'|'far_field',
    // strength?: number } | null.
    const nr = input.noise_reduction;
    if (nr !== undefined && nr !== null) {
      if (!isObject(nr))
        fail('noise_reduction', 'audio.input.noise_reduction', 'must be an object or null.');
      else {
        unknownKeys(nr, 'audio.input.noise_reduction', ['type', 'strength'], fail);
        if (nr.type !== undefined && nr.type !== 'near_field' && nr.type !== 'far_field')
          fail(
            'noise_reduction',
            'audio.input.noise_reduction.type',
            'noise_reduction.type must be near_field or far_field.',
          );
        if (nr.strength !== undefined && typeof nr.strength !== 'number')
          fail(
            'noise_reduction',
            'audio.input.noise_reduction.strength',
            'noise_reduction.strength must be a number.',
          );
      }
    }
    checkTurnDetection(input.turn_detection, fail);
  } else if (input === undefined) {
    warnings.push('audio.input is absent: no caller transcription.');
  }

  if (isObject(output)) {
    unknownKeys(output, 'audio.output', ['format', 'voice', 'speed'], fail);
    // [SDK rt] RealtimeAudioConfigOutput.voice: a built-in name or a custom `{ id }`;
    // [OAS] VoiceIdsOrCustomVoice: the object form is `required: [id]`, additionalProperties: false.
    const v = output.voice;
    if (v !== undefined) {
      if (typeof v === 'string') {
        if (!(BUILT_IN_VOICES as readonly string[]).includes(v))
          fail(
            'voice',
            'audio.output.voice',
            `audio.output.voice "${v}" is not a built-in voice (${BUILT_IN_VOICES.join(', ')}); a custom voice is {"id": "voice_…"}.`,
          );
      } else if (
        !isObject(v) ||
        typeof v.id !== 'string' ||
        v.id.length === 0 ||
        Object.keys(v).some((k) => k !== 'id')
      ) {
        fail(
          'voice',
          'audio.output.voice',
          'audio.output.voice must be a built-in name or {"id": string} and nothing else.',
        );
      }
    }
    // [SDK rt] speed?: number, "0.25 is the minimum speed. 1.5 is the maximum speed".
    if (
      output.speed !== undefined &&
      (typeof output.speed !== 'number' || output.speed < 0.25 || output.speed > 1.5)
    )
      fail('speed', 'audio.output.speed', 'audio.output.speed must be a number from 0.25 to 1.5.');
  }
}

function checkTranscription(t: unknown, fail: Fail, warnings: string[]): void {
  if (t === undefined || t === null) {
    warnings.push(
      'audio.input.transcription is off: no conversation.item.input_audio_transcription.* events (REF §4.2).',
    );
    return;
  }
  // [SDK rt] AudioTranscription { model?, language?, languages?, keywords?, prompt?, delay? }.
  if (!isObject(t)) {
    fail('transcription', 'audio.input.transcription', 'must be an object or null.');
    return;
  }
  const path = 'audio.input.transcription';
  unknownKeys(t, path, ['model', 'language', 'languages', 'keywords', 'prompt', 'delay'], fail);
  if (t.model !== undefined) {
    if (
      typeof t.model !== 'string' ||
      !(TRANSCRIPTION_MODELS as readonly string[]).includes(t.model)
    )
      fail(
        'transcription.model',
        `${path}.model`,
        `${path}.model must be one of ${TRANSCRIPTION_MODELS.join(', ')}.`,
      );
    else if (DEPRECATED_TRANSCRIPTION_MODELS.has(t.model))
      // Deprecated but working until its shutdown date: the call goes on, with a warning.
      warnings.push(
        `${path}.model "${t.model}" is deprecated (announced shutdown 2027-02-26, SDK types).`,
      );
  }
  if (t.language !== undefined && typeof t.language !== 'string')
    fail('transcription', `${path}.language`, 'language must be an ISO-639-1 string.');
  // [OAS] AudioTranscription.languages: minItems 1, strings.
  if (
    t.languages !== undefined &&
    (!Array.isArray(t.languages) ||
      t.languages.length === 0 ||
      t.languages.some((x) => typeof x !== 'string'))
  )
    fail('transcription', `${path}.languages`, 'languages must be a non-empty array of strings.');
  if (
    t.keywords !== undefined &&
    (!Array.isArray(t.keywords) || t.keywords.some((x) => typeof x !== 'string'))
  )
    fail('transcription', `${path}.keywords`, 'keywords must be an array of strings.');
  if (t.prompt !== undefined && typeof t.prompt !== 'string')
    fail('transcription', `${path}.prompt`, 'prompt must be a string.');
  if (
    t.delay !== undefined &&
    !['minimal', 'low', 'medium', 'high', 'xhigh'].includes(String(t.delay))
  )
    fail('transcription', `${path}.delay`, 'delay must be minimal, low, medium, high or xhigh.');
  // [SDK rt] AudioTranscription: `delay` "Only supported with gpt-realtime-whisper", `prompt` "not
  // supported with gpt-realtime-whisper in GA Realtime sessions".
  if (t.delay !== undefined && t.model !== 'gpt-realtime-whisper')
    warnings.push(`${path}.delay is only supported with gpt-realtime-whisper.`);
  if (t.prompt !== undefined && t.model === 'gpt-realtime-whisper')
    warnings.push(`${path}.prompt is not supported with gpt-realtime-whisper.`);
}

function checkTurnDetection(td: unknown, fail: Fail): void {
  // [SDK rt] RealtimeAudioConfigInput.turn_detection?: ServerVad | SemanticVad | null.
  if (td === undefined || td === null) return;
  const path = 'audio.input.turn_detection';
  if (!isObject(td) || (td.type !== 'server_vad' && td.type !== 'semantic_vad')) {
    fail(
      'turn_detection.type',
      `${path}.type`,
      'turn_detection must be null or have type "server_vad" or "semantic_vad".',
    );
    return;
  }
  for (const key of ['create_response', 'interrupt_response'])
    if (td[key] !== undefined && typeof td[key] !== 'boolean')
      fail('turn_detection.type', `${path}.${key}`, `${key} must be a boolean.`);
  // REF §3.2: SIP rejects the VAD tuning fields (in both modes; [SDK rt] also says they are "Used
  // only for `server_vad` mode").
  for (const key of SIP_REJECTED_VAD_FIELDS)
    if (key in td)
      fail(
        'turn_detection.sip_vad_field',
        `${path}.${key}`,
        `${path}.${key} is rejected for SIP calls (REF §3.2).`,
      );
  if (td.type === 'server_vad') {
    unknownKeys(
      td,
      path,
      [
        'type',
        'create_response',
        'interrupt_response',
        'idle_timeout_ms',
        ...SIP_REJECTED_VAD_FIELDS,
      ],
      fail,
    );
    // [SDK rt] ServerVad.idle_timeout_ms?: number | null; [OAS] integer, minimum 5000, maximum
    // 30000; REF §4.5 (checked after the 200, not up front).
    const idle = td.idle_timeout_ms;
    if (
      idle !== undefined &&
      idle !== null &&
      (typeof idle !== 'number' ||
        !Number.isInteger(idle) ||
        idle < IDLE_TIMEOUT_MS.min ||
        idle > IDLE_TIMEOUT_MS.max)
    )
      fail(
        'turn_detection.idle_timeout_ms',
        `${path}.idle_timeout_ms`,
        `idle_timeout_ms must be an integer from ${IDLE_TIMEOUT_MS.min} to ${IDLE_TIMEOUT_MS.max}, or null (OAS RealtimeTurnDetection).`,
      );
  } else {
    // [SDK rt] SemanticVad { type, create_response?, eagerness?, interrupt_response? }; "Idle
    // timeout is currently only supported for `server_vad` mode" (ServerVad.idle_timeout_ms).
    if ('idle_timeout_ms' in td)
      fail(
        'turn_detection.idle_timeout_ms',
        `${path}.idle_timeout_ms`,
        'idle_timeout_ms is only supported with server_vad (SDK RealtimeAudioInputTurnDetection).',
      );
    unknownKeys(
      td,
      path,
      [
        'type',
        'create_response',
        'interrupt_response',
        'eagerness',
        'idle_timeout_ms',
        ...SIP_REJECTED_VAD_FIELDS,
      ],
      fail,
    );
    // [SDK rt] SemanticVad.eagerness?: 'low'|'medium'|'high'|'auto'; REF §4.5 "an enum".
    if (
      td.eagerness !== undefined &&
      !['low', 'medium', 'high', 'auto'].includes(String(td.eagerness))
    )
      fail(
        'turn_detection.eagerness',
        `${path}.eagerness`,
        'semantic_vad eagerness must be low, medium, high or auto.',
      );
  }
}

/** Returns the declared function names. */
function checkTools(tools: unknown, fail: Fail): Set<string> {
  const names = new Set<string>();
  if (tools === undefined) return names;
  // [SDK rt] RealtimeToolsConfig = Array<RealtimeFunctionTool | RealtimeToolsConfigUnion.Mcp>.
  if (!Array.isArray(tools)) {
    fail('tools', 'tools', 'tools must be an array.');
    return names;
  }
  tools.forEach((tool, i) => {
    const path = `tools[${i}]`;
    if (!isObject(tool)) {
      fail('tools', path, `${path} must be an object.`);
      return;
    }
    if (tool.type === 'mcp') {
      // [SDK rt] RealtimeToolsConfigUnion.Mcp: server_label required; "One of `server_url`,
      // `connector_id`, or `tunnel_id` must be provided".
      if (typeof tool.server_label !== 'string' || tool.server_label.length === 0)
        fail('tools.mcp', `${path}.server_label`, 'an MCP tool needs a server_label.');
      if (![tool.server_url, tool.connector_id, tool.tunnel_id].some((x) => typeof x === 'string'))
        fail('tools.mcp', path, 'an MCP tool needs one of server_url, connector_id or tunnel_id.');
      return;
    }
    // [SDK rt] RealtimeFunctionTool { type?: 'function', name?, description?, parameters? };
    // [OAS] RealtimeFunctionTool.type enum [function]. A function tool is sent with its type, a
    // name and JSON-schema parameters of type "object" ([OAS] parameters: type object).
    unknownKeys(tool, path, ['type', 'name', 'description', 'parameters'], fail);
    if (tool.type !== 'function')
      fail('tools.type', `${path}.type`, `${path}.type must be "function" (or "mcp").`);
    const name = tool.name;
    if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) {
      fail('tools.name', `${path}.name`, `${path}.name must match [a-zA-Z0-9_-]{1,64}.`);
    } else {
      if (names.has(name)) fail('tools.name', `${path}.name`, `tool "${name}" is declared twice.`);
      names.add(name);
    }
    if (tool.description !== undefined && typeof tool.description !== 'string')
      fail('tools.description', `${path}.description`, 'description must be a string.');
    if (!isObject(tool.parameters) || tool.parameters.type !== 'object')
      fail(
        'tools.parameters',
        `${path}.parameters`,
        `${path}.parameters must be a JSON Schema object with type "object".`,
      );
  });
  return names;
}

function checkToolChoice(
  choice: unknown,
  functionNames: ReadonlySet<string>,
  tools: unknown,
  fail: Fail,
): void {
  if (choice === undefined) return;
  // [SDK resp] ToolChoiceOptions = 'none' | 'auto' | 'required'.
  if (typeof choice === 'string') {
    if (!['none', 'auto', 'required'].includes(choice))
      fail('tool_choice', 'tool_choice', 'tool_choice must be none, auto or required.');
    return;
  }
  // [SDK resp] ToolChoiceFunction { type: 'function', name: string }; ToolChoiceMcp
  // { type: 'mcp', server_label: string, name?: string | null }.
  if (isObject(choice) && choice.type === 'function' && typeof choice.name === 'string') {
    if (!functionNames.has(choice.name))
      fail(
        'tool_choice',
        'tool_choice.name',
        `tool_choice names function "${choice.name}", which tools does not declare.`,
      );
    return;
  }
  if (isObject(choice) && choice.type === 'mcp' && typeof choice.server_label === 'string') {
    const labels = Array.isArray(tools)
      ? tools.flatMap((t) => (isObject(t) && t.type === 'mcp' ? [t.server_label] : []))
      : [];
    if (!labels.includes(choice.server_label))
      fail(
        'tool_choice',
        'tool_choice.server_label',
        `tool_choice names MCP server "${choice.server_label}", which tools does not declare.`,
      );
    return;
  }
  fail(
    'tool_choice',
    'tool_choice',
    'tool_choice must be none|auto|required, {type:"function", name} or {type:"mcp", server_label}.',
  );
}

function unknownKeys(object: Json, path: string, known: readonly string[], fail: Fail): void {
  for (const key of Object.keys(object))
    if (!known.includes(key))
      fail(
        'unknown-parameter',
        path ? `${path}.${key}` : key,
        `Unknown parameter: 'session.${path ? `${path}.` : ''}${key}'.`,
      );
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
