import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as path from 'node:path';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { webRtcDepsFromEnv } from '#adapters/runtime/webrtc-session-from-env';
import { parseCallsConfig } from '#core/calls/calls-config';
import { ENV } from '#core/env';
import { type MetricsPublisher, noMetrics } from '#core/observability/metrics';
import type { CallRecord } from '#core/ports/calls';
import { keys } from '#core/table-schema';
import {
  type EndpointRequest,
  handleWebRtcRequest,
  type SessionTimings,
  type WebRtcEndpointDeps,
} from '#core/webrtc/session-endpoint';
import { type AuthKind, WEBRTC_DEFAULTS, type WebRtcConfig } from '#core/webrtc/webrtc-config';
import type { LocalPipeline } from './pipeline';

const EXAMPLE_DIR = path.resolve(import.meta.dirname, '..', 'examples', 'webrtc');
const STATIC: Readonly<Record<string, readonly [string, string]>> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
};

export interface SessionEndpointOptions {
  /** Loopback port. @default 0 (any free one) */
  readonly port?: number;
  /** @default every key of the calls config's sessions */
  readonly profiles?: readonly string[];
  /** @default WEBRTC_DEFAULTS.maxConcurrentSessions */
  readonly maxConcurrentSessions?: number;
  /**
   * The auth kinds the function is told its routes have (as the construct tells it). Local mode
   * has no API Gateway in front, so any other than `open` refuses every request: the function's
   * own check, tested here. @default open for both
   */
  readonly auth?: { readonly session: AuthKind; readonly attach: AuthKind };
  /** The `open` mode's per-IP limit, to try it locally. @default none */
  readonly perIp?: { readonly limit: number; readonly windowSeconds: number };
  readonly metrics?: MetricsPublisher;
  /**
   * Environment over the pipeline's, for the session function only: another `OPENAI_BASE_URL`,
   * `SIGNAL_QUEUE_URL` or `AWS_ENDPOINT_URL_SQS` (tests inject faults this way). @default none
   */
  readonly env?: Readonly<Record<string, string>>;
  /** How long OpenAI's `POST /realtime/calls` may take. @default 10 s */
  readonly openAiTimeoutMs?: number;
  /** Each session request's timings (the bench reads them). */
  readonly onTimings?: (callId: string | undefined, timings: SessionTimings) => void;
}

export interface LocalSessionEndpoint {
  /** `http://127.0.0.1:<port>`: POST `/session`, POST `/calls/{id}/attach`, the demo page at `/`. */
  readonly url: string;
  readonly deps: WebRtcEndpointDeps;
  stop(): Promise<void>;
}

/**
 * The WebRTC session endpoint in local mode: the session Lambda's own code
 * (`webRtcDepsFromEnv` + `handleWebRtcRequest`) on loopback with no auth, against the pipeline's
 * DynamoDB, signal queue and OpenAI (the simulator, or `OPENAI_BASE_URL`). It also serves the
 * demo page (examples/webrtc/) and, for it, `GET /calls/{id}`: the call record and its
 * transcript (local mode only; a deployed stack has no such read route). Needs calls on.
 */
