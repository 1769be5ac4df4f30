import { CfnParameter, Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import { NodeFunction, type NodeFunctionProps } from '../../lib/constructs/node-function';
import { PropsError } from '../../lib/constructs/validation';
import { nagFindings } from './app';
import { bareStack, expectContained, INGRESS_ENTRY } from './constructs';

const BASE: NodeFunctionProps = { entry: INGRESS_ENTRY, description: 'A test function' };

describe('NodeFunction', () => {
  it('is Node 22 on ARM64 with its own role, log group and the defaults', () => {
    const { app, stack } = bareStack();
    const fn = new NodeFunction(stack, 'Fn', BASE);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      MemorySize: 128,
      Timeout: 3,
      Description: 'A test function',
      LoggingConfig: { LogFormat: 'Text', LogGroup: { Ref: Match.stringLikeRegexp('FnLogs') } },
      TracingConfig: Match.absent(),
      ReservedConcurrentExecutions: Match.absent(),
    });
    template.hasResource('AWS::Logs::LogGroup', {
      DeletionPolicy: 'Retain',
      Properties: { RetentionInDays: 30 },
    });
    template.hasResourceProperties('AWS::IAM::Role', { Description: 'A test function' });
    expect(fn.fn.role).toBe(fn.role);
    expectContained(stack, fn);
    expect(nagFindings(app)).toEqual([]);
  });

  it('puts NODE_OPTIONS and STACK_NAME first, then its environment, then LOG_LEVEL', () => {
    const { stack } = bareStack();
    new NodeFunction(stack, 'Fn', {
      ...BASE,
      environment: { B_SECOND: '2', A_FIRST: '1' },
      logging: { logLevel: 'debug' },
    });
    const [fn] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'));
    const variables = fn?.Properties.Environment.Variables as Record<string, string>;
    expect(Object.entries(variables)).toEqual([
      ['NODE_OPTIONS', '--enable-source-maps'],
      ['STACK_NAME', 'Bare'],
      ['B_SECOND', '2'],
      ['A_FIRST', '1'],
      ['LOG_LEVEL', 'debug'],
    ]);
  });

  it('takes memory, timeout, reserved concurrency and the logging settings from props', () => {
    const { app, stack } = bareStack();
    new NodeFunction(stack, 'Fn', {
      ...BASE,
      memorySize: 1024,
      timeout: Duration.seconds(30),
      reservedConcurrentExecutions: 5,
      logging: {
        logRetention: RetentionDays.ONE_WEEK,
        logRemovalPolicy: RemovalPolicy.DESTROY,
        tracing: true,
      },
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 1024,
      Timeout: 30,
      ReservedConcurrentExecutions: 5,
      TracingConfig: { Mode: 'Active' },
      Environment: { Variables: Match.objectLike({ LOG_LEVEL: 'info' }) },
    });
    template.hasResource('AWS::Logs::LogGroup', {
      DeletionPolicy: 'Delete',
      Properties: { RetentionInDays: 7 },
    });
    // Tracing's wildcard (X-Ray accepts only "*") is acknowledged.
    expect(nagFindings(app)).toEqual([]);
  });

  it.each<[Partial<NodeFunctionProps>, RegExp]>([
    [
      { entry: '/nope/handler.ts' },
      /entry must be an existing file; \/nope\/handler.ts does not exist/,
    ],
    [{ description: 'x'.repeat(257) }, /description must be at most 256 characters; it has 257/],
    [{ memorySize: 64 }, /memorySize must be an integer from 128 to 10240; got 64/],
    [{ memorySize: 200.5 }, /memorySize must be an integer/],
    [{ timeout: Duration.minutes(16) }, /timeout must be between 1 second and 15 minutes/],
    [{ timeout: Duration.millis(500) }, /timeout must be between 1 second and 15 minutes/],
    [
      { reservedConcurrentExecutions: -1 },
      /reservedConcurrentExecutions must be an integer of at least 0/,
    ],
    [
      { environment: { LOG_LEVEL: 'debug' } },
      /environment.LOG_LEVEL is set by NodeFunction itself/,
    ],
    [{ environment: { STACK_NAME: 'x' } }, /environment.STACK_NAME is set by NodeFunction itself/],
    [{ environment: { AWS_REGION: 'x' } }, /environment.AWS_REGION is reserved by Lambda/],
    [{ environment: { '1BAD': 'x' } }, /environment.1BAD is not a valid variable name/],
    [
      { logging: { logLevel: 'loud' as never } },
      /logging.logLevel must be one of "debug", "info", "warn", "error"; got "loud"/,
    ],
    [
      { logging: { logRemovalPolicy: RemovalPolicy.SNAPSHOT } },
      /logging.logRemovalPolicy must be one of/,
    ],
    [
      { logging: { logRetention: 42 as RetentionDays } },
      /logging.logRetention must be a RetentionDays value; got 42/,
    ],
    [{ logging: { tracing: 'yes' as never } }, /logging.tracing must be true or false/],
  ])('rejects %o', (props, message) => {
    expect(() => new NodeFunction(bareStack().stack, 'Fn', { ...BASE, ...props })).toThrow(
      PropsError,
    );
    expect(() => new NodeFunction(bareStack().stack, 'Fn', { ...BASE, ...props })).toThrow(message);
  });

  it('names itself and its id in the error', () => {
    expect(() => new NodeFunction(bareStack().stack, 'Worker', { ...BASE, memorySize: 1 })).toThrow(
      /^NodeFunction 'Worker' has invalid props:\n- memorySize/,
    );
  });

  it('lets unresolved tokens through', () => {
    const { stack } = bareStack();
    const memory = new CfnParameter(stack, 'Memory', { type: 'Number' });
    expect(
      () => new NodeFunction(stack, 'Fn', { ...BASE, memorySize: memory.valueAsNumber }),
    ).not.toThrow();
  });
});
