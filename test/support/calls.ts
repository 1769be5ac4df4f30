import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { CallStatus } from '#core/calls/call-state';
import type { CallRecord } from '#core/ports/calls';
import { keys } from '#core/table-schema';
import type { WireEvent } from '#core/wire';
import type { LocalPipeline } from '../../local/pipeline';
import { sampleEvent } from '../../local/samples';
import type { SimulatedCall } from '../../local/stand-ins/realtime-simulator';
import { eventually, post, signedDelivery } from './webhooks';

/** OpenAI rings us: a simulated call, then its signed `realtime.call.incoming` webhook. */
export async function ring(
  p: LocalPipeline,
  options: { from?: string; to?: string; createdAt?: number; deliveries?: number } = {},
) {
  const realtime = p.realtime;
  if (!realtime) throw new Error('The pipeline has no calls.');
  const call = realtime.createCall({
    ...(options.from ? { from: options.from } : {}),
    ...(options.to ? { to: options.to } : {}),
  });
  const event = sampleEvent('realtime.call.incoming', {
    objectId: call.id,
    phone: call.from,
    ...(options.createdAt ? { createdAt: options.createdAt } : {}),
  });
  (event.data as { sip_headers: { name: string; value: string }[] }).sip_headers[1] = {
    name: 'To',
    value: `sip:${call.to}@sip.api.openai.com`,
  };
  const webhookId = `wh_${event.id.slice(4)}`;
  const responses = await Promise.all(
    Array.from({ length: options.deliveries ?? 1 }, () =>
      post(p.url, signedDelivery(p.webhookSecret, event, { webhookId })),
    ),
  );
  return { call, event, responses };
}

export function documents(p: LocalPipeline): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(p.dynamo);
}

export async function callRecord(
  p: LocalPipeline,
  callId: string,
): Promise<CallRecord | undefined> {
  const result = await documents(p).send(
    new GetCommand({ TableName: p.tableName, Key: keys.call(callId), ConsistentRead: true }),
  );
  return result.Item as CallRecord | undefined;
}

export function waitForStatus(
  p: LocalPipeline,
  callId: string,
  statuses: CallStatus[],
  timeoutMs = 15_000,
): Promise<CallRecord> {
  return eventually(
    async () => {
      const record = await callRecord(p, callId);
      return record && statuses.includes(record.status) ? record : undefined;
    },
    timeoutMs,
    `call ${callId} in ${statuses.join('|')}`,
  );
}

export async function callParts(p: LocalPipeline, callId: string): Promise<WireEvent[]> {
  const result = await documents(p).send(
    new QueryCommand({
      TableName: p.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `CALL#${callId}` },
      ConsistentRead: true,
    }),
  );
  return (result.Items ?? []).filter((item) => item.sk !== 'CALL');
}

export function waitForSent(call: SimulatedCall, type: string, count = 1, timeoutMs = 10_000) {
  return eventually(
    async () => {
      const sent = call.received.filter((r) => r.event.type === type);
      return sent.length >= count ? sent : undefined;
    },
    timeoutMs,
    `${count} × ${type} from the worker`,
  );
}
