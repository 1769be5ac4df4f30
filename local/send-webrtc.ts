import { localCallStore, pollUntil, recordedLines } from './send-call';
import { TIMELINE_LEGEND, timelineLines } from './stand-ins/realtime-timeline';

/**
 * A browser's SDP offer as Chrome makes it for `getUserMedia({audio:true})` plus a data channel
 * (`pc.createDataChannel('oai-events')`, as the WebRTC guide does): one audio section with Opus,
 * one application section. ICE candidates trimmed; everything OpenAI reads is there.
 */
export const SAMPLE_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS 5b7c1f0e',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:Yx7d',
  'a=ice-pwd:cE3kq0x1QnV9yZ2b7fW4Hj6L',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 1D:2C:98:57:0F:7E:51:9D:AB:28:C0:94:6A:11:3E:7B:65:4C:0E:92:F1:77:D8:40:3A:B6:2E:59:C1:08:DF:A4',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=msid:5b7c1f0e 3f0f3c2a',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=ssrc:1001 cname:q3L0m9',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:Yx7d',
  'a=ice-pwd:cE3kq0x1QnV9yZ2b7fW4Hj6L',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 1D:2C:98:57:0F:7E:51:9D:AB:28:C0:94:6A:11:3E:7B:65:4C:0E:92:F1:77:D8:40:3A:B6:2E:59:C1:08:DF:A4',
  'a=setup:actpass',
  'a=mid:1',
  'a=sctp-port:5000',
  'a=max-message-size:262144',
  '',
].join('\r\n');

export interface WebRtcTarget {
  /** The local session endpoint (`sessionEndpoint` in .local/state.json). */
  readonly sessionEndpoint: string;
  readonly openAiBaseUrl: string;
  readonly tableName: string;
  readonly dynamoEndpoint: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the simulator's and the table's JSON, read field by field.
type Json = Record<string, any>;

/**
 * `npm run send -- webrtc [--profile <name>]`: plays a whole browser session against `npm start`.
 * It POSTs an SDP offer to the session endpoint as a browser would, reads the answer and the call
 * id, waits for the sideband worker to attach, then, as the browser's user, says something (the
 * simulator's `/_sim/` controls stand in for the microphone), waits for the answer and hangs up.
 * Prints the timeline of both sides and what the worker recorded.
 */
export async function sendWebRtc(
  target: WebRtcTarget,
  out: (line: string) => void,
  options: { readonly profile?: string } = {},
): Promise<boolean> {
  const sim = target.openAiBaseUrl.replace(/\/v1\/?$/, '');
  const control = async (method: string, path: string, body?: unknown): Promise<Json> => {
    const response = await fetch(`${sim}/_sim/${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await response.json().catch(() => ({}))) as Json;
    if (!response.ok) throw new Error(`simulator ${path}: ${response.status}`);
    return json;
  };
  const { record, parts } = localCallStore(target);

  const query = options.profile ? `?profile=${encodeURIComponent(options.profile)}` : '';
  const postedAt = Date.now();
  const response = await fetch(`${target.sessionEndpoint}/session${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: SAMPLE_OFFER,
  });
  const answer = await response.text();
  const answeredAt = Date.now();
  out(
    `→  POST ${target.sessionEndpoint}/session${query} (SDP offer, ${SAMPLE_OFFER.length} bytes)`,
  );
  if (response.status !== 201) {
    out(`←  ${response.status} ${answer}`);
    return false;
  }
  const callId = response.headers.get('x-call-id') ?? '';
  out(
    `←  201 SDP answer (${answer.split('\r\n').filter(Boolean).length} lines) in ${answeredAt - postedAt} ms; Location ${response.headers.get('location')}`,
  );
  out(`   call ${callId}`);
  const attached = await pollUntil(async () => {
    const r = await record(callId);
    return r?.attachedAt !== undefined ? r : undefined;
  }, 15_000);
  if (!attached) {
    out('⚠  the sideband did not attach within 15 s');
    return false;
  }
  out(
    `   sideband attached by worker ${attached.owner} ${attached.attachedAt - answeredAt} ms after the answer`,
  );
  out('   the browser user speaks: "Where is my order 4417?"');
  await control('POST', `calls/${callId}/say`, { text: 'Where is my order 4417?' });
  await pollUntil(async () => {
    const view = await control('GET', `calls/${callId}`);
    return (view.items ?? []).some((i: Json) => i.role === 'assistant' && i.text)
      ? true
      : undefined;
  }, 10_000);
  out('   the browser hangs up');
  await control('POST', `calls/${callId}/hangup`);
  const ended = await pollUntil(async () => {
    const r = await record(callId);
    return r?.status === 'ended' ? r : undefined;
  }, 10_000);
  const view = await control('GET', `calls/${callId}`);

  out(`\nTimeline  (${TIMELINE_LEGEND})`);
  for (const line of timelineLines(view.log ?? [], { origin: postedAt })) out(`  ${line}`);
  out("\nWorker's record");
  const stored = ended ?? (await record(callId));
  out(
    `  status ${stored?.status}${stored?.endReason ? `: ${stored.endReason}` : ''}, channel ${stored?.channel}, profile ${stored?.profile}`,
  );
  for (const line of recordedLines((await parts(callId)).filter((i) => i.sk !== 'CALL'))) out(line);
  return Boolean(ended);
}

/**
 * `npm run send -- webrtc` from local mode's state: needs the session endpoint and the simulator
 * (its `/_sim/` controls stand in for the browser user's voice). Returns the exit code.
 */
export async function playWebRtc(
  state: Partial<WebRtcTarget> & { simulator?: boolean },
): Promise<number> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (!state.sessionEndpoint || !state.openAiBaseUrl || !state.tableName || !state.dynamoEndpoint) {
    process.stderr.write(
      'npm run send: webrtc needs `npm start` with calls on (its state has no sessionEndpoint).\n',
    );
    return 1;
  }
  if (!state.simulator) {
    process.stderr.write(
      'npm run send: webrtc plays the browser user through the Realtime simulator: run npm start without OPENAI_BASE_URL (against real OpenAI, open the demo page instead).\n',
    );
    return 1;
  }
  const target: WebRtcTarget = {
    sessionEndpoint: state.sessionEndpoint,
    openAiBaseUrl: state.openAiBaseUrl,
    tableName: state.tableName,
    dynamoEndpoint: state.dynamoEndpoint,
  };
  return (await sendWebRtc(target, print)) ? 0 : 1;
}
