import {
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '#adapters/dynamo-conditions';
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
 */
export class DynamoToolCallClaims implements ToolCallClaims {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly options: { readonly ttlSeconds: number; readonly clock: () => number },
  ) {}

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
    const fields: Record<string, unknown> = {
      kind: 'tool',
      name: output.name,
      arguments: output.arguments,
      output: output.output,
      status: output.status,
      latencyMs: output.latencyMs,
      delivered: false,
      storedAt: this.options.clock(),
      ...(output.error !== undefined ? { error: output.error } : {}),
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
    return conditionalWrite(() =>
      this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.callPart(callId, `${TOOL_PREFIX}${fnCallId}`),
          UpdateExpression: 'SET delivered = :true, deliveredAt = :at',
          ConditionExpression: 'delivered = :false',
          ExpressionAttributeValues: {
            ':true': true,
            ':false': false,
            ':at': this.options.clock(),
          },
        }),
      ),
    );
  }
}
