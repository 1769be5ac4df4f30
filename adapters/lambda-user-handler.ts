import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';

/**
 * Runs the user's handler when it is an existing Lambda function: a synchronous invoke with the
 * event as JSON. A function error is thrown, so the message is retried and then dead-lettered.
 */
export class LambdaUserHandler {
  constructor(
    private readonly client: LambdaClient,
    private readonly functionName: string,
  ) {}

  readonly handle = async (event: unknown): Promise<void> => {
    const result = await this.client.send(
      new InvokeCommand({
        FunctionName: this.functionName,
        InvocationType: 'RequestResponse',
        Payload: new TextEncoder().encode(JSON.stringify(event)),
      }),
    );
    if (result.FunctionError) {
      const detail = result.Payload ? new TextDecoder().decode(result.Payload).slice(0, 500) : '';
      throw new Error(
        `User handler ${this.functionName} failed (${result.FunctionError}): ${detail}`,
      );
    }
  };
}
