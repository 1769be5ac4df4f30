/**
 * The WebRTC session endpoint's pure half: what a browser's request must be, which profile it
 * picks, what is forwarded to OpenAI, and what an OpenAI failure becomes.
 *
 * References (read before changing anything here):
 * - OpenAI "Realtime API with WebRTC" and "Webhooks and server-side controls" guides
 *   (developers.openai.com/api/docs/guides/realtime-webrtc, …/realtime-server-controls): the
 *   browser's SDP offer is POSTed to `/v1/realtime/calls`; the answer's `Location` header carries
 *   the call id, which a server opens the same sideband with (`wss://…/v1/realtime?call_id=…`).
 * - openai-openapi openapi.yaml `POST /realtime/calls` (operationId create-realtime-call): the
 *   body is `multipart/form-data` with `sdp` (`application/sdp`) and `session` (`application/json`,
 *   RealtimeSessionCreateRequestGA: the same object `/accept` takes), or `application/sdp` alone
 *   with an ephemeral key; the answer is `201` with `Location` and an `application/sdp` body.
 * - node_modules/openai resources/realtime/calls.d.ts `CallCreateParams { sdp; session? }`, and
 *   client-secrets.d.ts (the ephemeral-key route we do not use: the "unified interface" keeps the
 *   project key on the server and sends the session with the offer).
 */
import { type AcceptBody, buildAcceptBody, validateAcceptBody } from '../calls/accept-body';
import type { SessionConfig, ToolDefinition } from '../calls/session-config';
import type { Failure } from '../result';

/** Where the browser POSTs its offer, and where a team that did its own SDP exchange attaches. */
export const WEBRTC_ROUTES = {
  session: '/session',
  attach: '/calls/{call_id}/attach',
} as const;

/** The query parameter and header a browser names its profile with. */
export const PROFILE_QUERY = 'profile';
export const PROFILE_HEADER = 'x-session-profile';
/** The response header the call id is returned in (besides `Location`). */
export const CALL_ID_HEADER = 'x-call-id';

/**
 * The largest offer accepted. A browser's audio-plus-data-channel offer is 2 to 6 KB (more with
 * many ICE candidates); 64 KiB leaves room and keeps a flood cheap.
 */
export const DEFAULT_MAX_SDP_BYTES = 64 * 1024;

/**
 * OpenAI call ids: `rtc_` then letters, digits, `_` (docs example
 * `rtc_u1_9c6574da8b8a41a18da9308f4ad974ce`; the SIP webhook's `call_id` has the same form).
 */
export const CALL_ID = /^rtc_[A-Za-z0-9_]{4,128}$/;

/** A profile name as props may give it (a key of `calls.sessions`). */
export const PROFILE_NAME = /^[A-Za-z0-9_+.:-]{1,64}$/;

export type WebRtcErrorCode =
  | 'unsupported_media_type'
  | 'sdp_too_large'
  | 'invalid_sdp'
  | 'unknown_profile'
  | 'invalid_call_id'
  | 'invalid_json'
  | 'invalid_body'
  | 'too_many_sessions'
  | 'rate_limited'
  | 'already_attached'
  | 'not_found'
  | 'method_not_allowed'
  | 'unauthenticated'
  | 'openai_error'
  | 'openai_unreachable'
  | 'invalid_answer'
  | 'unavailable';

export type WebRtcFailure = Failure<WebRtcErrorCode>;

const fail = (status: number, code: WebRtcErrorCode, message: string): WebRtcFailure => ({
  ok: false,
  status,
  code,
  message,
});

/** Header names lower-cased: API Gateway (payload 2.0) and node's http both give them so. */
export type Headers = Readonly<Record<string, string | undefined>>;

/**
 * The SDP offer of a session request, checked: content type `application/sdp` (parameters such as
 * `; charset=utf-8` allowed), at most `maxBytes`, and an SDP that is plausibly a WebRTC offer
 * (RFC 8866: starts with `v=0`, has an `o=` line and at least one `m=` line; every line is
 * `<letter>=…`). OpenAI checks the rest; this only keeps junk from costing an API call.
 */
