import { describe, expect, it } from 'vitest';
import { maskAllNumbers, maskPhoneNumbers } from '#core/observability/mask';
import { CATEGORIES, categoryOf } from '#core/webhooks/categories';
import { parseEnvelope, readEnvelope } from '#core/webhooks/envelope';
import {
  applyDetails,
  applyTransition,
  MAX_HISTORY,
  type ObjectState,
  objectRefOf,
  type Transition,
} from '#core/webhooks/projection';
import {
  carriesAsText,
  fromMessageAttributes,
  messageSize,
  toMessageAttributes,
  unwrapBody,
  wrapBytes,
  wrapRef,
} from '#core/webhooks/queue-message';
import { SAMPLE_TYPES, sampleEvent } from '../../local/samples';

describe('categoryOf', () => {
  it.each([
    ['batch.completed', 'batch'],
    ['fine_tuning.job.succeeded', 'fine_tuning'],
    ['eval.run.canceled', 'eval'],
    ['response.incomplete', 'response'],
    ['realtime.call.incoming', 'realtime'],
    ['safety.warning_issued', 'other'],
    ['safety_identifier.blocked', 'other'],
    ['live.transport.incoming', 'other'],
    ['agent.session.created', 'other'],
    ['batch', 'batch'],
    ['batchy.thing', 'other'],
    ['brand_new.type.from.2027', 'other'],
  ])('%s → %s', (type, category) => {
    expect(categoryOf(type)).toBe(category);
  });

  it('routes every sample type to a known category', () => {
    for (const type of SAMPLE_TYPES) expect(CATEGORIES).toContain(categoryOf(type));
  });
});

describe('parseEnvelope', () => {
  it('accepts every documented sample', () => {
    for (const type of SAMPLE_TYPES)
      expect(parseEnvelope(JSON.stringify(sampleEvent(type))).ok).toBe(true);
  });

  it.each([
    ['not JSON', '{', 'invalid_json'],
    ['empty', '', 'invalid_json'],
    ['an array', '[]', 'invalid_envelope'],
    ['null', 'null', 'invalid_envelope'],
    ['no id', '{"type":"batch.completed","created_at":1,"data":{}}', 'invalid_envelope'],
    [
      'numeric id',
      '{"id":1,"type":"batch.completed","created_at":1,"data":{}}',
      'invalid_envelope',
    ],
    ['no type', '{"id":"evt_1","created_at":1,"data":{}}', 'invalid_envelope'],
    [
      'type with spaces',
      '{"id":"evt_1","type":"batch completed","created_at":1,"data":{}}',
      'invalid_envelope',
    ],
    [
      'string created_at',
      '{"id":"evt_1","type":"a.b","created_at":"1","data":{}}',
      'invalid_envelope',
    ],
    [
      'fractional created_at',
      '{"id":"evt_1","type":"a.b","created_at":1.5,"data":{}}',
      'invalid_envelope',
    ],
    [
      'data is an array',
      '{"id":"evt_1","type":"a.b","created_at":1,"data":[]}',
      'invalid_envelope',
    ],
    ['data missing', '{"id":"evt_1","type":"a.b","created_at":1}', 'invalid_envelope'],
  ])('rejects %s', (_name, body, code) => {
    expect(parseEnvelope(body)).toMatchObject({ ok: false, status: 400, code });
  });
});