export async function startSessionEndpoint(
  pipeline: LocalPipeline,
  options: SessionEndpointOptions = {},
): Promise<LocalSessionEndpoint> {
  const callsJson = pipeline.env[ENV.callsConfig];
  if (!callsJson || !pipeline.signalQueue)
    throw new Error('The session endpoint needs calls on (a signal queue and a sideband worker).');
  const sessions = parseCallsConfig(callsJson).policy.sessions;
  const profiles = options.profiles ?? Object.keys(sessions);
  const config: WebRtcConfig = {
    profiles,
    ...(profiles.includes('default') ? { defaultProfile: 'default' } : {}),
    maxConcurrentSessions: options.maxConcurrentSessions ?? WEBRTC_DEFAULTS.maxConcurrentSessions,
    maxSdpBytes: WEBRTC_DEFAULTS.maxSdpBytes,
    ...(options.perIp ? { perIp: options.perIp } : {}),
    ...(options.auth ? { auth: options.auth.session, attachAuth: options.auth.attach } : {}),
  };
  const deps = webRtcDepsFromEnv(
    { ...pipeline.env, ...options.env, [ENV.webrtcConfig]: JSON.stringify(config) },
    options.metrics ?? noMetrics,
    options.openAiTimeoutMs !== undefined ? { openAiTimeoutMs: options.openAiTimeoutMs } : {},
  );
  const documents = DynamoDBDocumentClient.from(pipeline.dynamo);
  const server: Server = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: String(error) } }));
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const file = req.method === 'GET' ? STATIC[url.pathname] : undefined;
    if (file) {
      const text = await readFile(path.join(EXAMPLE_DIR, file[0]), 'utf8');
      res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' }).end(text);
      return;
    }
    const view = /^\/calls\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && view) {
      const body = await callView(documents, pipeline.tableName, decodeURIComponent(view[1] ?? ''));
      res
        .writeHead(body ? 200 : 404, { 'content-type': 'application/json' })
        .end(JSON.stringify(body ?? { error: { code: 'not_found', message: 'No such call.' } }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      // API Gateway caps payloads at 10 MB; here a little over the SDP cap is enough to refuse.
      if (size > config.maxSdpBytes * 4) {
        res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ error: { code: 'sdp_too_large', message: 'Too large.' } }));
        req.destroy();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(req.headers))
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    const request: EndpointRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      headers,
      query: Object.fromEntries(url.searchParams),
      body: chunks.length > 0 ? Buffer.concat(chunks).toString('utf8') : undefined,
      sourceIp: req.socket.remoteAddress,
    };
    let timings: SessionTimings | undefined;
    const response = await handleWebRtcRequest(deps, request, (t) => {
      timings = t;
    });
    if (timings) options.onTimings?.(response.headers['x-call-id'], timings);
    res.writeHead(response.statusCode, response.headers).end(response.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const endpoint: LocalSessionEndpoint = {
    url: `http://127.0.0.1:${port}`,
    deps,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  pipeline.stops.push(() => endpoint.stop());
  return endpoint;
}

/** The call record and its transcript lines, in conversation order (the demo page polls this). */
async function callView(
  documents: DynamoDBDocumentClient,
  tableName: string,
  callId: string,
): Promise<{ record: CallRecord; transcript: { role: string; text: string }[] } | undefined> {
  const result = await documents.send(
    new QueryCommand({
      TableName: tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keys.call(callId).pk },
      ConsistentRead: true,
    }),
  );
  const items = (result.Items ?? []) as Record<string, unknown>[];
  const recordItem = items.find((item) => item.sk === 'CALL');
  if (!recordItem) return undefined;
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, ...record } = recordItem;
  const order = (item: Record<string, unknown>) =>
    typeof item.order === 'number' ? item.order : Number(item.at ?? 0);
  const transcript = items
    .filter((item) => item.kind === 'transcript' && typeof item.text === 'string')
    .sort((a, b) => order(a) - order(b))
    .map((item) => ({ role: String(item.role ?? item.speaker ?? ''), text: String(item.text) }));
  return { record: record as unknown as CallRecord, transcript };
}

/**
 * What `npm start` adds for the session endpoint: it is started (calls on; `SESSION_PORT` pins its
 * port), `sessionEndpoint` goes to .local/state.json (for `npm run send -- webrtc`), and the
 * banner gets its lines.
 */
export async function localSessionEndpoint(
  pipeline: LocalPipeline,
  env: NodeJS.ProcessEnv,
): Promise<{ state: { sessionEndpoint: string }; banner: string[] } | undefined> {
  if (!pipeline.signalQueue) return undefined;
  const endpoint = await startSessionEndpoint(pipeline, {
    port: Number(env.SESSION_PORT || 0),
    // Into the pipeline's metrics (.local/metrics.jsonl under npm start), as EMF lines.
    ...(pipeline.options.metrics ? { metrics: pipeline.options.metrics } : {}),
  });
  const profiles = Object.keys(endpoint.deps.profiles).join(', ');
  return {
    state: { sessionEndpoint: endpoint.url },
    banner: [
      ` WebRTC session  ${endpoint.url}/session   (no auth; profiles ${profiles})`,
      ` WebRTC demo     ${endpoint.url}/   (microphone, offer, answer, live transcript)`,
    ],
  };
}
