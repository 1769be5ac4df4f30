import { createHash, randomBytes } from 'node:crypto';
import {
  apiError,
  type OpenAiSimulator,
  type RouteResult,
  type SimulatedRequest,
} from './openai-simulator';
import type { RealtimeSimulator } from './realtime-simulator';

/**
 * `POST /v1/realtime/calls`: a browser's WebRTC call, written from the reference and not from
 * this project's validators (nothing here comes from core/):
 * - [OAS] openai/openai-openapi openapi.yaml, `/realtime/calls` post (create-realtime-call):
 *   request `multipart/form-data` (`RealtimeCallCreateRequest`: `sdp` required, `session`
 *   optional, `additionalProperties: false`; encodings `sdp: application/sdp`,
 *   `session: application/json`) or `application/sdp` alone; answer `201` with a `Location`
 *   header ("Relative URL containing the call ID") and an `application/sdp` body.
 * - [SDK] test/reference-sdk/node_modules/openai/resources/realtime/calls.d.ts `CallCreateParams { sdp; session? }`.
 * - [Guide] "Webhooks and server-side controls": the call id is `Location.split('/').pop()`
 *   (e.g. `rtc_u1_9c6574da8b8a41a18da9308f4ad974ce`), and the sideband is
 *   `wss://…/v1/realtime?call_id=…` with the project key.
 * The answer is a syntactically valid SDP answer to the offer (RFC 8866 / RFC 8829 JSEP): one
 * `m=` line per offered one, same order and `mid`s, a BUNDLE group, ICE credentials, a DTLS
 * fingerprint and `a=setup:active`; audio answers with the offer's Opus payload type. Nothing is
 * ever sent on it: a browser applies it, then its ICE checks find no one (enough for tests).
 */

/** How long each create took inside the simulator, by call id (the bench subtracts it). */
export interface CreateTiming {
  readonly receivedAt: number;
  readonly answeredAt: number;
}

export interface RealtimeCallsRoute {
  readonly timings: Map<string, CreateTiming>;
  /** Holds each create's answer back this long (a slow OpenAI). @default 0 */
  delayMs: number;
}

