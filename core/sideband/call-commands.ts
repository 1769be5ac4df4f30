/**
 * Commands to a live call from outside (issue 16): `say`, `update`, `cancel`, `hangup`, `transfer`.
 * This module is pure: the body's validation, the stored command's shape, its statuses, and the
 * wire frames each command becomes. The worker that holds the call applies it through its state
 * machine (`call-session-machine.ts`), which decides what the call's state allows.
 *
 * Wire forms, from the `openai` package's types (test/reference-sdk/node_modules/openai/resources/realtime/realtime.d.ts)
 * and ../shared/reference/openai-protocol.md §4.2:
 * - `say`: `conversation.item.create` with a `message` item, role `system` or `user`, content
 *   `[{type: "input_text", text}]` (RealtimeConversationItemSystemMessage / …UserMessage), then
 *   optionally `response.create` (ResponseCreateEvent) so the model speaks, in its own voice and
 *   with the conversation as context.
 * - `update`: `session.update` with `session.type: "realtime"` (SessionUpdateEvent,
 *   RealtimeSessionCreateRequest: `type` is required) and only the fields that change:
 *   `instructions`, `tools`, `tool_choice`. The OpenAPI spec (RealtimeClientEventSessionUpdate)
 *   says a client "may send this event at any time to update any field except for `voice` and
 *   `model`. `voice` can be updated only if there have been no other audio outputs yet", and the
 *   SDK: "Voice cannot be changed during the session once the model has responded with audio at
 *   least once". A live phone call is greeted (or answers the caller) as soon as it is attached,
 *   before a command can reach it, so `voice` and `model` are refused here, with that reason.
 * - `cancel`: `response.cancel` (ResponseCancelEvent: without `response_id` it cancels "an
 *   in-progress response in the default conversation"), then `output_audio_buffer.clear`
 *   (OutputAudioBufferClearEvent: "WebRTC/SIP Only: Emit to cut off the current audio response …
 *   should be preceded by a `response.cancel`").
 * - `hangup`: a goodbye response that plays out (`output_audio_buffer.stopped`), then
 *   `POST /v1/realtime/calls/{call_id}/hangup` (calls.d.ts `hangup`), the `end_call` path.
 * - `transfer`: `POST /v1/realtime/calls/{call_id}/refer` with `{target_uri}` (calls.d.ts
 *   `CallReferParams`) to an allowlisted target, the `transfer_call` path: confirmed only by the
 *   socket closing within `transferConfirmMs`. SIP only (REFER is a SIP request).
 */
import type { WireEvent } from '../wire';

export const COMMAND_ACTIONS = ['say', 'update', 'cancel', 'hangup', 'transfer'] as const;
export type CommandAction = (typeof COMMAND_ACTIONS)[number];

/** The longest text a `say` or a goodbye may carry (characters). */
export const MAX_SAY_CHARS = 4000;
/** The longest instructions an `update` may carry (characters). */
export const MAX_INSTRUCTIONS_CHARS = 16_000;
/** The largest command body taken (bytes): anything bigger is refused before it is parsed. */
export const MAX_COMMAND_BODY_BYTES = 64 * 1024;
/** The longest `sender` label kept on a command (characters). */
export const MAX_SENDER_CHARS = 256;

/** The tool choices `session.update` takes (RealtimeToolChoiceConfig), by function name. */
export type CommandToolChoice =
  | 'auto'
  | 'none'
  | 'required'
  | { readonly type: 'function'; readonly name: string };

export type CallCommand =
  | {
      readonly action: 'say';
      readonly text: string;
      /** The message's role: `system` (an instruction the caller does not hear as such) or `user`. */
      readonly role: 'system' | 'user';
      /** Start a response so the model speaks now. @default true */
      readonly respond: boolean;
    }
  | {
      readonly action: 'update';
      readonly instructions?: string;
      /** User tool names from the calls config; the built-ins are always kept. */
      readonly tools?: readonly string[];
      readonly toolChoice?: CommandToolChoice;
    }
  | { readonly action: 'cancel' }
  | {
      readonly action: 'hangup';
      /** What the model is asked to say before the hang-up. @default a short goodbye */
      readonly goodbye?: string;
    }
  | {
      readonly action: 'transfer';
      /** A name from `transferTargets`. */
      readonly target: string;
      /** What the model is asked to say before the REFER. @default nothing: transfer at once */
      readonly announce?: string;
    };

