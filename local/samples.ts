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

export type SimulatedKind = 'batch' | 'fine_tuning.job' | 'response';

/**
 * The API object an event of this type talks about, as OpenAI returns it at that moment: a
 * `batch.failed` names a failed batch with its `errors`, a `response.failed` a failed response with
 * its `error`. `npm run send` gives it to the simulator before sending, so hydration agrees with
 * the event. Undefined for types whose objects are not fetched by id.
 */
export function sampleObject(
  type: string,
  id: string,
): { kind: SimulatedKind; object: Record<string, unknown> } | undefined {
  const now = Math.floor(Date.now() / 1000);
  const outcome = type.split('.').at(-1) ?? '';
  if (type.startsWith('batch.')) {
    const counts = (completed: number, failed: number) => ({
      total: 100,
      completed,
      failed,
    });
    const base = {
      id,
      object: 'batch',
      endpoint: '/v1/responses',
      input_file_id: `file-in-${id.slice(-6)}`,
      completion_window: '24h',
      created_at: now - 3600,
      errors: null,
      output_file_id: null,
      error_file_id: null,
    };
    const byOutcome: Record<string, Record<string, unknown>> = {
      completed: {
        status: 'completed',
        request_counts: counts(98, 2),
        output_file_id: `file-out-${id.slice(-6)}`,
        error_file_id: `file-err-${id.slice(-6)}`,
        completed_at: now,
      },
      failed: {
        // Validation failed: no request ran ([OAS] Batch.errors, a list of {code, message, line}).
        status: 'failed',
        request_counts: { total: 0, completed: 0, failed: 0 },
        errors: {
          object: 'list',
          data: [
            {
              code: 'invalid_json_line',
              message: 'This line is not parseable as valid JSON.',
              param: null,
              line: 1,
            },
          ],
        },
        failed_at: now,
      },
      cancelled: {
        status: 'cancelled',
        request_counts: counts(40, 0),
        output_file_id: `file-out-${id.slice(-6)}`,
        cancelled_at: now,
      },
      expired: {
        status: 'expired',
        request_counts: counts(60, 0),
        output_file_id: `file-out-${id.slice(-6)}`,
        error_file_id: `file-err-${id.slice(-6)}`,
        expired_at: now,
      },
    };
    const state = byOutcome[outcome];
    return state ? { kind: 'batch', object: { ...base, ...state } } : undefined;
  }
  if (type.startsWith('fine_tuning.job.')) {
    const base = {
      id,
      object: 'fine_tuning.job',
      model: 'gpt-4.1-mini-2025-04-14',
      created_at: now - 3600,
      fine_tuned_model: null,
      trained_tokens: null,
      error: null,
    };
    const byOutcome: Record<string, Record<string, unknown>> = {
      succeeded: {
        status: 'succeeded',
        fine_tuned_model: `ft:gpt-4.1-mini-2025-04-14:local::${id.slice(-8)}`,
        trained_tokens: 123_456,
        finished_at: now,
      },
      failed: {
        status: 'failed',
        error: {
          code: 'invalid_training_file',
          message: 'The training file has fewer than 10 examples.',
          param: 'training_file',
        },
        finished_at: now,
      },
      cancelled: { status: 'cancelled', finished_at: now },
    };
    const state = byOutcome[outcome];
    return state ? { kind: 'fine_tuning.job', object: { ...base, ...state } } : undefined;
  }
  if (type.startsWith('response.')) {
    const base = { id, object: 'response', created_at: now - 5, error: null, usage: null };
    const usage = { input_tokens: 120, output_tokens: 480, total_tokens: 600 };
    const byOutcome: Record<string, Record<string, unknown>> = {
      completed: { status: 'completed', usage },
      failed: {
        status: 'failed',
        error: { code: 'server_error', message: 'The model failed to generate a response.' },
      },
      cancelled: { status: 'cancelled' },
      incomplete: {
        status: 'incomplete',
        incomplete_details: { reason: 'max_output_tokens' },
        usage,
      },
    };
    const state = byOutcome[outcome];
    return state ? { kind: 'response', object: { ...base, ...state } } : undefined;
  }
  return undefined;
}
