import { createHash, createHmac } from 'node:crypto';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { CommandView } from '#core/calls/call-control';
import type { CommandError } from '#core/sideband/call-commands';

/**
 * A client of the call-control API (issue 16), for the CLI and for user code: a user handler or a
 * tool can steer another call, or later its own (a tool that started slow work has the model
 * announce the result when it arrives):
 *
 * ```ts
 * import { sendCallCommand } from '…/adapters/call-control-client';
 * await sendCallCommand(callId, { action: 'say', text: 'The refund went through.' });
 * ```
 *
 * The endpoint is `CALL_CONTROL_URL` (set on functions bound with the construct's
 * `grantCallControl`), or `options.url`. An `https://` endpoint (the deployed API, IAM auth) is
 * signed with SigV4 (service `execute-api`) using the default credential chain; a loopback
 * `http://` one (local mode, no auth) is not signed. A JWT-protected API takes `options.token`.
 */
export interface CallControlClientOptions {
  /** The API's base URL. @default process.env.CALL_CONTROL_URL */
  readonly url?: string;
  /** The API's region, for SigV4. @default AWS_REGION, or the one in the execute-api host */
  readonly region?: string;
  /** A bearer token, for an API behind a JWT authorizer (then nothing is signed). */
  readonly token?: string;
  /** A label of who sends, for local mode only (the deployed API records the caller's identity). */
  readonly sender?: string;
  /** Per request. @default 5000 */
  readonly timeoutMs?: number;
}

/** The API's answer: a command view, or its `{error:{code,message}}` with the HTTP status. */
export type ControlAnswer =
  | {
      readonly ok: true;
      readonly status: number;
      readonly command: CommandView & { routed?: string };
    }
  | {
      readonly ok: false;
      readonly status: number;
      readonly error: CommandError | { code: string; message: string };
    };

export class CallControlClient {
  private readonly url: string;
  private readonly signer: SignatureV4 | undefined;

  constructor(private readonly options: CallControlClientOptions = {}) {
    const url = options.url ?? process.env.CALL_CONTROL_URL;
    if (!url) throw new Error('No call-control endpoint: set CALL_CONTROL_URL or pass url.');
    this.url = url.replace(/\/+$/, '');
    const parsed = new URL(this.url);
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
    this.signer =
      options.token || loopback
        ? undefined
        : new SignatureV4({
            service: 'execute-api',
            region:
              options.region ??
              /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(parsed.hostname)?.[1] ??
              process.env.AWS_REGION ??
              'us-east-1',
            credentials: defaultProvider(),
            sha256: NodeSha256,
          });
  }

  /** `POST /calls/{call_id}/commands`: 202 with the command's id, or the refusal. */
  send(callId: string, command: Record<string, unknown>): Promise<ControlAnswer> {
    return this.request(
      'POST',
      `/calls/${encodeURIComponent(callId)}/commands`,
      JSON.stringify(command),
    );
  }

  /** `GET /calls/{call_id}/commands/{id}`: pending, applied, refused or failed. */
  status(callId: string, commandId: string): Promise<ControlAnswer> {
    return this.request(
      'GET',
      `/calls/${encodeURIComponent(callId)}/commands/${encodeURIComponent(commandId)}`,
    );
  }

  /** Polls the command until it is no longer pending, or `timeoutMs` passed (then it is pending). */
  async wait(
    callId: string,
    commandId: string,
    timeoutMs: number,
    everyMs = 200,
  ): Promise<ControlAnswer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const answer = await this.status(callId, commandId);
      if (!answer.ok || answer.command.status !== 'pending' || Date.now() >= deadline)
        return answer;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  private async request(method: string, path: string, body?: string): Promise<ControlAnswer> {
    const url = new URL(`${this.url}${path}`);
    const headers: Record<string, string> = {
      host: url.host,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
      ...(this.options.sender && !this.signer ? { 'x-owh-sender': this.options.sender } : {}),
    };
    let sent = headers;
    if (this.signer) {
      const signed = await this.signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query: {},
        headers,
        ...(body !== undefined ? { body } : {}),
      });
      sent = signed.headers as Record<string, string>;
    }
    const { host: _host, ...fetchHeaders } = sent;
    const response = await fetch(url, {
      method,
      headers: fetchHeaders,
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000),
    });
    const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (response.ok) return { ok: true, status: response.status, command: json as never };
    const error = json.error as { code?: unknown; message?: unknown } | undefined;
    return {
      ok: false,
      status: response.status,
      error: {
        code: typeof error?.code === 'string' ? error.code : `http_${response.status}`,
        message:
          typeof error?.message === 'string'
            ? error.message
            : typeof json.message === 'string'
              ? json.message
              : response.statusText,
      },
    };
  }
}

/**
 * Sends one command to a live call through the call-control API (`CALL_CONTROL_URL`): the one
 * helper user handlers and tools use. Resolves with the API's answer (202 and the command's id,
 * or the refusal); `wait` also waits until the worker applied, refused or failed it.
 */
export async function sendCallCommand(
  callId: string,
  command: Record<string, unknown>,
  options: CallControlClientOptions & { readonly wait?: number } = {},
): Promise<ControlAnswer> {
  const client = new CallControlClient(options);
  const sent = await client.send(callId, command);
  if (!sent.ok || options.wait === undefined) return sent;
  return client.wait(callId, sent.command.id, options.wait);
}

/** SHA-256 and HMAC-SHA256 from node:crypto, as SignatureV4 takes them (its `sha256`). */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret
      ? createHmac(
          'sha256',
          typeof secret === 'string' ? secret : Buffer.from(secret as ArrayBuffer),
        )
      : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}
