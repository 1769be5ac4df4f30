import { describe, expect, it } from 'vitest';
import { redactTranscript } from '#core/calls/calls-config';
import { createLogger } from '#core/observability/logger';

function capture(level: 'debug' | 'info' | 'warn' | 'error' = 'info') {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(
    { service: 'test', level, sink: (line) => lines.push(JSON.parse(line)), clock: () => 0 },
    { webhookId: 'wh_1' },
  );
  return { log, lines };
}

describe('structured logs', () => {
  it('writes one JSON line per entry with level, time, service and correlation ids', () => {
    const { log, lines } = capture();
    log.with({ eventId: 'evt_1', callId: 'rtc_1' }).info('call accepted', { latencyMs: 12 });
    expect(lines).toEqual([
      {
        level: 'info',
        time: '1970-01-01T00:00:00.000Z',
        service: 'test',
        message: 'call accepted',
        webhookId: 'wh_1',
        eventId: 'evt_1',
        callId: 'rtc_1',
        latencyMs: 12,
      },
    ]);
  });

  it('drops entries below the configured level', () => {
    const { log, lines } = capture('warn');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(lines.map((l) => l.level)).toEqual(['warn', 'error']);
  });

  it('masks phone numbers in SIP header values, party fields and free text', () => {
    const { log, lines } = capture();
    log.info('incoming from +14155550123 via sip:+442079460958@trunk.example.com', {
      from: '+14155550123',
      to: 'tel:18005550100',
      sipHeaders: [
        { name: 'From', value: '"Ann" <sip:+14155550123@sip.example.com>;tag=9fxced76sl' },
        { name: 'X-Account', value: 'acct 5551234567' },
      ],
      error: new Error('refer to sip:+14155550199@pbx failed'),
    });
    const line = JSON.stringify(lines[0]);
    for (const digits of ['4155550123', '442079460958', '18005550100', '5551234567', '4155550199'])
      expect(line).not.toContain(digits);
    expect(lines[0]?.from).toBe('+***23');
    expect(line).toContain('***58');
  });

  it('never writes a credential, even one passed by mistake', () => {
    const { log, lines } = capture();
    log.error('oops', {
      authorization: 'Bearer sk-live-123',
      apiKey: 'sk-live-123',
      webhookSecret: 'whsec_abc',
      secretLabel: 'previous',
    });
    expect(JSON.stringify(lines[0])).not.toMatch(/sk-live|whsec_abc/);
    expect(lines[0]?.secretLabel).toBe('previous');
  });
});

describe('transcript redaction (calls.redactTranscripts)', () => {
  it('masks phone numbers, long digit runs and e-mail addresses in what callers say', () => {
    const text = redactTranscript(
      'Call me on +44 20 7946 0958 or 415-555-0123, card 4111 1111 1111 1111, ann@example.com, order 12',
    );
    for (const secret of ['7946', '555-0123', '4111', 'ann@example.com'])
      expect(text).not.toContain(secret);
    expect(text).toContain('order 12');
  });
});
