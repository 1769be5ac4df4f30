import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { CallSignal, SignalPublisher } from '#core/ports/calls';

export class SqsSignalPublisher implements SignalPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async signal(message: CallSignal): Promise<void> {
    await this.client.send(
      new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: JSON.stringify(message) }),
    );
  }
}
