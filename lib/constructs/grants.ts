import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';

/**
 * Invoke on the function's unqualified ARN only. `grantInvoke` also grants `<arn>:*` (every version
 * and alias); our callers always invoke the unqualified function, so that is more than they need.
 */
export function grantInvokeUnqualified(fn: IFunction, grantee: IGrantable): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: ['lambda:InvokeFunction'],
    resourceArns: [fn.functionArn],
  });
}