export const COMMAND_STATUSES = ['pending', 'applied', 'refused', 'failed'] as const;
/** `pending` until the owning worker acts: then `applied`, `refused` (it could not be) or `failed`. */
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

/** Why a command was refused (400/404/409 at the API, or `refused` by the worker). */
export const COMMAND_ERROR_CODES = [
  'invalid_json',
  'invalid_body',
  'body_too_large',
  'unknown_action',
  'text_too_long',
  'unknown_tool',
  'unknown_transfer_target',
  'voice_locked',
  'model_locked',
  'call_not_found',
  'call_ended',
  'not_sip',
  'command_not_found',
  'no_active_response',
  'call_leaving',
  'handed_off',
  'store_unavailable',
] as const;
export type CommandErrorCode = (typeof COMMAND_ERROR_CODES)[number];

export interface CommandError {
  readonly code: CommandErrorCode;
  readonly message: string;
}

/** A command as stored (`CMD#<call_id>` / `<id>`) and as the worker gets it. */
export interface StoredCommand {
  readonly id: string;
  readonly callId: string;
  readonly command: CallCommand;
  /** Who sent it: the IAM principal, the JWT subject, `local`, or what a helper named. */
  readonly sender: string;
  /** Epoch ms it was accepted. */
  readonly createdAt: number;
  readonly status: CommandStatus;
  /** The worker that applied (or refused) it, and when. */
  readonly appliedBy?: string;
  readonly appliedAt?: number;
  readonly error?: CommandError;
}

/** What validation needs from the calls config. */
export interface CommandLimits {
  /** The user tools a call may be given (the calls config's `tools`, by name). */
  readonly toolNames: readonly string[];
  /** Allowlisted transfer targets: name → SIP/tel URI. */
  readonly transferTargets: Readonly<Record<string, string>>;
}

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | ({ readonly ok: false; readonly status: number } & CommandError);

function refuse(code: CommandErrorCode, message: string, status = 400): Parsed<never> {
  return { ok: false, status, code, message };
}

const BUILT_INS = new Set(['end_call', 'transfer_call']);

/**
 * Validates a command body (already JSON-parsed). Unknown fields are refused rather than ignored,
 * so a typo (`instruction`) is not silently a no-op. Every lookup by outside text is an own-property
 * check (`Object.hasOwn`): `"__proto__"` or `"toString"` is no target and no tool.
 */
export function parseCallCommand(body: unknown, limits: CommandLimits): Parsed<CallCommand> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return refuse('invalid_body', 'The body must be a JSON object with an "action".');
  const b = body as Record<string, unknown>;
  const action = b.action;
  if (typeof action !== 'string' || !(COMMAND_ACTIONS as readonly string[]).includes(action))
    return refuse(
      'unknown_action',
      `"action" must be one of ${COMMAND_ACTIONS.join(', ')}; got ${short(action)}.`,
    );
  const allowed: Record<CommandAction, readonly string[]> = {
    say: ['action', 'text', 'role', 'respond'],
    update: ['action', 'instructions', 'tools', 'tool_choice', 'voice', 'model', 'audio'],
    cancel: ['action'],
    hangup: ['action', 'goodbye'],
    transfer: ['action', 'target', 'announce'],
  };
  const extra = Object.keys(b).filter((k) => !allowed[action as CommandAction].includes(k));
  if (extra.length > 0)
    return refuse(
      'invalid_body',
      `Unknown field${extra.length > 1 ? 's' : ''} for ${action}: ${extra.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}.`,
    );
  switch (action as CommandAction) {
    case 'say': {
      const text = checkText(b.text, 'text', MAX_SAY_CHARS, true);
      if (!text.ok) return text;
      if (b.role !== undefined && b.role !== 'system' && b.role !== 'user')
        return refuse('invalid_body', `"role" must be "system" or "user"; got ${short(b.role)}.`);
      if (b.respond !== undefined && typeof b.respond !== 'boolean')
        return refuse('invalid_body', '"respond" must be true or false.');
      return ok({
        action: 'say',
        text: text.value as string,
        role: (b.role as 'system' | 'user' | undefined) ?? 'system',
        respond: (b.respond as boolean | undefined) ?? true,
      });
    }
    case 'update':
      return parseUpdate(b, limits);
    case 'cancel':
      return ok({ action: 'cancel' });
    case 'hangup': {
      const goodbye = checkText(b.goodbye, 'goodbye', MAX_SAY_CHARS, false);
      if (!goodbye.ok) return goodbye;
      return ok({
        action: 'hangup',
        ...(goodbye.value !== undefined ? { goodbye: goodbye.value } : {}),
      });
    }
    case 'transfer': {
      const target = b.target;
      if (typeof target !== 'string' || target === '')
        return refuse('invalid_body', '"target" must name a transfer target.');
      if (!Object.hasOwn(limits.transferTargets, target))
        return refuse(
          'unknown_transfer_target',
          `"${target.slice(0, 64)}" is not a transfer target; allowed: ${Object.keys(limits.transferTargets).join(', ') || '(none configured)'}.`,
        );
      const announce = checkText(b.announce, 'announce', MAX_SAY_CHARS, false);
      if (!announce.ok) return announce;
      return ok({
        action: 'transfer',
        target,
        ...(announce.value !== undefined ? { announce: announce.value } : {}),
      });
    }
  }
}