/** Registers the route on the simulator (after `RealtimeSimulator` exists, which serves the sideband). */
export function installRealtimeCallsRoute(
  api: OpenAiSimulator,
  realtime: RealtimeSimulator,
): RealtimeCallsRoute {
  const state: RealtimeCallsRoute = { timings: new Map(), delayMs: 0 };
  api.route('POST', /^\/v1\/realtime\/calls$/, async (request) => {
    const receivedAt = Date.now();
    const parsed = parseCreateCall(request);
    if ('error' in parsed) return { status: 400, body: parsed.error };
    const problem = offerProblem(parsed.sdp);
    if (problem) return { status: 400, body: apiError('invalid_offer', problem) };
    if (state.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
    const c = realtime.createWebRtcCall(parsed.session ?? { type: 'realtime' });
    const result: RouteResult = {
      status: 201,
      headers: { 'content-type': 'application/sdp', location: `/v1/realtime/calls/${c.id}` },
      text: answerFor(parsed.sdp),
    };
    state.timings.set(c.id, { receivedAt, answeredAt: Date.now() });
    return result;
  });
  return state;
}

type Parsed = { sdp: string; session: unknown } | { error: ReturnType<typeof apiError> };

/** The offer and session of a create request, either content type [OAS]. */
export function parseCreateCall(request: SimulatedRequest): Parsed {
  const type = (request.contentType ?? '').toLowerCase();
  const raw = request.rawBody ?? '';
  if (type.startsWith('application/sdp')) return { sdp: raw, session: undefined };
  if (!type.startsWith('multipart/form-data'))
    return {
      error: apiError(
        'unsupported_content_type',
        'Content-Type must be multipart/form-data or application/sdp.',
      ),
    };
  const boundary = /boundary="?([^";]+)"?/i.exec(request.contentType ?? '')?.[1];
  if (!boundary)
    return { error: apiError('invalid_multipart', 'The multipart body has no boundary.') };
  const fields = new Map<string, string>();
  for (const chunk of raw.split(`--${boundary}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const split = chunk.indexOf('\r\n\r\n');
    if (split < 0) continue;
    const head = chunk.slice(0, split);
    const name = /name="([^"]*)"/i.exec(head)?.[1];
    if (name !== undefined) fields.set(name, chunk.slice(split + 4).replace(/\r\n$/, ''));
  }
  // [OAS] RealtimeCallCreateRequest: additionalProperties false; sdp required.
  const unknown = [...fields.keys()].filter((k) => k !== 'sdp' && k !== 'session');
  if (unknown.length > 0)
    return { error: apiError('unknown_parameter', `Unknown parameter: '${unknown[0]}'.`) };
  const sdp = fields.get('sdp');
  if (sdp === undefined)
    return { error: apiError('missing_required_parameter', "Missing required parameter: 'sdp'.") };
  const sessionText = fields.get('session');
  if (sessionText === undefined) return { sdp, session: undefined };
  try {
    const session = JSON.parse(sessionText) as unknown;
    if (typeof session !== 'object' || session === null || Array.isArray(session))
      return { error: apiError('invalid_type', "Invalid type for 'session': expected an object.") };
    return { sdp, session };
  } catch {
    return { error: apiError('invalid_json', "We could not parse the JSON of 'session'.") };
  }
}

/** Why the simulator cannot answer this offer (RFC 8866 shape), or undefined. */
export function offerProblem(sdp: string): string | undefined {
  const lines = sdp.split(/\r?\n/).filter(Boolean);
  if (lines[0] !== 'v=0') return 'The SDP offer must start with v=0.';
  if (!lines.some((l) => l.startsWith('m='))) return 'The SDP offer has no media section.';
  return undefined;
}

/** A syntactically valid SDP answer to `offer` (see the header comment). */
export function answerFor(offer: string): string {
  const lines = offer.split(/\r?\n/).filter(Boolean);
  const sections: string[][] = [];
  for (const line of lines) {
    if (line.startsWith('m=')) sections.push([line]);
    else sections.at(-1)?.push(line);
  }
  const ufrag = randomBytes(6).toString('base64url').slice(0, 8);
  const pwd = randomBytes(24).toString('base64url').slice(0, 32);
  const fingerprint = (
    createHash('sha256').update(randomBytes(32)).digest('hex').toUpperCase().match(/../g) ?? []
  ).join(':');
  const mids = sections.map((s, i) => s.find((l) => l.startsWith('a=mid:'))?.slice(6) ?? String(i));
  const out = [
    'v=0',
    `o=- ${randomBytes(4).readUInt32BE()} 1 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    `a=group:BUNDLE ${mids.join(' ')}`,
    'a=msid-semantic:WMS *',
  ];
  sections.forEach((section, i) => {
    const [kind = 'audio', , proto = 'UDP/TLS/RTP/SAVPF', ...formats] = (section[0] ?? '')
      .slice(2)
      .split(' ');
    const common = [
      'c=IN IP4 0.0.0.0',
      `a=mid:${mids[i]}`,
      `a=ice-ufrag:${ufrag}`,
      `a=ice-pwd:${pwd}`,
      `a=fingerprint:sha-256 ${fingerprint}`,
      'a=setup:active',
    ];
    if (kind === 'application') {
      out.push(
        `m=application 9 ${proto} ${formats.join(' ') || 'webrtc-datachannel'}`,
        ...common,
        'a=sctp-port:5000',
      );
      return;
    }
    if (kind !== 'audio') {
      // Media the API does not take (video): rejected with port 0, as JSEP answers do.
      out.push(
        `m=${kind} 0 ${proto} ${formats[0] ?? '0'}`,
        'c=IN IP4 0.0.0.0',
        `a=mid:${mids[i]}`,
        'a=inactive',
      );
      return;
    }
    const opus = section
      .map((l) => /^a=rtpmap:(\d+) opus\/48000\/2$/i.exec(l)?.[1])
      .find((pt) => pt !== undefined);
    const pt = opus ?? formats[0] ?? '111';
    const offeredDirection = section.find((l) =>
      /^a=(sendrecv|sendonly|recvonly|inactive)$/.test(l),
    );
    const direction =
      offeredDirection === 'a=sendonly'
        ? 'recvonly'
        : offeredDirection === 'a=recvonly'
          ? 'sendonly'
          : offeredDirection === 'a=inactive'
            ? 'inactive'
            : 'sendrecv';
    out.push(
      `m=audio 9 ${proto} ${pt}`,
      ...common,
      `a=${direction}`,
      'a=rtcp-mux',
      `a=rtpmap:${pt} opus/48000/2`,
      `a=fmtp:${pt} minptime=10;useinbandfec=1`,
      `a=msid:sim-stream sim-audio-${i}`,
    );
  });
  return `${out.join('\r\n')}\r\n`;
}
