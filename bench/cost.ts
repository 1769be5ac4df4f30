import { randomBytes } from 'node:crypto';
import {
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { LambdaFunctionURLEvent, SQSEvent, SQSRecord } from 'aws-lambda';
import { hooked, onAwsClient, sqsClientConfig } from '#adapters/aws-clients';
import { consumerDepsFromEnv } from '#adapters/runtime/consumer-from-env';
import { ingressDepsFromEnv } from '#adapters/runtime/ingress-from-env';
import { ENV } from '#core/env';
import { noMetrics } from '#core/observability/metrics';
import { type Category, categoryOf } from '#core/webhooks/categories';
import { createConsumerHandler } from '#core/webhooks/process-event';
import { createIngressHandler } from '#core/webhooks/receive-webhook';
import { parseWebhookSecret } from '#core/webhooks/signature';
import { LocalPipeline } from '../local/pipeline';
import { sampleEvent } from '../local/samples';
import { signedWebhookRequest } from '../local/signing';
import { fmt, median } from './stats';

/**
 * Cost per webhook, counted the way AWS bills it: DynamoDB capacity units as DynamoDB itself
 * reports them (every call asks for `ReturnConsumedCapacity: 'TOTAL'`, which DynamoDB Local
 * answers), SQS requests as SDK calls, and Lambda billed milliseconds as each handler's duration
 * rounded up to 1 ms per invocation. The ingress and the consumer run in this process with the
 * production wiring (`ingressDepsFromEnv`, `consumerDepsFromEnv`) against DynamoDB Local, the SQS
 * emulator and the OpenAI simulator; the consumer gets one message per invocation, as a quiet
 * queue delivers them.
 *
 * Prices, us-east-1 list prices:
 * - DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request
 *   units (https://aws.amazon.com/dynamodb/pricing/on-demand/, after the November 2024 50 % cut).
 *   A write unit covers 1 KB of the larger of the old and new item, plus one per index write.
 * - Lambda: $0.20 per million requests, $0.0000133334 per GB-second on arm64, billed per 1 ms
 *   (https://aws.amazon.com/lambda/pricing/). Function URLs add no charge.
 * - SQS standard: $0.40 per million requests, each 64 KiB chunk of a payload one request
 *   (https://aws.amazon.com/sqs/pricing/).
 * Free tiers are left out; so are CloudWatch Logs ingestion and storage.
 */
const PRICE = {
  writeUnit: 0.625 / 1e6,
  readUnit: 0.125 / 1e6,
  lambdaRequest: 0.2 / 1e6,
  lambdaGbSecondArm: 0.0000133334,
  sqsRequest: 0.4 / 1e6,
};
/** The constructs' defaults (lib/config.ts DEFAULTS): ingress 1024 MiB, consumers 512 MiB. */
const MEMORY_MIB = { ingress: 1024, consumer: 512 };
/** Events measured per type, after WARMUP unmeasured ones. */
const EVENTS = 40;
const WARMUP = 5;
/** What a real OpenAI GET adds to a hydrating consumer's billed time (assumed, not measured). */
const OPENAI_ROUND_TRIP_MS = 150;

const WRITE_COMMANDS = new Set([
  'PutItemCommand',
  'UpdateItemCommand',
  'DeleteItemCommand',
  'BatchWriteItemCommand',
  'TransactWriteItemsCommand',
]);

interface Tally {
  write: number;
  read: number;
  /** Conditional writes that failed: billed, but DynamoDB returns no ConsumedCapacity for them. */
  failedConditions: number;
  dynamoCalls: number;
  sqs: number;
  calls: string[];
}

const newTally = (): Tally => ({
  write: 0,
  read: 0,
  failedConditions: 0,
  dynamoCalls: 0,
  sqs: 0,
  calls: [],
});

type Middleware = (
  next: (args: { input: Record<string, unknown> }) => Promise<{ output: unknown }>,
  context: { commandName?: string },
) => (args: { input: Record<string, unknown> }) => Promise<{ output: unknown }>;

interface MiddlewareHost {
  readonly middlewareStack: {
    add(middleware: Middleware, options: { step: string; name: string; priority?: string }): void;
  };
}

function units(consumed: unknown): number {
  const list = Array.isArray(consumed) ? consumed : consumed ? [consumed] : [];
  return list.reduce(
    (sum: number, c: { CapacityUnits?: number }) => sum + (c.CapacityUnits ?? 0),
    0,
  );
}

/** Counts DynamoDB units and SQS requests of every client built while it is installed. */
function instrument(tally: () => Tally): () => void {
  return onAwsClient((client, service) => {
    const stack = (client as MiddlewareHost).middlewareStack;
    if (service === 'dynamodb') {
      stack.add(
        (next, context) => async (args) => {
          const name = context.commandName ?? '';
          args.input.ReturnConsumedCapacity = 'TOTAL';
          const t = tally();
          t.dynamoCalls++;
          try {
            const result = await next(args);
            const consumed = units(
              (result.output as { ConsumedCapacity?: unknown }).ConsumedCapacity,
            );
            if (WRITE_COMMANDS.has(name)) t.write += consumed;
            else t.read += consumed;
            t.calls.push(`${name.replace('Command', '')} ${consumed}`);
            return result;
          } catch (error) {
            if ((error as Error).name === 'ConditionalCheckFailedException') {
              t.failedConditions++;
              t.calls.push(`${name.replace('Command', '')} condition failed`);
            }
            throw error;
          }
        },
        { step: 'initialize', name: 'benchConsumedCapacity', priority: 'low' },
      );
    } else if (service === 'sqs' || service === 's3') {
      stack.add(
        (next, context) => async (args) => {
          const t = tally();
          if (service === 'sqs') t.sqs++;
          t.calls.push(`${service}:${(context.commandName ?? '').replace('Command', '')}`);
          return next(args);
        },
        { step: 'initialize', name: 'benchRequests' },
      );
    }
  });
}

function functionUrlEvent(headers: Record<string, string>, body: string): LambdaFunctionURLEvent {
  const now = Date.now();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/',
    rawQueryString: '',
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'bench',
      domainName: 'bench',
      domainPrefix: 'bench',
      http: {
        method: 'POST',
        path: '/',
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'bench',
      },
      requestId: `bench-${now}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    body,
    isBase64Encoded: false,
  };
}

function sqsRecord(message: Message, queueArn: string): SQSRecord {
  const messageAttributes: SQSRecord['messageAttributes'] = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      dataType: value.DataType ?? 'String',
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
    };
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1',
      SentTimestamp: message.Attributes?.SentTimestamp ?? String(Date.now()),
      SenderId: 'bench',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: 'us-east-1',
  };
}

/**
 * An event of `type` whose body is exactly 1 KiB, padded with random characters so that no
 * compression can make it look smaller than a real 1 KiB event.
 */
function oneKibEvent(type: string): Record<string, unknown> {
  const event: Record<string, unknown> = { ...sampleEvent(type), note: '' };
  const room = 1024 - JSON.stringify(event).length;
  event.note = randomBytes(room).toString('base64').slice(0, room);
  return event;
}

/**
 * The figures of the code before issue 12 (commit of 2026-11-23, same machine and method; its
 * padding was `x` characters, which changes no unit since nothing was compressed below 100 KiB).
 */
const BEFORE = [
  '| `response.completed` | 9.00 | 1.00 | 0.00 | 3.0 | 10 | 35 | $7.72 | $8.72 |',
  '| `batch.completed` | 9.00 | 1.00 | 0.00 | 3.0 | 7 | 21 | $7.58 | $8.58 |',
];
const BEFORE_CALLS =
  'PutItem 1 (claim), sqs:SendMessage, sqs:ReceiveMessage, PutItem 3 (event with payload, and its index entry), UpdateItem 1 (consumed), GetItem 1 (object), PutItem 1 (object), UpdateItem 3 (processed: billed on the payload-bearing item, and its index entry), sqs:DeleteMessage';

interface Row {
  readonly type: string;
  readonly write: number;
  readonly read: number;
  readonly failedConditions: number;
  readonly ingressMs: number;
  readonly consumerMs: number;
  readonly sqs: number;
  readonly calls: readonly string[];
}

export async function benchCost(out: (line?: string) => void): Promise<void> {
  out('## Cost per webhook, as AWS bills it');
  out();
  const pipeline = await LocalPipeline.start({ logLevel: 'error' });
  try {
    // This benchmark drives the handlers itself: the pipeline's own pollers must not take messages.
    await Promise.all(pipeline.pollers.map((p) => p.stop()));
    let current = newTally();
    const remove = instrument(() => current);
    const ingress = createIngressHandler({
      ...ingressDepsFromEnv(pipeline.env),
      metrics: noMetrics,
    });
    const types = ['response.completed', 'batch.completed'];
    const consumers = new Map(
      types.map((type) => {
        const category = categoryOf(type);
        const env = { ...pipeline.env, [ENV.category]: category };
        return [category, createConsumerHandler(consumerDepsFromEnv(env, undefined, noMetrics))];
      }),
    );
    const consumerFor = (category: Category) => {
      const handler = consumers.get(category);
      if (!handler) throw new Error(`no consumer for ${category}`);
      return handler;
    };
    // The event source mapping's own SQS calls (receive, delete) are billed requests too.
    const mapping = hooked(new SQSClient(sqsClientConfig()), 'sqs');
    remove();
    const secret = parseWebhookSecret(pipeline.webhookSecret, 'current');

    const rows: Row[] = [];
    for (const type of types) {
      const category = categoryOf(type);
      const queue = pipeline.queues[category];
      const samples: Row[] = [];
      for (let i = 0; i < WARMUP + EVENTS; i++) {
        current = newTally();
        const request = signedWebhookRequest(secret, JSON.stringify(oneKibEvent(type)));
        if (Buffer.byteLength(request.body) !== 1024) throw new Error('not a 1 KiB body');
        const startedIngress = performance.now();
        const response = await ingress(functionUrlEvent(request.headers, request.body));
        const ingressMs = Math.ceil(performance.now() - startedIngress);
        if (typeof response === 'string' || response.statusCode !== 200)
          throw new Error(`ingress answered ${JSON.stringify(response)}`);
        const { Messages = [] } = await mapping.send(
          new ReceiveMessageCommand({
            QueueUrl: queue.queueUrl,
            MaxNumberOfMessages: 1,
            WaitTimeSeconds: 5,
            MessageAttributeNames: ['All'],
            MessageSystemAttributeNames: ['All'],
          }),
        );
        const message = Messages[0];
        if (!message) throw new Error(`nothing queued on ${category}`);
        const event: SQSEvent = { Records: [sqsRecord(message, queue.queueArn)] };
        const startedConsumer = performance.now();
        const result = await consumerFor(category)(event);
        const consumerMs = Math.ceil(performance.now() - startedConsumer);
        if (result.batchItemFailures.length > 0) throw new Error('the consumer failed');
        await mapping.send(
          new DeleteMessageCommand({
            QueueUrl: queue.queueUrl,
            ReceiptHandle: message.ReceiptHandle,
          }),
        );
        if (i >= WARMUP)
          samples.push({
            type,
            write: current.write,
            read: current.read,
            failedConditions: current.failedConditions,
            ingressMs,
            consumerMs,
            sqs: current.sqs,
            calls: current.calls,
          });
      }
      const mean = (pick: (r: Row) => number) =>
        samples.reduce((sum, r) => sum + pick(r), 0) / samples.length;
      rows.push({
        type,
        write: mean((r) => r.write),
        read: mean((r) => r.read),
        failedConditions: mean((r) => r.failedConditions),
        ingressMs: median(samples.map((r) => r.ingressMs)),
        consumerMs: median(samples.map((r) => r.consumerMs)),
        sqs: mean((r) => r.sqs),
        calls: samples[samples.length - 1]?.calls ?? [],
      });
    }

    out(
      `${EVENTS} events of each type after ${WARMUP} unmeasured, one at a time, each a 1 KiB body; ` +
        'the consumer hydrates both (GET from the OpenAI simulator). Units are what DynamoDB Local ' +
        'reported with `ReturnConsumedCapacity: TOTAL` (base table and index writes together), ' +
        'SQS requests are SDK calls (send, receive, delete: one message per receive, as on a quiet ' +
        'queue), Lambda ms are handler durations rounded up to 1 ms per invocation (median).',
    );
    out();
    out(
      '| event | write units | read units | failed conditions | SQS requests | ingress billed ms | consumer billed ms | $ per million (DynamoDB + SQS + Lambda) | with a 150 ms OpenAI GET |',
    );
    out('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of rows) {
      const dollars = (consumerMs: number) =>
        1e6 *
        (row.write * PRICE.writeUnit +
          row.read * PRICE.readUnit +
          row.sqs * PRICE.sqsRequest +
          2 * PRICE.lambdaRequest +
          (row.ingressMs / 1000) * (MEMORY_MIB.ingress / 1024) * PRICE.lambdaGbSecondArm +
          (consumerMs / 1000) * (MEMORY_MIB.consumer / 1024) * PRICE.lambdaGbSecondArm);
      out(
        `| \`${row.type}\` | ${fmt(row.write, 2)} | ${fmt(row.read, 2)} | ${fmt(row.failedConditions, 2)} | ${fmt(row.sqs, 1)} | ${row.ingressMs} | ${row.consumerMs} | $${fmt(dollars(row.consumerMs), 2)} | $${fmt(dollars(row.consumerMs + OPENAI_ROUND_TRIP_MS), 2)} |`,
      );
    }
    out();
    out('Before issue 12 (same method):');
    out();
    out(
      '| event | write units | read units | failed conditions | SQS requests | ingress billed ms | consumer billed ms | $ per million (DynamoDB + SQS + Lambda) | with a 150 ms OpenAI GET |',
    );
    out('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const line of BEFORE) out(line);
    out();
    for (const row of rows)
      out(`Calls for one \`${row.type}\` now (DynamoDB: units each): ${row.calls.join(', ')}.`);
    out(`Calls before: ${BEFORE_CALLS}.`);
    out();
    out(
      `Prices (us-east-1 list): DynamoDB on-demand $0.625 per million write and $0.125 per million read request units; Lambda arm64 $0.20 per million requests and $0.0000133334 per GB-second, ingress ${MEMORY_MIB.ingress} MiB and consumer ${MEMORY_MIB.consumer} MiB (the constructs' defaults), two invocations per webhook; SQS $0.40 per million requests. ` +
        'Not included: free tiers, CloudWatch Logs, S3 (only for bodies above the claim-check threshold), data transfer. ' +
        'On a busy queue the consumer takes up to 10 messages per receive and invocation, which lowers the SQS and Lambda request shares; ' +
        'the local handler times run on a shared 2-core machine against loopback stand-ins, while in AWS each call is a network round trip of a few ms.',
    );
    out();
  } finally {
    await pipeline.stop();
  }
}
