import { type DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';

/**
 * DynamoDB's optimistic concurrency for transactions, which DynamoDB Local does not reproduce (it
 * runs one transaction at a time and never answers `TransactionConflict`): a `TransactWriteItems`
 * that touches an item another transaction is still writing is cancelled, with the reason
 * `TransactionConflict` for that item (DynamoDB developer guide, "Transaction conflict handling in
 * DynamoDB"). Added to a client as middleware; counts the conflicts it caused.
 */
export function withTransactionConflicts(client: DynamoDBClient): { conflicts: number } {
  const inFlight = new Map<string, number>();
  const stats = { conflicts: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'TransactWriteItemsCommand') return next(args);
      const input = args.input as {
        TransactItems?: Record<
          string,
          { TableName?: string; Key?: unknown; Item?: Record<string, unknown> }
        >[];
      };
      const itemKeys = (input.TransactItems ?? []).map((entry) => {
        const op = Object.values(entry)[0];
        const key = op?.Key ?? { pk: op?.Item?.pk, sk: op?.Item?.sk };
        return `${op?.TableName}|${JSON.stringify(key)}`;
      });
      if (itemKeys.some((k) => inFlight.has(k))) {
        stats.conflicts++;
        throw new TransactionCanceledException({
          message: 'Transaction cancelled, please refer cancellation reasons for specific reasons',
          $metadata: {},
          CancellationReasons: itemKeys.map((k) =>
            inFlight.has(k)
              ? { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item' }
              : { Code: 'None' },
          ),
        });
      }
      for (const k of itemKeys) inFlight.set(k, (inFlight.get(k) ?? 0) + 1);
      try {
        return await next(args);
      } finally {
        for (const k of itemKeys) {
          const left = (inFlight.get(k) ?? 1) - 1;
          if (left === 0) inFlight.delete(k);
          else inFlight.set(k, left);
        }
      }
    },
    { step: 'initialize', name: 'transactionConflicts' },
  );
  return stats;
}
