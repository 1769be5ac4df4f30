import { describe, expect, it } from 'vitest';
import { redactTranscript } from '#core/calls/calls-config';
import { createLogger, logFormat, prettyLogLine } from '#core/observability/logger';

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

describe('log format: pretty on a terminal, JSON elsewhere (LOG_FORMAT overrides)', () => {
  const prettyCapture = () => {
    const lines: string[] = [];
    const log = createLogger(
      {
        service: 'ingress',
        format: 'pretty',
        sink: (line) => lines.push(line),
        clock: () => Date.UTC(2026, 10, 22, 10, 0, 0, 123),
      },
      { webhookId: 'wh_1' },
    );
    return { log, lines };
  };

  it('chooses the format from LOG_FORMAT, else from whether stdout is a terminal', () => {
    expect(logFormat(undefined, true)).toBe('pretty');
    expect(logFormat(undefined, false)).toBe('json');
    expect(logFormat('', true)).toBe('pretty');
    expect(logFormat('json', true)).toBe('json');
    expect(logFormat('PRETTY', false)).toBe('pretty');
    expect(logFormat('yaml', false)).toBe('json');
  });

  it('writes one readable line with the time, level, service, message and fields', () => {
    const { log, lines } = prettyCapture();
    log.with({ eventId: 'evt_1' }).warn('hydration rejected', { error: 'not found', attempt: 2 });
    expect(lines).toHaveLength(1);
    // The time of day in local time, then the level, the service, the message and the fields.
    expect(lines[0]).toMatch(
      /^\d{2}:\d{2}:00\.123 WARN {2}ingress {2}hydration rejected {2}webhookId=wh_1 eventId=evt_1 error="not found" attempt=2$/,
    );
  });

  it('masks numbers and redacts credentials in pretty lines too', () => {
    const { log, lines } = prettyCapture();
    log.info('incoming from +14155550123', {
      from: '"Ann" <sip:+14155550123@sip.example.com>',
      sipHeaders: [{ name: 'X-Account', value: 'acct 5551234567' }],
      apiKey: 'sk-live-123',
      error: new Error('refer to sip:+14155550199@pbx failed'),
    });
    const line = lines[0] ?? '';
    for (const digits of ['4155550123', '5551234567', '4155550199', 'sk-live'])
      expect(line).not.toContain(digits);
    expect(line).toContain('+***23');
    expect(line).toContain('apiKey=[redacted]');
  });

  it("turns a worker's JSON log line into a pretty one, and leaves EMF and other lines alone", () => {
    const json = JSON.stringify({
      level: 'info',
      time: '2026-11-22T10:00:00.123Z',
      service: 'sideband',
      message: 'call attached',
      callId: 'rtc_1',
      caller: '+14155550123',
    });
    expect(prettyLogLine(json)).toMatch(
      /^\d{2}:\d{2}:00\.123 INFO {2}sideband {2}call attached {2}callId=rtc_1 caller=\+\*\*\*23$/,
    );
    const emf = JSON.stringify({ _aws: { Timestamp: 1 }, level: 'info', time: 'x', message: 'm' });
    expect(prettyLogLine(emf)).toBeUndefined();
    expect(prettyLogLine('{"url":"http://127.0.0.1:1/"}')).toBeUndefined();
    // A lifecycle line without a time still gets one.
    expect(
      prettyLogLine('{"level":"info","service":"sideband","message":"sideband worker ready"}'),
    ).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO {2}sideband {2}sideband worker ready$/);
    expect(prettyLogLine('not json')).toBeUndefined();
  });

  it('keeps JSON with a sink of its own, whatever LOG_FORMAT says', () => {
    const previous = process.env.LOG_FORMAT;
    process.env.LOG_FORMAT = 'pretty';
    try {
      const lines: string[] = [];
      createLogger({ service: 's', sink: (l) => lines.push(l) }).info('m');
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({ message: 'm', service: 's' });
    } finally {
      if (previous === undefined) delete process.env.LOG_FORMAT;
      else process.env.LOG_FORMAT = previous;
    }
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
