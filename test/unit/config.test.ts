import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { type CallsProps, CallTool, localToolFunctionName } from '../../lib/calls-config';
import { CONFIG_KEYS, DEFAULTS, resolveConfig } from '../../lib/config';
import { didYouMean, editDistance } from '../../lib/props-keys';

const CALLS: CallsProps = {
  sessions: { default: { model: 'gpt-realtime-2.1', voice: 'marin', instructions: 'Be brief.' } },
};

describe('resolveConfig', () => {
  it('states every default', () => {
    const config = resolveConfig();
    expect(config.webhookSecretName).toBe(DEFAULTS.webhookSecretName);
    expect(config.maxBodyBytes).toBe(1024 * 1024);
    expect(config.signatureTolerance.toSeconds()).toBe(300);
    expect(config.dedupeRetention.toHours()).toBe(168);
    expect(config.categories.batch).toMatchObject({
      batchSize: 10,
      maxReceiveCount: 5,
      hydrate: true,
    });
    expect(config.categories.eval.hydrate).toBe(false);
    expect(config.categories.other.hydrate).toBe(false);
  });

  it('turns hydration off when there is no API key secret', () => {
    expect(resolveConfig({ openAiApiKeySecretName: null }).categories.batch.hydrate).toBe(false);
  });

  it.each([
    [{ dedupeRetention: Duration.hours(48) }, /at least 72 hours/],
    [{ maxBodyBytes: 2 * 1024 * 1024 }, /maxBodyBytes/],
    [{ signatureTolerance: Duration.hours(2) }, /signatureTolerance/],
    [{ maxReceiveCount: 0 }, /maxReceiveCount/],
    [{ ingressReservedConcurrency: 0 }, /ingressReservedConcurrency/],
    [
      { openAiApiKeySecretName: null, categories: { batch: { hydrate: true } } },
      /batch.hydrate needs openAiApiKeySecretName/,
    ],
    [{ categories: { eval: { hydrate: true } } }, /cannot fetch eval objects/],
    [{ categories: { batch: { batchSize: 50 } } }, /needs a maxBatchingWindow/],
    [{ categories: { batch: { timeout: Duration.seconds(1) } } }, /timeout/],
    [{ categories: { nonsense: {} } as never }, /Unknown category "nonsense"/],
    [{ openAiBaseUrl: 'http://api.openai.com/v1' }, /https/],
    [{ dlqRetention: Duration.days(30) }, /dlqRetention/],
  ])('rejects contradictory or out-of-range props %#', (props, message) => {
    expect(() => resolveConfig(props)).toThrow(message);
  });

  it('refuses the old calls.allow and calls.deny, naming the new props, rather than reinterpret them', () => {
    const legacy = { ...CALLS, allow: ['+1415*'], deny: ['+1900*'] } as CallsProps;
    expect(() => resolveConfig({ calls: legacy })).toThrow(
      /calls.allow is no longer supported: it matched the caller or the dialled number alike. Use calls.callers.allow for callers and calls.dialled.allow for dialled numbers/,
    );
    expect(() => resolveConfig({ calls: legacy })).toThrow(/calls.deny is no longer supported/);
  });

  it('takes separate caller and dialled lists, a default country and a trusted trunk', () => {
    const config = resolveConfig({
      calls: {
        ...CALLS,
        callers: { allow: ['+1415*'], deny: ['+14155550100'] },
        dialled: { deny: ['+1900*'] },
        defaultCountry: '1',
        trustAssertedIdentity: true,
      },
    });
    expect(config.calls?.config.policy).toMatchObject({
      callers: { allow: ['+1415*'], deny: ['+14155550100'] },
      dialled: { deny: ['+1900*'] },
      defaultCountry: '1',
      trustAssertedIdentity: true,
    });
    expect(config.calls?.config.policy).not.toHaveProperty('allow');
    expect(resolveConfig({ calls: CALLS }).calls?.config.policy).not.toHaveProperty('callers');
  });

  it('passes the call-fidelity settings to the runtimes only when set, and a session DTMF map', () => {
    const config = resolveConfig({
      calls: {
        sessions: {
          default: {
            ...CALLS.sessions.default,
            dtmf: { '#': { action: 'hangup' }, '0': { action: 'transfer', target: 'support' } },
          },
        },
        transferTargets: { support: 'sip:support@example.com' },
        goodbyeDrainCap: Duration.seconds(3),
        noSpeechTimeout: Duration.seconds(20),
        idleTimeoutsBeforeHangup: 2,
        maxToolOutputBytes: 4096,
      },
    }).calls?.config;
    expect(config).toMatchObject({
      goodbyeDrainCapMs: 3000,
      noSpeechTimeoutMs: 20_000,
      idleTimeoutsBeforeHangup: 2,
      maxToolOutputBytes: 4096,
    });
    expect(config?.policy.sessions.default?.dtmf?.['#']).toEqual({ action: 'hangup' });
    const defaults = resolveConfig({ calls: CALLS }).calls?.config;
    expect(defaults).not.toHaveProperty('goodbyeDrainCapMs');
    expect(defaults).not.toHaveProperty('noSpeechTimeoutMs');
  });

  it.each<[Partial<CallsProps>, RegExp]>([
    [{ goodbyeDrainCap: Duration.seconds(60) }, /calls.goodbyeDrainCap must be between 0 and 30 s/],
    [{ noSpeechTimeout: Duration.seconds(2) }, /calls.noSpeechTimeout must be 0 \(off\)/],
    [{ idleTimeoutsBeforeHangup: 50 }, /idleTimeoutsBeforeHangup/],
    [{ maxToolOutputBytes: 10 }, /maxToolOutputBytes/],
    [
      {
        sessions: {
          default: {
            ...CALLS.sessions.default,
            dtmf: { '0': { action: 'transfer', target: 'nowhere' } },
          },
        },
      },
      /nowhere/,
    ],
  ])('refuses bad call-fidelity props %#', (calls, message) => {
    expect(() => resolveConfig({ calls: { ...CALLS, ...calls } })).toThrow(message);
  });

  it.each<[Partial<CallsProps>, RegExp]>([
    [
      { callers: { deny: ['sip:+1900*'] } },
      /calls.callers.deny\[0\] "sip:\+1900\*" must be an E.164/,
    ],
    [{ dialled: { allow: ['1800*'] } }, /calls.dialled.allow\[0\] "1800\*" is not E.164/],
    [{ defaultCountry: '+1' }, /calls.defaultCountry must be a country calling code/],
    [
      { service: { cpuTargetPercent: 100 } },
      /calls.service.cpuTargetPercent must be from 10 to 90/,
    ],
  ])('refuses bad call props %#', (calls, message) => {
    expect(() => resolveConfig({ calls: { ...CALLS, ...calls } })).toThrow(message);
  });

  it('with calls, gives the realtime consumer a 10 s timeout and refuses a longer one or a batching window', () => {
    expect(resolveConfig({ calls: CALLS }).categories.realtime.timeout.toSeconds()).toBe(10);
    expect(resolveConfig().categories.realtime.timeout.toSeconds()).toBe(60);
    expect(resolveConfig({ calls: CALLS }).calls?.cpuTargetPercent).toBe(60);
    expect(() =>
      resolveConfig({ calls: CALLS, categories: { realtime: { timeout: Duration.seconds(30) } } }),
    ).toThrow(/categories.realtime.timeout must be at most 10 seconds with calls on/);
    expect(() =>
      resolveConfig({
        calls: CALLS,
        categories: { realtime: { maxBatchingWindow: Duration.seconds(2) } },
      }),
    ).toThrow(/categories.realtime.maxBatchingWindow must be 0 with calls on/);
    expect(() =>
      resolveConfig({ categories: { realtime: { maxBatchingWindow: Duration.seconds(2) } } }),
    ).not.toThrow();
  });

  it('allows for a cold start in the signal age alarm, never below signalAge', () => {
    expect(resolveConfig().alarms.signalAgeScaledToZero.toMinutes()).toBe(5);
    expect(
      resolveConfig({
        alarms: { signalAge: Duration.minutes(7) },
      }).alarms.signalAgeScaledToZero.toMinutes(),
    ).toBe(7);
    expect(() =>
      resolveConfig({
        alarms: { signalAge: Duration.minutes(7), signalAgeScaledToZero: Duration.minutes(2) },
      }),
    ).toThrow(/signalAgeScaledToZero must be at least alarms.signalAge/);
  });

  it('reports every problem at once', () => {
    expect(() => resolveConfig({ maxReceiveCount: 0, maxBodyBytes: 1 })).toThrow(
      /maxBodyBytes[\s\S]*maxReceiveCount/,
    );
  });
});

