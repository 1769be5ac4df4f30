import { describe, expect, it } from 'vitest';
import {
  CALL_DEFAULTS,
  type CallsConfig,
  sidebandSettings,
  validateCallsConfig,
} from '#core/calls/calls-config';
import type { SessionConfig } from '#core/calls/session-config';
import { localCallsConfig } from '../../local/calls';

/** The calls config's sideband settings and the sessions' DTMF maps. */

function withSession(session: Partial<SessionConfig>, overrides: Partial<CallsConfig> = {}) {
  const base = localCallsConfig(overrides);
  const defaultSession = base.policy.sessions.default as SessionConfig;
  return {
    ...base,
    policy: { ...base.policy, sessions: { default: { ...defaultSession, ...session } } },
  };
}

describe('sideband settings', () => {
  it('has defaults for what a config leaves out', () => {
    expect(sidebandSettings(localCallsConfig())).toEqual({
      goodbyeDrainCapMs: 5000,
      noSpeechTimeoutMs: 30_000,
      idleTimeoutsBeforeHangup: 3,
      maxToolOutputBytes: 16_384,
    });
    expect(CALL_DEFAULTS).toMatchObject({
      goodbyeDrainCapMs: 5000,
      noSpeechTimeoutMs: 30_000,
      idleTimeoutsBeforeHangup: 3,
      maxToolOutputBytes: 16_384,
    });
  });

  it.each([
    [{ goodbyeDrainCapMs: -1 }, /goodbyeDrainCap/],
    [{ goodbyeDrainCapMs: 60_000 }, /goodbyeDrainCap/],
    [{ noSpeechTimeoutMs: 1000 }, /noSpeechTimeout/],
    [{ idleTimeoutsBeforeHangup: 1.5 }, /idleTimeoutsBeforeHangup/],
    [{ maxToolOutputBytes: 10 }, /maxToolOutputBytes/],
    // The wrap-up's goodbye may play for the drain cap: all of it before the 60-minute cap.
    [{ wrapUpAfterMs: 58 * 60_000, wrapUpGraceMs: 119_000, goodbyeDrainCapMs: 2000 }, /60-minute/],
    // Own properties only.
    [{ wrapUpTransferTarget: 'toString' }, /wrapUpTransferTarget/],
  ])('reports %o', (override, message) => {
    expect(validateCallsConfig(localCallsConfig(override)).join('\n')).toMatch(message);
  });

  it('accepts 0 to turn the no-speech timeout and the idle-timeout hang-up off', () => {
    expect(
      validateCallsConfig(localCallsConfig({ noSpeechTimeoutMs: 0, idleTimeoutsBeforeHangup: 0 })),
    ).toEqual([]);
  });
});

describe('a session DTMF map', () => {
  it('accepts keypad keys that transfer to a known target or hang up', () => {
    const config = withSession({
      dtmf: {
        '0': { action: 'transfer', target: 'support' },
        '#': { action: 'hangup' },
        D: { action: 'hangup' },
      },
    });
    expect(validateCallsConfig(config)).toEqual([]);
  });

  it.each([
    [{ x: { action: 'hangup' } }, /dtmf key "x" is not a keypad key/],
    [{ '12': { action: 'hangup' } }, /not a keypad key/],
    [{ '0': { action: 'transfer', target: 'nowhere' } }, /not one of calls.transferTargets/],
    [{ '0': { action: 'transfer', target: 'toString' } }, /not one of calls.transferTargets/],
    [{ '0': { action: 'dance' } }, /must be \{ action: 'hangup' \}/],
    [{ '0': { action: 'transfer' } }, /must be \{ action: 'hangup' \}/],
  ])('reports %o', (dtmf, message) => {
    const config = withSession({ dtmf: dtmf as SessionConfig['dtmf'] });
    expect(validateCallsConfig(config).join('\n')).toMatch(message);
  });
});
