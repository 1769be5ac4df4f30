import { CfnParameter, Duration, RemovalPolicy } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import { LOGGING_DEFAULTS, resolveLogging } from '../../lib/constructs/logging';
import { PropsCheck, PropsError } from '../../lib/constructs/validation';
import { bareStack } from './constructs';

describe('PropsCheck', () => {
  it('passes when nothing is wrong, and with undefined values (the defaults apply)', () => {
    expect(() =>
      new PropsCheck('Thing', 'Id')
        .integer('count', 3, 1, 5)
        .integer('missing', undefined, 1)
        .duration('age', Duration.minutes(2), { min: Duration.minutes(1) })
        .duration('missingAge', undefined, { max: Duration.minutes(1) })
        .oneOf('size', 'm', ['s', 'm', 'l'])
        .httpsUrl('url', 'https://example.com/v1')
        .problemsOf('shared', [])
        .assert(),
    ).not.toThrow();
  });

  it('throws one PropsError naming the construct, its id and every prop at fault', () => {
    const check = new PropsCheck('Thing', 'MyThing')
      .integer('count', 0, 1, 5)
      .duration('age', Duration.seconds(5), { min: Duration.minutes(1), why: 'a reason' })
      .oneOf('size', 'xl', ['s', 'm'])
      .httpsUrl('url', 'ftp://example.com')
      .problemsOf('shared', ['calls.x is wrong.'])
      .that(false, 'custom', 'is wrong.');
    expect(() => check.assert()).toThrow(PropsError);
    expect(() => check.assert()).toThrow(
      [
        "Thing 'MyThing' has invalid props:",
        '- count must be an integer from 1 to 5; got 0.',
        '- age must be at least 1 minute (a reason); got 5 seconds.',
        '- size must be one of "s", "m"; got "xl".',
        '- url must be an https:// URL; got "ftp://example.com".',
        '- shared: calls.x is wrong.',
        '- custom is wrong.',
      ].join('\n'),
    );
  });

  it('lets unresolved tokens through', () => {
    const { stack } = bareStack();
    const n = new CfnParameter(stack, 'N', { type: 'Number' }).valueAsNumber;
    const s = new CfnParameter(stack, 'S').valueAsString;
    expect(() =>
      new PropsCheck('Thing', 'Id')
        .integer('count', n, 1, 5)
        .duration('age', Duration.seconds(n), { min: Duration.minutes(1) })
        .oneOf('size', s, ['s', 'm'])
        .httpsUrl('url', s)
        .assert(),
    ).not.toThrow();
  });
});

describe('resolveLogging', () => {
  it('applies the defaults, also for fields given as undefined', () => {
    const check = new PropsCheck('Thing', 'Id');
    expect(resolveLogging(undefined, check)).toEqual({
      logRetention: RetentionDays.ONE_MONTH,
      logRemovalPolicy: RemovalPolicy.RETAIN,
      logLevel: 'info',
      tracing: false,
    });
    expect(resolveLogging({ logLevel: undefined, tracing: true }, check)).toEqual({
      ...LOGGING_DEFAULTS,
      tracing: true,
    });
    expect(() => check.assert()).not.toThrow();
  });

  it('records every bad field under logging.*', () => {
    const check = new PropsCheck('Thing', 'Id');
    resolveLogging(
      {
        logRetention: 4 as RetentionDays,
        logRemovalPolicy: RemovalPolicy.SNAPSHOT,
        logLevel: 'loud' as never,
        tracing: 'on' as never,
      },
      check,
    );
    expect(() => check.assert()).toThrow(
      /logging.logRetention[\s\S]*logging.logRemovalPolicy[\s\S]*logging.logLevel[\s\S]*logging.tracing/,
    );
  });
});
