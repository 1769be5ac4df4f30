import { type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '#adapters/dynamo-conditions';
import type { ToolCallClaims } from '#core/ports/sideband';
import { keys } from '#core/table-schema';

/**
 * Claims a function call id before its tool runs, durably and at once: a conditional put of the
 * call's `TOOL#<fnCallId>` part in `running` state. The recorder later overwrites that part with
 * the tool's result.
 */
export class DynamoToolCallClaims implements ToolCallClaims {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly options: { readonly ttlSeconds: number; readonly clock: () => number },
  ) {}

  async claim(callId: string, fnCallId: string, name: string): Promise<boolean> {
    const at = this.options.clock();
    return conditionalWrite(() =>
      this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.callPart(callId, `TOOL#${fnCallId}`),
            kind: 'tool',
            fnCallId,
            name,
            status: 'running',
            at,
            expiresAt: Math.floor(at / 1000) + this.options.ttlSeconds,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
  }
}
