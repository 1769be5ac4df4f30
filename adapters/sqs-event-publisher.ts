import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { EventPublisher } from '#core/ports/webhooks';
import type { Category } from '#core/webhooks/categories';
import { type QueuedWebhook, toMessageAttributes } from '#core/webhooks/queue-message';

export class SqsEventPublisher implements EventPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrls: Readonly<Record<Category, string>>,
  ) {}

  async publish(message: QueuedWebhook): Promise<void> {
    const { body, ...meta } = message;
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrls[message.category],
        MessageBody: body,
        MessageAttributes: toMessageAttributes(meta),
      }),
    );
  }
}