function parseUpdate(b: Record<string, unknown>, limits: CommandLimits): Parsed<CallCommand> {
  const audio = b.audio;
  const audioVoice =
    typeof audio === 'object' &&
    audio !== null &&
    typeof (audio as { output?: unknown }).output === 'object' &&
    (audio as { output?: object | null }).output !== null &&
    Object.hasOwn((audio as { output: object }).output, 'voice');
  if (b.voice !== undefined || audioVoice)
    return refuse(
      'voice_locked',
      'The voice cannot change on a live call: the Realtime API lets session.update change the voice only before the model has responded with audio, and a call is greeted as soon as it is answered. Set the voice in the session config for new calls.',
      409,
    );
  if (b.model !== undefined)
    return refuse(
      'model_locked',
      'The model cannot change during a Realtime session (session.update: any field except voice and model).',
      409,
    );
  if (audio !== undefined)
    return refuse(
      'invalid_body',
      'Only "instructions", "tools" and "tool_choice" can be updated by a command.',
    );
  const instructions = checkText(b.instructions, 'instructions', MAX_INSTRUCTIONS_CHARS, false);
  if (!instructions.ok) return instructions;
  let tools: string[] | undefined;
  if (b.tools !== undefined) {
    if (!Array.isArray(b.tools) || !b.tools.every((t) => typeof t === 'string'))
      return refuse('invalid_body', '"tools" must be a list of tool names.');
    const known = new Set(limits.toolNames);
    const unknown = (b.tools as string[]).filter((t) => !known.has(t) && !BUILT_INS.has(t));
    if (unknown.length > 0)
      return refuse(
        'unknown_tool',
        `Unknown tool${unknown.length > 1 ? 's' : ''}: ${unknown.map((t) => JSON.stringify(t.slice(0, 64))).join(', ')}; configured: ${limits.toolNames.join(', ') || '(none)'}.`,
      );
    // The built-ins are always kept; listing them changes nothing.
    tools = [...new Set((b.tools as string[]).filter((t) => !BUILT_INS.has(t)))];
  }
  let toolChoice: CommandToolChoice | undefined;
  const choice = b.tool_choice;
  if (choice !== undefined) {
    if (choice === 'auto' || choice === 'none' || choice === 'required') toolChoice = choice;
    else if (
      typeof choice === 'object' &&
      choice !== null &&
      (choice as { type?: unknown }).type === 'function' &&
      typeof (choice as { name?: unknown }).name === 'string' &&
      Object.keys(choice).every((k) => k === 'type' || k === 'name')
    ) {
      const name = (choice as { name: string }).name;
      const available = new Set([...(tools ?? limits.toolNames), ...BUILT_INS]);
      if (!available.has(name))
        return refuse(
          'unknown_tool',
          `tool_choice names "${name.slice(0, 64)}", which is not a tool of the call.`,
        );
      toolChoice = { type: 'function', name };
    } else
      return refuse(
        'invalid_body',
        '"tool_choice" must be "auto", "none", "required" or {"type":"function","name":…}.',
      );
  }
  if (instructions.value === undefined && tools === undefined && toolChoice === undefined)
    return refuse('invalid_body', 'An update needs "instructions", "tools" or "tool_choice".');
  return ok({
    action: 'update',
    ...(instructions.value !== undefined ? { instructions: instructions.value } : {}),
    ...(tools !== undefined ? { tools } : {}),
    ...(toolChoice !== undefined ? { toolChoice } : {}),
  });
}

