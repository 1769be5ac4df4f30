import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';

export interface RedriveResult {
  readonly moved: number;
  /** Messages that could not be sent back; they stay in the DLQ. */
  readonly failed: number;
}

/** Messages waiting in a queue (visible ones; in-flight ones are counted apart). */
export async function queueDepth(
  sqs: SQSClient,
  queueUrl: string,
): Promise<{ visible: number; inFlight: number }> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

/**
 * Moves up to `max` messages from a DLQ back to its queue, body and attributes unchanged: each is
 * sent first and deleted from the DLQ only once the send succeeded, so a crash mid-way duplicates
 * at most a batch (the consumers are idempotent) and never loses one. `max` (the depth counted
 * before starting) keeps a message that fails again from going round forever.
 */
export async function redrive(
  sqs: SQSClient,
  from: string,
  to: string,
  max: number,
  onProgress: (moved: number) => void,
): Promise<RedriveResult> {
  let moved = 0;
  let failed = 0;
  while (moved + failed < max) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: from,
        MaxNumberOfMessages: Math.min(10, max - moved - failed),
        WaitTimeSeconds: 1,
        VisibilityTimeout: 60,
        MessageAttributeNames: ['All'],
      }),
    );
    if (Messages.length === 0) break;
    const entries = Messages.map((message, i) => ({
      Id: String(i),
      MessageBody: message.Body ?? '',
      ...(message.MessageAttributes ? { MessageAttributes: message.MessageAttributes } : {}),
    }));
    const sent = await sqs.send(new SendMessageBatchCommand({ QueueUrl: to, Entries: entries }));
    const ok = new Set((sent.Successful ?? []).map((s) => s.Id));
    const toDelete = Messages.flatMap((message, i) =>
      ok.has(String(i)) && message.ReceiptHandle
        ? [{ Id: String(i), ReceiptHandle: message.ReceiptHandle }]
        : [],
    );
    if (toDelete.length > 0)
      await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: from, Entries: toDelete }));
    moved += toDelete.length;
    failed += Messages.length - toDelete.length;
    onProgress(moved);
    // Unsent messages reappear in the DLQ after their visibility timeout; do not spin on them.
    if (Messages.length > toDelete.length) break;
  }
  return { moved, failed };
}