export function checkOffer(
  headers: Headers,
  body: string | undefined,
  maxBytes: number = DEFAULT_MAX_SDP_BYTES,
): { ok: true; sdp: string } | WebRtcFailure {
  const type = (headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/sdp')
    return fail(
      415,
      'unsupported_media_type',
      `The offer must be sent as Content-Type: application/sdp; got ${type ? `"${type}"` : 'none'}.`,
    );
  if (body === undefined || body.length === 0)
    return fail(400, 'invalid_sdp', 'The body must be the SDP offer; it is empty.');
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > maxBytes)
    return fail(
      413,
      'sdp_too_large',
      `The offer is ${bytes} bytes; at most ${maxBytes} are accepted.`,
    );
  const problem = sdpProblem(body);
  if (problem) return fail(400, 'invalid_sdp', problem);
  return { ok: true, sdp: body };
}

/** Why `text` is not an SDP offer worth forwarding, or undefined. */
export function sdpProblem(text: string): string | undefined {
  const lines = text.split(/\r?\n/).filter((line) => line.length > 0);
  if (lines[0] !== 'v=0') return 'The SDP must start with the line "v=0".';
  const bad = lines.find((line) => !/^[a-z]=/.test(line));
  if (bad !== undefined)
    return `Every SDP line must be "<letter>=<value>"; found ${JSON.stringify(bad.slice(0, 40))}.`;
  if (!lines.some((line) => line.startsWith('o='))) return 'The SDP has no origin ("o=") line.';
  if (!lines.some((line) => line.startsWith('m=')))
    return 'The SDP has no media ("m=") line: the offer needs an audio track or a data channel.';
  return undefined;
}

/**
 * The profile a request names (`?profile=` first, then the `X-Session-Profile` header), or
 * `fallback` when it names none. Only an own property of `allowed` is a profile: `toString` or
 * `__proto__` never are.
 */
export function selectProfile<T>(
  query: Readonly<Record<string, string | undefined>>,
  headers: Headers,
  allowed: Readonly<Record<string, T>>,
  fallback: string | undefined,
): { ok: true; name: string; profile: T } | WebRtcFailure {
  const named = query[PROFILE_QUERY] ?? headers[PROFILE_HEADER];
  const name = named === undefined || named === '' ? fallback : named;
  if (name === undefined)
    return fail(
      400,
      'unknown_profile',
      `Name a profile (?${PROFILE_QUERY}=… or ${PROFILE_HEADER}).`,
    );
  if (!Object.hasOwn(allowed, name))
    return fail(
      400,
      'unknown_profile',
      `Unknown profile ${JSON.stringify(name.slice(0, 64))}; known: ${Object.keys(allowed).join(', ')}.`,
    );
  return { ok: true, name, profile: allowed[name] as T };
}

/**
 * The `session` sent with the offer: the SIP accept body of the profile's session config
 * (core/calls/accept-body.ts), so a profile means the same on both channels. No transfer targets:
 * `transfer_call` is SIP REFER, which a WebRTC call cannot do (calls.d.ts `refer`: "Transfer an
 * active SIP call"). Throws on an unknown tool name (props are validated at synth).
 */
export function webRtcSessionBody(
  session: SessionConfig,
  userTools: readonly ToolDefinition[],
): { ok: true; body: AcceptBody } | { ok: false; problems: string[] } {
  try {
    const body = buildAcceptBody(session, userTools, []);
    const problems = validateAcceptBody(body);
    return problems.length === 0 ? { ok: true, body } : { ok: false, problems };
  } catch (error) {
    return { ok: false, problems: [error instanceof Error ? error.message : String(error)] };
  }
}

/** One part of a `multipart/form-data` body. */
export interface FormPart {
  readonly name: string;
  readonly contentType: string;
  readonly value: string;
}

/**
 * A `multipart/form-data` body (RFC 7578) with a content type per part, as the OpenAPI spec's
 * `encoding` asks (`sdp: application/sdp`, `session: application/json`) and its curl example
 * sends (`-F "sdp=<offer.sdp;type=application/sdp" -F 'session=…;type=application/json'`).
 * Parts are fields, not files: no `filename`.
 */
