import { describe, expect, it } from 'vitest';
import {
  defaultEventTypes,
  endpointChanges,
  endpointsFor,
  eventTypeDrift,
  eventTypeProblems,
  expirePrevious,
  hasChanges,
  hintMatches,
  issuedSecret,
  OLD_SECRET_GRACE_MS,
  readStoredSecret,
  rotatedSecret,
  serialiseStoredSecret,
  WEBHOOK_EVENT_TYPES,
} from '#core/webhooks/endpoint-lifecycle';
import { parseWebhookSecrets } from '#core/webhooks/signature';

const A = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
const B = `whsec_${Buffer.alloc(32, 2).toString('base64')}`;
const T0 = Date.parse('2026-11-23T18:00:00Z');

describe('event types', () => {
  it('subscribes realtime.call.incoming by default only with calls on', () => {
    expect(defaultEventTypes(false)).not.toContain('realtime.call.incoming');
    expect(defaultEventTypes(true)).toContain('realtime.call.incoming');
    expect(defaultEventTypes(false)).toContain('batch.completed');
    for (const type of defaultEventTypes(true)) expect(WEBHOOK_EVENT_TYPES).toContain(type);
  });

  it('names each problem: unknown, twice, empty, the call event without calls', () => {
    expect(eventTypeProblems(['batch.completed'], false)).toEqual([]);
    expect(eventTypeProblems([], false)).toEqual(['at least one event type is needed.']);
    const problems = eventTypeProblems(
      ['batch.exploded', 'batch.failed', 'batch.failed', 'realtime.call.incoming'],
      false,
    );
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/"batch.exploded" is not an event type the openai SDK knows/);
    expect(problems[1]).toBe('batch.failed is listed twice.');
    expect(problems[2]).toMatch(/realtime.call.incoming needs calls on/);
    expect(eventTypeProblems(['realtime.call.incoming'], true)).toEqual([]);
  });
});

describe('the desired-state diff', () => {
  const current = {
    id: 'whe_1',
    url: 'https://a.example/',
    name: 'n',
    event_types: ['batch.failed', 'batch.completed'],
  };

  it('sends nothing when only the order of event types differs', () => {
    const changes = endpointChanges(current, {
      url: 'https://a.example/',
      name: 'n',
      eventTypes: ['batch.completed', 'batch.failed'],
    });
    expect(hasChanges(changes)).toBe(false);
  });

  it('sends only what changed, event types as the complete set', () => {
    expect(
      endpointChanges(current, {
        url: 'https://b.example/',
        name: 'n',
        eventTypes: ['response.completed', 'batch.failed', 'batch.failed'],
      }),
    ).toEqual({ url: 'https://b.example/', event_types: ['batch.failed', 'response.completed'] });
  });

  it('finds the endpoints for a URL with or without its trailing slash, and the drift', () => {
    expect(endpointsFor([current], 'https://a.example')).toEqual([current]);
    expect(endpointsFor([current], 'https://b.example/')).toEqual([]);
    expect(
      eventTypeDrift(['batch.failed', 'eval.run.failed'], ['batch.failed', 'batch.completed']),
    ).toEqual({
      missing: ['batch.completed'],
      extra: ['eval.run.failed'],
    });
  });
});

describe('the stored secret through a rotation', () => {
  it('goes bare → issued → rotated → previous dropped after 24 h, readable by the ingress at each step', () => {
    expect(readStoredSecret(A)).toEqual({ current: A });
    const issued = issuedSecret(A, T0);
    const rotated = rotatedSecret(readStoredSecret(serialiseStoredSecret(issued)), B, T0);
    expect(rotated).toEqual({
      current: B,
      previous: A,
      previousUntil: new Date(T0 + OLD_SECRET_GRACE_MS).toISOString(),
      rotatedAt: new Date(T0).toISOString(),
    });
    expect(parseWebhookSecrets(serialiseStoredSecret(rotated)).map((s) => s.label)).toEqual([
      'current',
      'previous',
    ]);
    expect(expirePrevious(rotated, T0 + OLD_SECRET_GRACE_MS - 1)).toBeUndefined();
    const dropped = expirePrevious(rotated, T0 + OLD_SECRET_GRACE_MS);
    expect(dropped).toEqual({ current: B, rotatedAt: new Date(T0).toISOString() });
    expect(parseWebhookSecrets(serialiseStoredSecret(dropped ?? { current: '' }))).toHaveLength(1);
  });

  it('keeps a previous secret set by hand (no expiry), and refuses what is not a secret', () => {
    expect(expirePrevious(readStoredSecret(JSON.stringify({ current: A, previous: B })), T0)).toBe(
      undefined,
    );
    expect(() => readStoredSecret('hunter2')).toThrow(/neither/);
    expect(() => readStoredSecret(JSON.stringify({ current: 'x' }))).toThrow(/needs "current"/);
    expect(() => readStoredSecret('[]')).toThrow(/must be an object/);
  });

  it('compares a masked hint with a secret', () => {
    expect(hintMatches(`whsec_****${A.slice(-4)}`, A)).toBe(true);
    expect(hintMatches(`whsec_****${B.slice(-4)}`, A)).toBe(false);
    expect(hintMatches(null, A)).toBe(true);
  });
});