/** Props as plain JavaScript or a spread would hand them over: typos TypeScript does not see. */
const untyped = (props: Record<string, unknown>) => props as never;

describe('unknown props and invalid literal values are refused at synth', () => {
  it.each<[Record<string, unknown>, string]>([
    [{ alarmEmial: 'oncall@example.com' }, 'Unknown prop "alarmEmial": did you mean "alarmEmail"?'],
    [{ loglevel: 'info' }, 'Unknown prop "loglevel": did you mean "logLevel"?'],
    [
      { alarms: { signalAgee: Duration.minutes(2) } },
      'Unknown prop "alarms.signalAgee": did you mean "alarms.signalAge"?',
    ],
    [
      { categories: { batch: { userHandlr: undefined } } },
      'Unknown prop "categories.batch.userHandlr": did you mean "categories.batch.userHandler"?',
    ],
    [{ categories: { bacth: {} } }, 'Unknown category "bacth": did you mean "batch"?'],
    [
      { calls: { ...CALLS, transferTarget: {} } },
      'Unknown prop "calls.transferTarget": did you mean "calls.transferTargets"?',
    ],
    [
      { calls: { ...CALLS, service: { minTask: 0 } } },
      'Unknown prop "calls.service.minTask": did you mean "calls.service.minTasks"?',
    ],
    [
      { calls: { ...CALLS, callers: { alow: ['+1415*'] } } },
      'Unknown prop "calls.callers.alow": did you mean "calls.callers.allow"?',
    ],
    [
      { calls: { sessions: { default: { ...CALLS.sessions.default, greting: 'Hi' } } } },
      'Unknown prop "calls.sessions.default.greting": did you mean "calls.sessions.default.greeting"?',
    ],
    [
      {
        calls: {
          ...CALLS,
          tools: [
            CallTool.fromEntry('examples/tools/lookup-order.ts', {
              description: 'Find an order.',
              parameters: { type: 'object' },
              timout: Duration.seconds(2),
            } as never),
          ],
        },
      },
      'Unknown prop "calls.tools[0].timout": did you mean "calls.tools[0].timeout"?',
    ],
  ])('an unknown prop, with a suggestion %#', (props, message) => {
    expect(() => resolveConfig(untyped(props))).toThrow(message);
  });

  it('names the known props when nothing is near enough to suggest', () => {
    expect(() => resolveConfig(untyped({ zzz: 1 }))).toThrow(
      /Unknown prop "zzz"; the props are webhookSecretName, .*calls/,
    );
  });

  it.each<[Record<string, unknown>, RegExp]>([
    [{ logLevel: 'verbose' }, /logLevel must be one of debug, info, warn, error; got "verbose"/],
    [{ logRetention: 45 }, /logRetention must be a RetentionDays value/],
    [{ removalPolicy: 'keep' }, /removalPolicy must be a RemovalPolicy value/],
    [{ tracing: 'yes' }, /tracing must be true or false/],
    [
      { categories: { batch: { hydrate: 'no' } } },
      /categories.batch.hydrate must be true or false/,
    ],
    [
      { categories: { batch: { userHandler: 'handlers/batch.ts' } } },
      /categories.batch.userHandler must be UserHandler.fromEntry/,
    ],
  ])('an invalid literal value %#', (props, message) => {
    expect(() => resolveConfig(untyped(props))).toThrow(message);
  });

  it("takes the stack's own props (description, env, tags…) in the same object", () => {
    expect(() =>
      resolveConfig(
        untyped({
          description: 'x',
          env: { region: 'eu-west-1' },
          tags: { team: 'a' },
          terminationProtection: true,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      ),
    ).not.toThrow();
  });

  it('refuses the old calls.allow with its own message, not as an unknown prop', () => {
    const error = (() => {
      try {
        resolveConfig(untyped({ calls: { ...CALLS, allow: ['+1415*'] } }));
      } catch (e) {
        return String(e);
      }
      return '';
    })();
    expect(error).toMatch(/calls.allow is no longer supported/);
    expect(error).not.toMatch(/Unknown prop "calls.allow"/);
  });

  it('lists every key of the config once (a new prop must be added to CONFIG_KEYS, or tsc fails)', () => {
    expect(Object.keys(CONFIG_KEYS)).toContain('alarmEmail');
    expect(Object.keys(CONFIG_KEYS)).toContain('calls');
  });
});

describe('did you mean', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('alarmemial', 'alarmemail')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests the nearest key when it is a plausible typo, ignoring case, and nothing otherwise', () => {
    expect(didYouMean('alarmEmial', ['alarmEmail', 'alarms'])).toBe('alarmEmail');
    expect(didYouMean('LOGLEVEL', ['logLevel', 'logRetention'])).toBe('logLevel');
    expect(didYouMean('colour', ['alarms', 'calls'])).toBeUndefined();
  });
});