export function multipartBody(
  boundary: string,
  parts: readonly FormPart[],
): { contentType: string; body: string } {
  if (!/^[A-Za-z0-9'()+_,./:=?-]{1,70}$/.test(boundary)) throw new Error('Invalid boundary.');
  const body = `${parts
    .map(
      (p) =>
        `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"\r\nContent-Type: ${p.contentType}\r\n\r\n${p.value}\r\n`,
    )
    .join('')}--${boundary}--\r\n`;
  for (const p of parts)
    if (p.value.includes(`--${boundary}`)) throw new Error(`Part ${p.name} contains the boundary.`);
  return { contentType: `multipart/form-data; boundary=${boundary}`, body };
}

/** The `POST /realtime/calls` request for an offer and a session. */
export function createCallRequest(
  sdp: string,
  session: unknown,
  boundary: string,
): { contentType: string; body: string } {
  return multipartBody(boundary, [
    { name: 'sdp', contentType: 'application/sdp', value: sdp },
    { name: 'session', contentType: 'application/json', value: JSON.stringify(session) },
  ]);
}

/**
 * The call id in a `Location` header: its last path segment (the server-controls guide:
 * `location?.split("/").pop()`), e.g. `/v1/realtime/calls/rtc_u1_…`. Undefined unless it is a
 * call id.
 */
export function callIdFromLocation(location: string | undefined | null): string | undefined {
  if (!location) return undefined;
  const path = location.split(/[?#]/)[0] ?? '';
  const last = path.split('/').filter(Boolean).pop();
  return last !== undefined && CALL_ID.test(last) ? last : undefined;
}

/** Anything that looks like a key or a bearer token, masked (an OpenAI 401 message quotes the key's ends). */
export function scrubSecrets(text: string): string {
  return text
    .replace(/\b(sk|ek|rk)-[A-Za-z0-9_*-]{4,}/g, '$1-***')
    .replace(/Bearer\s+\S+/gi, 'Bearer ***');
}

/** An OpenAI answer that was not a 201 with an SDP: status, and its `{error:{code,message}}`. */
export interface OpenAiFailure {
  readonly status: number;
  readonly body: string;
}

/**
 * What the browser is told when OpenAI refused or failed the call: always 502 (the gateway is us),
 * with OpenAI's status and error code and a message with no secret in it.
 */
export function openAiFailureResponse(failure: OpenAiFailure): {
  status: 502;
  body: { error: { code: string; message: string; openai_status: number } };
} {
  let code = 'openai_error';
  let message = `OpenAI answered ${failure.status}.`;
  try {
    const parsed = JSON.parse(failure.body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string' && parsed.error.code) code = parsed.error.code;
    if (typeof parsed.error?.message === 'string' && parsed.error.message)
      message = parsed.error.message;
  } catch {
    // Not JSON (a proxy's HTML page): the status says enough.
  }
  return {
    status: 502,
    body: {
      error: {
        code: scrubSecrets(code).slice(0, 100),
        message: scrubSecrets(message).slice(0, 500),
        openai_status: failure.status,
      },
    },
  };
}

/** The optional metadata an attach may carry onto the call record: a few short strings. */
export const METADATA_LIMITS = { keys: 16, keyLength: 64, valueLength: 512 } as const;

/** `POST /calls/{call_id}/attach`'s body: `{ profile, metadata? }`, checked. */
export function parseAttachBody(
  text: string | undefined,
):
  | { ok: true; profile: string | undefined; metadata: Record<string, string> | undefined }
  | WebRtcFailure {
  if (text === undefined || text.trim() === '')
    return { ok: true, profile: undefined, metadata: undefined };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return fail(
      400,
      'invalid_json',
      'The body must be JSON: { "profile": "…", "metadata": { … } }.',
    );
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return fail(400, 'invalid_body', 'The body must be a JSON object.');
  const { profile, metadata, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0)
    return fail(400, 'invalid_body', `Unknown field(s): ${extra.slice(0, 5).join(', ')}.`);
  if (profile !== undefined && (typeof profile !== 'string' || !PROFILE_NAME.test(profile)))
    return fail(400, 'invalid_body', 'profile must be a profile name.');
  if (metadata === undefined) return { ok: true, profile, metadata: undefined };
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
    return fail(400, 'invalid_body', 'metadata must be an object of strings.');
  const entries = Object.entries(metadata);
  if (entries.length > METADATA_LIMITS.keys)
    return fail(400, 'invalid_body', `metadata takes at most ${METADATA_LIMITS.keys} keys.`);
  const clean: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (!/^[A-Za-z0-9_.-]+$/.test(key) || key.length > METADATA_LIMITS.keyLength)
      return fail(
        400,
        'invalid_body',
        `metadata key ${JSON.stringify(key.slice(0, 64))} is not allowed.`,
      );
    if (typeof value !== 'string' || value.length > METADATA_LIMITS.valueLength)
      return fail(
        400,
        'invalid_body',
        `metadata.${key} must be a string of at most ${METADATA_LIMITS.valueLength} characters.`,
      );
    clean[key] = value;
  }
  return { ok: true, profile, metadata: clean };
}
