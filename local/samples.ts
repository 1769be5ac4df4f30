import { randomBytes } from 'node:crypto';
import type { WebhookEvent } from '#core/webhooks/envelope';

/** Every documented OpenAI webhook type, plus newer ones that must land in `other`. */
export const SAMPLE_TYPES = [
  'batch.cancelled',
  'batch.completed',
  'batch.expired',
  'batch.failed',
  'eval.run.canceled',
  'eval.run.failed',
  'eval.run.succeeded',
  'fine_tuning.job.cancelled',
  'fine_tuning.job.failed',
  'fine_tuning.job.succeeded',
  'response.cancelled',
  'response.completed',
  'response.failed',
  'response.incomplete',
  'realtime.call.incoming',
  'live.call.incoming',
  'live.transport.incoming',
  'safety_identifier.blocked',
  'safety.warning_issued',
  'safety.deactivation_issued',
  'agent.session.created',
] as const;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

const ID_PREFIX: Record<string, string> = {
  batch: 'batch_',
  eval: 'evalrun_',
  fine_tuning: 'ftjob-',
  response: 'resp_',
  safety: 'C-',
  agent: 'sess_',
};

/**
 * A plausible event of the given type, as OpenAI would send it. `objectId` pins the object;
 * `sipHeaders` are the call's INVITE headers (the Realtime simulator gives them, `X-Sim-Scenario`
 * included) instead of a made-up From, To and Call-ID.
 */
export function sampleEvent(
  type: string,
  options: {
    objectId?: string;
    createdAt?: number;
    phone?: string;
    sipHeaders?: readonly { name: string; value: string }[];
  } = {},
): WebhookEvent {
  const family = type.split('.')[0] ?? type;
  const createdAt = options.createdAt ?? Math.floor(Date.now() / 1000);
  const sipHeaders = options.sipHeaders?.map((h) => ({ name: h.name, value: h.value })) ?? [
    {
      name: 'From',
      value: `"Caller" <sip:${options.phone ?? '+14155550123'}@sip.example.com>;tag=${hex(4)}`,
    },
    { name: 'To', value: 'sip:+18005550100@sip.api.openai.com' },
    { name: 'Call-ID', value: hex(12) },
  ];
  let data: Record<string, unknown>;
  if (type === 'realtime.call.incoming') {
    data = { call_id: options.objectId ?? `rtc_u1_${hex(12)}`, sip_headers: sipHeaders };
  } else if (type.startsWith('live.')) {
    data = {
      ...(type === 'live.transport.incoming' ? { type: 'sip' } : {}),
      session_id: options.objectId ?? `live_${hex(12)}`,
      sip_headers: sipHeaders,
    };
  } else if (type === 'safety_identifier.blocked') {
    data = {
      safety_category: 'cyber',
      safety_identifier: options.objectId ?? `user_${hex(6)}`,
      model: 'gpt-5',
    };
  } else {
    data = { id: options.objectId ?? `${ID_PREFIX[family] ?? 'obj_'}${hex(12)}` };
  }
  return { object: 'event', id: `evt_${hex(16)}`, type, created_at: createdAt, data };
}