describe('objectRefOf', () => {
  it.each([
    [
      'batch.failed',
      { id: 'batch_1' },
      { objectId: 'batch_1', objectType: 'batch', status: 'failed' },
    ],
    [
      'fine_tuning.job.succeeded',
      { id: 'ftjob-1' },
      { objectId: 'ftjob-1', objectType: 'fine_tuning.job', status: 'succeeded' },
    ],
    [
      'eval.run.canceled',
      { id: 'evalrun_1' },
      { objectId: 'evalrun_1', objectType: 'eval.run', status: 'canceled' },
    ],
    [
      'response.completed',
      { id: 'resp_1' },
      { objectId: 'resp_1', objectType: 'response', status: 'completed' },
    ],
    [
      'realtime.call.incoming',
      { call_id: 'rtc_1' },
      { objectId: 'rtc_1', objectType: 'realtime.call', status: 'incoming' },
    ],
    [
      'safety.warning_issued',
      { id: 'C-1' },
      { objectId: 'C-1', objectType: 'safety', status: 'warning_issued' },
    ],
  ])('%s', (type, data, ref) => {
    expect(objectRefOf({ type, data })).toEqual(ref);
  });

  it('has no object when the event names none', () => {
    expect(
      objectRefOf({ type: 'safety_identifier.blocked', data: { safety_identifier: 'u' } }),
    ).toBeUndefined();
    expect(objectRefOf({ type: 'realtime.call.incoming', data: {} })).toBeUndefined();
  });
});

describe('object projection', () => {
  const ref = { objectId: 'batch_1', objectType: 'batch', status: '' };
  const t = (
    status: string,
    createdAt: number,
    eventId = `evt_${status}_${createdAt}`,
  ): Transition => ({
    status,
    type: `batch.${status}`,
    eventId,
    createdAt,
    receivedAt: createdAt * 1000,
  });
  const fold = (transitions: Transition[]) =>
    transitions.reduce<ObjectState | undefined>(
      (state, transition) =>
        applyTransition(state, { ...ref, status: transition.status }, transition, 0).state,
      undefined,
    );

  it('keeps the newest status when an older event arrives late', () => {
    const state = fold([t('in_progress', 10), t('completed', 20), t('validating', 5)]);
    expect(state?.status).toBe('completed');
    expect(state?.history.map((h) => h.status)).toEqual(['validating', 'in_progress', 'completed']);
  });

  it('applies a duplicate once', () => {
    const first = fold([t('completed', 20)]);
    const again = applyTransition(first, { ...ref, status: 'completed' }, t('completed', 20), 1);
    expect(again.changed).toBe(false);
    expect(again.state.history).toHaveLength(1);
  });

  it('reaches the same state whatever the delivery order (all permutations of 5 events)', () => {
    const events = [t('a', 1), t('b', 2), t('c', 3), t('d', 3, 'evt_tie'), t('e', 4)];
    const permutations = (items: Transition[]): Transition[][] =>
      items.length <= 1
        ? [items]
        : items.flatMap((item, i) =>
            permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [
              item,
              ...rest,
            ]),
          );
    const expected = fold(events);
    for (const order of permutations(events)) {
      const state = fold([...order, ...order.slice(0, 2)]);
      expect({ status: state?.status, history: state?.history }).toEqual({
        status: expected?.status,
        history: expected?.history,
      });
    }
  });

  it('bounds the history', () => {
    const state = fold(Array.from({ length: MAX_HISTORY + 20 }, (_, i) => t('s', i)));
    expect(state?.history).toHaveLength(MAX_HISTORY);
    expect(state?.history[0]?.createdAt).toBe(20);
  });

  it('lets the most recent fetch win for hydrated details', () => {
    const base = fold([t('completed', 1)]) as ObjectState;
    const newer = applyDetails(base, { status: 'completed' }, 200);
    expect(applyDetails(newer, { status: 'in_progress' }, 100)).toBe(newer);
    expect(applyDetails(newer, { status: 'failed' }, 300).details).toEqual({ status: 'failed' });
  });
});

describe('queue message', () => {
  it('round-trips through SQS message attributes', () => {
    const meta = {
      webhookId: 'wh_1',
      eventId: 'evt_1',
      type: 'batch.completed',
      category: 'batch' as const,
      receivedAt: 1700000000123,
      secretLabel: 'previous',
    };
    const attributes = toMessageAttributes(meta);
    const lowered = Object.fromEntries(
      Object.entries(attributes).map(([k, v]) => [k, { stringValue: v.StringValue }]),
    );
    expect(fromMessageAttributes('{"raw":true}', lowered)).toEqual({
      ...meta,
      body: '{"raw":true}',
    });
    expect(messageSize('é', attributes)).toBeGreaterThan(2);
  });

  it('refuses a message without the delivery attributes', () => {
    expect(() => fromMessageAttributes('{}', {})).toThrow(/webhookId/);
  });
});

