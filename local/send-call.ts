import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { CallRecord } from '#core/ports/calls';
import { keys } from '#core/table-schema';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { sampleEvent } from './samples';
import { signedWebhookRequest } from './signing';

/**
 * `npm run send -- call`: plays a whole phone call against `npm start`: OpenAI rings us (the
 * webhook), the call is accepted, the worker attaches and greets, the caller asks something, the
 * model calls a tool, the caller hangs up. Prints the timeline with each step's latency.
 */
export interface CallTarget {
  readonly webhookUrl: string;
  readonly webhookSecret: string;
  readonly openAiBaseUrl: string;
  readonly tableName: string;
  readonly dynamoEndpoint: string;
}

interface SimCall {
  call_id: string;
  from: string;
  to: string;
  state: string;
  timeline: Record<string, number>;
  received: { type: string; at: number; item?: { type?: string; output?: string } }[];
}

export async function sendCall(target: CallTarget, out: (line: string) => void): Promise<boolean> {
  const sim = target.openAiBaseUrl.replace(/\/v1\/?$/, '');
  const control = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${sim}/_sim/${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    if (!response.ok)
      throw new Error(
        `simulator ${path}: ${response.status} (is npm start running with the simulator?)`,
      );
    return (await response.json()) as T;
  };
  const documents = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: target.dynamoEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    }),
  );
  const record = async (callId: string) =>
    (
      await documents.send(
        new GetCommand({
          TableName: target.tableName,
          Key: keys.call(callId),
          ConsistentRead: true,
        }),
      )
    ).Item as CallRecord | undefined;
  const until = async <T>(
    probe: () => Promise<T | undefined>,
    what: string,
    timeoutMs = 10_000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const call = await control<SimCall>('POST', 'calls', {});
  out(`☎  ${call.from} calls ${call.to}: OpenAI assigns ${call.call_id}`);
  const event = sampleEvent('realtime.call.incoming', { objectId: call.call_id, phone: call.from });
  const request = signedWebhookRequest(parseWebhookSecret(target.webhookSecret, 'current'), event);
  const posted = await fetch(target.webhookUrl, {
    method: 'POST',
    headers: request.headers,
    body: request.body,
  });
  out(`→  realtime.call.incoming webhook: ${posted.status} ${await posted.text()}`);

  const active = await until(async () => {
    const r = await record(call.call_id);
    return r?.status === 'active' || r?.status === 'rejected' || r?.status === 'ended'
      ? r
      : undefined;
  }, 'the call to be answered');
  if (active.status !== 'active') {
    out(`✗  call ${active.status}: ${active.rejectReason ?? active.endReason ?? ''}`);
    return false;
  }
  const greeted = await until(async () => {
    const c = await control<SimCall>('GET', `calls/${call.call_id}`);
    return c.timeline.firstResponseCreate ? c : undefined;
  }, 'the greeting');
  await control('POST', `calls/${call.call_id}/say`, { text: 'Hi, where is my order 1234?' });
  const tool = await control<{ fn_call_id: string; at: number }>(
    'POST',
    `calls/${call.call_id}/tool`,
    { name: 'lookup_order', arguments: { order_number: '1234' } },
  );
  const answered = await until(async () => {
    const c = await control<SimCall>('GET', `calls/${call.call_id}`);
    return c.received.find(
      (r) => r.type === 'conversation.item.create' && r.item?.type === 'function_call_output',
    )
      ? c
      : undefined;
  }, 'the tool output');
  const output = answered.received.find((r) => r.item?.type === 'function_call_output');
  await control('POST', `calls/${call.call_id}/hangup`);
  const ended = await until(async () => {
    const r = await record(call.call_id);
    return r?.status === 'ended' ? r : undefined;
  }, 'the call end');

  const t = greeted.timeline;
  const received = active.receivedAt;
  const rows: [string, number | undefined, string][] = [
    ['webhook received by the ingress', received, ''],
    ['accept sent (POST /accept)', t.accepted, 'incoming-call handler'],
    ['sideband open (wss …/realtime?call_id=)', t.attached, `worker ${active.owner}`],
    ['greeting sent (response.create)', t.firstResponseCreate, ''],
  ];
  out('\nTimeline');
  let previous = received;
  for (const [label, at, note] of rows) {
    if (at === undefined) continue;
    out(
      `  +${String(at - received).padStart(5)} ms  (${`+${at - previous}`.padStart(6)} ms)  ${label}${note ? `  [${note}]` : ''}`,
    );
    previous = at;
  }
  out(
    `  tool lookup_order answered in ${output ? output.at - tool.at : '?'} ms: ${output?.item?.output ?? ''}`,
  );
  out(`  ended: ${ended.endReason} after ${ended.durationMs} ms, ${ended.totalTokens ?? 0} tokens`);
  const parts = await documents.send(
    new QueryCommand({
      TableName: target.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `CALL#${call.call_id}` },
      ConsistentRead: true,
    }),
  );
  out('\nRecord');
  for (const item of parts.Items ?? []) {
    if (item.kind === 'transcript')
      out(`  ${item.role === 'caller' ? 'caller   ' : 'assistant'}: ${item.text}`);
    if (item.kind === 'tool')
      out(`  tool     : ${item.name}(${item.arguments}) → ${item.output} in ${item.latencyMs} ms`);
  }
  return true;
}
