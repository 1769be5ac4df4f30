import {
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '#adapters/dynamo-conditions';
import { redactPart } from '#core/calls/recorded-parts';
import type { Logger } from '#core/observability/logger';
import type { PendingToolOutputs, StoredToolOutput, ToolCallClaims } from '#core/ports/sideband';
import { keys } from '#core/table-schema';

const TOOL_PREFIX = 'TOOL#';

/**
 * Claims a function call id before its tool runs, durably and at once: a conditional put of the
 * call's `TOOL#<fnCallId>` part in `running` state, with the claiming session as `claimant` (so a
 * retry after a lost answer finds its own claim). The recorder later overwrites that part with the
 * tool's result. A worker handing the call off stores the result on the part instead, with
 * `delivered: false`; the worker that takes the call over finds it and marks it delivered (a
 * conditional update, so only one sends it).
 *
 * With `redact` (the stack's `redactTranscripts`), what is stored for the record is redacted as the
 * recorder redacts a tool part (arguments, output, error). The one exception is the output of a
 * hand-off while it waits: the next worker must send it to the model as the tool returned it, so
 * it is kept verbatim until delivered, then redacted by the same worker that marked it delivered.
 */
export class DynamoToolCallClaims implements ToolCallClaims {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly options: {
      readonly ttlSeconds: number;
      readonly clock: () => number;
      readonly redact?: boolean;
      /** Where a failed redaction of a delivered output is reported (never its text). */
      readonly log?: Pick<Logger, 'warn'>;
    },
  ) {}

  /** What the record keeps of a tool's texts: redacted when `redact` is on. */
  private recorded(texts: { arguments: string; output: string; error?: string | undefined }) {
    if (!this.options.redact) return texts;
    const part = redactPart({
      kind: 'tool',
      fnCallId: '',
      name: '',
      status: 'done',
      latencyMs: 0,
      arguments: texts.arguments,
      output: texts.output,
      ...(texts.error !== undefined ? { error: texts.error } : {}),
    });
    return part.kind === 'tool'
      ? { arguments: part.arguments, output: part.output, error: part.error }
      : texts;
  }

  async claim(callId: string, fnCallId: string, name: string, claimant: string): Promise<boolean> {
    const at = this.options.clock();
    return conditionalWrite(() =>
      this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.callPart(callId, `${TOOL_PREFIX}${fnCallId}`),
            kind: 'tool',
            fnCallId,
            name,
            status: 'running',
            claimant,
            at,
            expiresAt: Math.floor(at / 1000) + this.options.ttlSeconds,
          },
          // Free, or ours already (the answer to an earlier attempt was lost, not its write).
          ConditionExpression:
            'attribute_not_exists(pk) OR (claimant = :me AND #status = :running)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':me': claimant, ':running': 'running' },
        }),
      ),
    );
  }

  async storeOutput(callId: string, output: StoredToolOutput): Promise<void> {
    // The output verbatim (the next worker sends it to the model); the rest as the record keeps it.
    const recorded = this.recorded(output);
    const fields: Record<string, unknown> = {
      kind: 'tool',
      name: output.name,
      arguments: recorded.arguments,
      output: output.output,
      status: output.status,
      latencyMs: output.latencyMs,
      delivered: false,
      storedAt: this.options.clock(),
      ...(recorded.error !== undefined ? { error: recorded.error } : {}),
      ...(output.truncated ? { truncated: true, outputBytes: output.outputBytes } : {}),
    };
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets = Object.entries(fields).map(([field, value], i) => {
      names[`#f${i}`] = field;
      values[`:f${i}`] = value;
      return `#f${i} = :f${i}`;
    });
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.callPart(callId, `${TOOL_PREFIX}${output.fnCallId}`),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
  }

  async pendingOutputs(callId: string): Promise<PendingToolOutputs> {
    const undelivered: PendingToolOutputs['undelivered'][number][] = [];
    const running: PendingToolOutputs['running'][number][] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :tool)',
          ExpressionAttributeValues: { ':pk': keys.call(callId).pk, ':tool': TOOL_PREFIX },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        const fnCallId = String(item.fnCallId ?? String(item.sk).slice(TOOL_PREFIX.length));
        const name = String(item.name ?? '');
        if (item.delivered === false)
          undelivered.push({ fnCallId, name, output: String(item.output ?? '') });
        else if (item.status === 'running')
          running.push({ fnCallId, name, at: Number(item.at ?? 0) });
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return { undelivered, running };
  }

  async markDelivered(callId: string, fnCallId: string): Promise<boolean> {
    const key = keys.callPart(callId, `${TOOL_PREFIX}${fnCallId}`);
    let stored: Record<string, unknown> | undefined;
    const marked = await conditionalWrite(async () => {
      const result = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET delivered = :true, deliveredAt = :at',
          ConditionExpression: 'delivered = :false',
          ExpressionAttributeValues: {
            ':true': true,
            ':false': false,
            ':at': this.options.clock(),
          },
          ...(this.options.redact ? { ReturnValues: 'ALL_NEW' as const } : {}),
        }),
      );
      stored = result.Attributes;
    });
    // Delivered: the verbatim output has done its job; the record keeps it redacted, like the rest.
    // The delivery stands whatever happens to this write (the item already says delivered, so a
    // failure here must not make the caller think it was not, and try to deliver it again).
    if (marked && this.options.redact && typeof stored?.output === 'string')
      await conditionalWrite(() =>
        this.client.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: key,
            UpdateExpression: 'SET #output = :output',
            // Not on an item the TTL removed meanwhile (an update would create a stub).
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeNames: { '#output': 'output' },
            ExpressionAttributeValues: {
              ':output': this.recorded({ arguments: '', output: String(stored?.output) }).output,
            },
          }),
        ),
      ).catch((error: unknown) =>
        this.options.log?.warn('could not redact a delivered tool output', {
          callId,
          fnCallId,
          error: error instanceof Error ? error.name : 'unknown',
        }),
      );
    return marked;
  }
}
