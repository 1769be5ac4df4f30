import { Match, Template } from 'aws-cdk-lib/assertions';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { grantInvokeUnqualified } from '../../lib/constructs/grants';
import { bareStack } from './constructs';

describe('grantInvokeUnqualified', () => {
  it('grants lambda:InvokeFunction on the unqualified ARN only, never its versions and aliases', () => {
    const { stack } = bareStack();
    const fn = new LambdaFunction(stack, 'Tool', {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('exports.handler = async () => ({})'),
    });
    const role = new Role(stack, 'Caller', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
    });
    expect(grantInvokeUnqualified(fn, role).success).toBe(true);
    const policies = Template.fromStack(stack).findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^Caller') }] },
    });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    expect(statements).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^Tool/), 'Arn'] },
      },
    ]);
  });
});