describe('maskPhoneNumbers', () => {
  it.each([
    ['sip:+14155550123@sip.example.com', 'sip:+***23@sip.example.com'],
    ['"Caller" <sip:+14155550123@x>;tag=1', '"Caller" <sip:+***23@x>;tag=1'],
    ['tel:+1-415-555-0123', 'tel:+***23'],
    ['call me at +44 20 7946 0958 please', 'call me at +***58 please'],
    ['order 12345', 'order 12345'],
    ['2026-11-22T12:26:54.100Z', '2026-11-22T12:26:54.100Z'],
    ['wh_cs3gn1l6mm1763814410', 'wh_cs3gn1l6mm1763814410'],
  ])('%s', (input, output) => {
    expect(maskPhoneNumbers(input)).toBe(output);
  });

  it('masks every number in a field known to hold one', () => {
    expect(maskAllNumbers('(415) 555-0123')).toBe('(***23');
  });
});

describe('readEnvelope: verified bodies are kept, however odd', () => {
  const facts = { webhookId: 'wh_1', receivedAt: 1_700_000_000_500 };

  it('reads a well-formed event as it is', () => {
    const event = sampleEvent('batch.completed');
    expect(readEnvelope(JSON.stringify(event), facts)).toEqual({ event, projectable: true });
  });

  it.each([
    ['not JSON', 'hello', 'invalid_json', { id: 'malformed_wh_1', type: 'unknown' }, false],
    [
      'an array',
      '[1]',
      'invalid_envelope',
      { id: 'malformed_wh_1', created_at: 1_700_000_000 },
      false,
    ],
    [
      'a fractional created_at',
      '{"id":"evt_1","type":"batch.completed","created_at":12.7,"data":{"id":"b"}}',
      'invalid_envelope',
      { id: 'evt_1', type: 'batch.completed', created_at: 12, data: { id: 'b' } },
      true,
    ],
    [
      'a type with spaces',
      '{"id":"evt_1","type":".batch done","created_at":1,"data":{}}',
      'invalid_envelope',
      { type: '_.batch_done' },
      false,
    ],
    [
      'data that is a string',
      '{"id":"evt_1","type":"batch.completed","created_at":1,"data":"x"}',
      'invalid_envelope',
      { data: {} },
      false,
    ],
  ])('keeps %s as malformed', (_name, body, reason, event, projectable) => {
    const read = readEnvelope(body, facts);
    expect(read.malformed?.reason).toBe(reason);
    expect(read.event).toMatchObject(event);
    expect(read.projectable).toBe(projectable);
  });

  it('keeps bytes that are not UTF-8', () => {
    expect(readEnvelope(undefined, facts)).toMatchObject({
      event: { id: 'malformed_wh_1', type: 'unknown', data: {} },
      malformed: { reason: 'invalid_encoding' },
      projectable: false,
    });
  });
});

describe('queue message bodies', () => {
  it('carries text as itself only when SQS accepts it', () => {
    expect(carriesAsText('{"id":"evt_1"}')).toBe(true);
    expect(carriesAsText('emoji 😀 ok')).toBe(true);
    expect(carriesAsText('')).toBe(false);
    expect(carriesAsText('bell \u0007')).toBe(false);
    expect(carriesAsText('lone \ud800 surrogate')).toBe(false);
    expect(carriesAsText('{"owh_body":{}}')).toBe(false);
  });

  it('round-trips bytes and references through the owh_body wrapper', () => {
    const bytes = Buffer.from([0, 255, 1]);
    expect(unwrapBody(wrapBytes(bytes))).toEqual({ kind: 'bytes', bytes });
    const ref = { bucket: 'b', key: 'payloads/x', bytes: 3, sha256: 'ab' };
    expect(unwrapBody(wrapRef(ref))).toEqual({ kind: 'ref', ref });
    expect(unwrapBody('{"id":"evt_1"}')).toEqual({ kind: 'raw', text: '{"id":"evt_1"}' });
  });
});
