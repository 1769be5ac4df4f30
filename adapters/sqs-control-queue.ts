import {
  CreateQueueCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { CommandNudge } from '#core/ports/call-control';

/** SQS queue names: letters, digits, `-` and `_`, at most 80 characters. */
export function controlQueueName(prefix: string, owner: string): string {
  return `${prefix}${owner}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 80);
}

/**
 * Each sideband worker's own control queue: the API drops a nudge in it ("call X has a pending
 * command") and the worker, long-polling it, reads the command from DynamoDB at once. A nudge
 * is only a hint: the command item is the truth, so a lost nudge delays a command to the next
 * attach and a forged one applies nothing that was not stored. Messages live 60 s (the least SQS
 * allows): a nudge for a worker that died is gone long before anyone would look at it.
 */
export class SqsControlQueue {
  constructor(
    private readonly client: SQSClient,
    readonly queueUrl: string,
    /** Long-poll wait, seconds. */
    private readonly waitSeconds = 20,
  ) {}

  /** Creates (or finds: CreateQueue is idempotent for the same attributes) the worker's queue. */
  static async create(
    client: SQSClient,
    name: string,
    tags: Record<string, string> = {},
  ): Promise<string> {
    const created = await client.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          MessageRetentionPeriod: '60',
          VisibilityTimeout: '10',
          ReceiveMessageWaitTimeSeconds: '20',
          SqsManagedSseEnabled: 'true',
        },
        ...(Object.keys(tags).length > 0 ? { tags } : {}),
      }),
    );
    if (!created.QueueUrl) throw new Error(`CreateQueue ${name} returned no URL.`);
    return created.QueueUrl;
  }

  static async remove(client: SQSClient, queueUrl: string): Promise<void> {
    await client.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
  }

  static async nudge(client: SQSClient, queueUrl: string, nudge: CommandNudge): Promise<void> {
    await client.send(
      new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(nudge) }),
    );
  }

  async receive(abort: AbortSignal): Promise<{ body: string; receipt: string }[]> {
    const received = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: this.waitSeconds,
      }),
      { abortSignal: abort },
    );
    return (received.Messages ?? []).map((m) => ({
      body: m.Body ?? '',
      receipt: m.ReceiptHandle ?? '',
    }));
  }

  async ack(receipt: string): Promise<void> {
    await this.client.send(
      new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receipt }),
    );
  }
}

/** A nudge read back: never trusted beyond its shape. */
export function parseNudge(body: string): CommandNudge | undefined {
  try {
    const n = JSON.parse(body) as Partial<CommandNudge>;
    if (typeof n.callId !== 'string' || typeof n.commandId !== 'string') return undefined;
    return { callId: n.callId, commandId: n.commandId, sentAt: Number(n.sentAt) || 0 };
  } catch {
    return undefined;
  }
}