describe('CallTool.fromEntry', () => {
  const tool = CallTool.fromEntry('examples/tools/lookup-order.ts', {
    description: 'Find an order.',
    parameters: { type: 'object', properties: { order_number: { type: 'string' } } },
    timeout: Duration.seconds(2),
  });

  it('without a stack, names its function for local mode and lists it as an entry tool', () => {
    const calls = resolveConfig({
      calls: {
        ...CALLS,
        tools: [tool],
        sessions: { default: { ...CALLS.sessions.default, tools: ['lookup_order'] } },
      },
    }).calls;
    expect(calls?.config.tools).toEqual([
      {
        name: 'lookup_order',
        description: 'Find an order.',
        parameters: { type: 'object', properties: { order_number: { type: 'string' } } },
        functionName: localToolFunctionName('lookup_order'),
        timeoutMs: 2000,
      },
    ]);
    expect(calls?.entryTools).toEqual([
      {
        name: 'lookup_order',
        entry: 'examples/tools/lookup-order.ts',
        functionName: 'tool-lookup_order',
      },
    ]);
    expect(calls?.toolFunctions).toEqual([]);
  });

  it('refuses an entry that does not exist, and a name the model cannot call', () => {
    const missing = CallTool.fromEntry('examples/tools/nope.ts', {
      description: 'x',
      parameters: { type: 'object' },
    });
    expect(() => resolveConfig({ calls: { ...CALLS, tools: [missing] } })).toThrow(
      /calls.tools\[0\] \(nope\): .*examples\/tools\/nope.ts does not exist/,
    );
    const badName = CallTool.fromEntry('examples/tools/lookup-order.ts', {
      name: 'end_call',
      description: 'x',
      parameters: { type: 'object' },
    });
    expect(() => resolveConfig({ calls: { ...CALLS, tools: [badName] } })).toThrow(/end_call/);
  });
});