/** Parses a raw body: size first, then JSON, then the command. */
export function parseCommandBody(raw: string, limits: CommandLimits): Parsed<CallCommand> {
  if (Buffer.byteLength(raw, 'utf8') > MAX_COMMAND_BODY_BYTES)
    return refuse('body_too_large', `The body is over ${MAX_COMMAND_BODY_BYTES} bytes.`, 413);
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return refuse('invalid_json', 'The body is not valid JSON.');
  }
  return parseCallCommand(body, limits);
}

/** A stored command read back (from DynamoDB or a nudge), checked again: never trusted as is. */
export function storedCommandOf(item: unknown, limits: CommandLimits): StoredCommand | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const i = item as Record<string, unknown>;
  if (typeof i.id !== 'string' || typeof i.callId !== 'string') return undefined;
  if (typeof i.status !== 'string' || !(COMMAND_STATUSES as readonly string[]).includes(i.status))
    return undefined;
  const parsed = parseCallCommand(wireBodyOf(i.command), limits);
  if (!parsed.ok) return undefined;
  return {
    id: i.id,
    callId: i.callId,
    command: parsed.value,
    sender: typeof i.sender === 'string' ? i.sender : 'unknown',
    createdAt: typeof i.createdAt === 'number' ? i.createdAt : 0,
    status: i.status as CommandStatus,
    ...(typeof i.appliedBy === 'string' ? { appliedBy: i.appliedBy } : {}),
    ...(typeof i.appliedAt === 'number' ? { appliedAt: i.appliedAt } : {}),
    ...(isCommandError(i.error) ? { error: i.error } : {}),
  };
}

/** The body a command was parsed from (its API form), to store and to parse again. */
export function wireBodyOf(command: unknown): unknown {
  if (typeof command !== 'object' || command === null) return command;
  const c = command as Record<string, unknown>;
  if (c.action !== 'update' || !Object.hasOwn(c, 'toolChoice')) return c;
  const { toolChoice, ...rest } = c;
  return { ...rest, tool_choice: toolChoice };
}

function isCommandError(value: unknown): value is CommandError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CommandError).code === 'string' &&
    typeof (value as CommandError).message === 'string'
  );
}

/**
 * A command id: time-ordered (a call's pending commands are applied in the order they were sent),
 * and unguessable enough that one cannot be read by counting.
 */
export function newCommandId(now: number, random: string): string {
  return `cmd_${now.toString(36).padStart(9, '0')}${random}`;
}

/** A safe label of who sent a command, for the timeline and the logs. */
export function senderLabel(sender: string | undefined): string {
  const s = (sender ?? '').trim();
  return s === '' ? 'unknown' : s.slice(0, MAX_SENDER_CHARS);
}

/** The `say` frames: the message item, then (if asked) a response. */
export function sayItem(command: Extract<CallCommand, { action: 'say' }>): WireEvent {
  return {
    type: 'conversation.item.create',
    item: {
      type: 'message',
      role: command.role,
      content: [{ type: 'input_text', text: command.text }],
    },
  };
}

function ok<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

function checkText(
  value: unknown,
  field: string,
  max: number,
  required: boolean,
): Parsed<string | undefined> {
  if (value === undefined) {
    if (required) return refuse('invalid_body', `"${field}" is required.`);
    return ok(undefined);
  }
  if (typeof value !== 'string') return refuse('invalid_body', `"${field}" must be a string.`);
  if (required && value.trim() === '') return refuse('invalid_body', `"${field}" is empty.`);
  if (value.length > max)
    return refuse(
      'text_too_long',
      `"${field}" is ${value.length} characters; at most ${max} are taken.`,
    );
  return ok(value);
}

function short(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
