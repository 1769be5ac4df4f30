import { randomBytes } from 'node:crypto';
import {
  DeleteMessageBatchCommand,
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
 * The figures of the layout before issue 12 §2 (measured with this benchmark on 2026-11-23 at
 * 17:57 UTC, same machine, before the head/body split): a claim and a queued mark at the
 * ingress; at the consumer the event item with its payload and index entry, a consumed check, the
 * object state, and the processed mark, billed on the payload-bearing item and rewriting its
 * index entry. `npm run bench -- cost` on commit 4a13d45 reproduces them.
 */
const BEFORE = [
  '| `response.completed` | one per receive | 9.00 | 2.00 | 3.0 | 2.0 | 28 | 49 | $8.18 |',
  '| `batch.completed` | one per receive | 9.00 | 2.00 | 3.0 | 2.0 | 16 | 28 | $7.88 |',
];
const BEFORE_CALLS =
  'PutItem 1 (claim), sqs:SendMessage, UpdateItem 1 (queued mark), sqs:ReceiveMessage, PutItem 3 (event with payload, and its index entry), GetItem 1 (consumed check), GetItem 1 (object), PutItem 1 (object), UpdateItem 3 (processed: billed on the payload-bearing item, and its index entry), sqs:DeleteMessage';
/** Messages per consumer invocation on a busy queue: the stack's default `batchSize`. */
const BATCH = 10;
/** Batches measured per type on a busy queue, after one unmeasured. */
const BATCHES = 4;

interface Row {
  readonly type: string;
  readonly mode: 'one per receive' | 'batches of 10';
  readonly write: number;
  readonly read: number;
  readonly failedConditions: number;
  readonly ingressMs: number;
  /** Consumer billed ms per event (a batch's billed ms divided by its events). */
  readonly consumerMs: number;
  readonly sqs: number;
  /** Lambda invocations per event: the ingress's one and a share of the consumer's. */
  readonly invocations: number;
  readonly calls: readonly string[];
}

function dollarsPerMillion(row: Row, extraConsumerMs = 0): number {
  return (
    1e6 *
    (row.write * PRICE.writeUnit +
      row.read * PRICE.readUnit +
      row.sqs * PRICE.sqsRequest +
      row.invocations * PRICE.lambdaRequest +
      (row.ingressMs / 1000) * (MEMORY_MIB.ingress / 1024) * PRICE.lambdaGbSecondArm +
      ((row.consumerMs + extraConsumerMs) / 1000) *
        (MEMORY_MIB.consumer / 1024) *
        PRICE.lambdaGbSecondArm)
  );
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
    const post = async (type: string): Promise<number> => {
      const request = signedWebhookRequest(secret, JSON.stringify(oneKibEvent(type)));
      if (Buffer.byteLength(request.body) !== 1024) throw new Error('not a 1 KiB body');
      const started = performance.now();
      const response = await ingress(functionUrlEvent(request.headers, request.body));
      const ms = Math.ceil(performance.now() - started);
      if (typeof response === 'string' || response.statusCode !== 200)
        throw new Error(`ingress answered ${JSON.stringify(response)}`);
      return ms;
    };
    const receive = async (queueUrl: string, count: number): Promise<Message[]> => {
      const messages: Message[] = [];
      while (messages.length < count) {
        const { Messages = [] } = await mapping.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: Math.min(10, count - messages.length),
            WaitTimeSeconds: 5,
            MessageAttributeNames: ['All'],
            MessageSystemAttributeNames: ['All'],
          }),
        );
        if (Messages.length === 0) throw new Error('nothing queued');
        messages.push(...Messages);
      }
      return messages;
    };
    const mean = (samples: readonly Row[], pick: (r: Row) => number) =>
      samples.reduce((sum, r) => sum + pick(r), 0) / samples.length;

    // A quiet queue: one message per receive and per consumer invocation.
    for (const type of types) {
      const category = categoryOf(type);
      const queue = pipeline.queues[category];
      const samples: Row[] = [];
      for (let i = 0; i < WARMUP + EVENTS; i++) {
        current = newTally();
        const ingressMs = await post(type);
        const [message] = await receive(queue.queueUrl, 1);
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
            mode: 'one per receive',
            write: current.write,
            read: current.read,
            failedConditions: current.failedConditions,
            ingressMs,
            consumerMs,
            sqs: current.sqs,
            invocations: 2,
            calls: current.calls,
          });
      }
      rows.push({
        type,
        mode: 'one per receive',
        write: mean(samples, (r) => r.write),
        read: mean(samples, (r) => r.read),
        failedConditions: mean(samples, (r) => r.failedConditions),
        ingressMs: median(samples.map((r) => r.ingressMs)),
        consumerMs: median(samples.map((r) => r.consumerMs)),
        sqs: mean(samples, (r) => r.sqs),
        invocations: 2,
        calls: samples[samples.length - 1]?.calls ?? [],
      });
    }

    // A busy queue: the event source mapping hands the consumer full batches (batchSize 10),
    // received and deleted ten at a time.
    for (const type of types) {
      const category = categoryOf(type);
      const queue = pipeline.queues[category];
      const samples: Row[] = [];
      for (let b = 0; b < 1 + BATCHES; b++) {
        current = newTally();
        const ingressMs: number[] = [];
        for (let i = 0; i < BATCH; i++) ingressMs.push(await post(type));
        const messages = await receive(queue.queueUrl, BATCH);
        const event: SQSEvent = { Records: messages.map((m) => sqsRecord(m, queue.queueArn)) };
        const startedConsumer = performance.now();
        const result = await consumerFor(category)(event);
        const consumerMs = Math.ceil(performance.now() - startedConsumer);
        if (result.batchItemFailures.length > 0) throw new Error('the consumer failed');
        await mapping.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queue.queueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
        if (b >= 1)
          samples.push({
            type,
            mode: 'batches of 10',
            write: current.write / BATCH,
            read: current.read / BATCH,
            failedConditions: current.failedConditions / BATCH,
            ingressMs: median(ingressMs),
            consumerMs: consumerMs / BATCH,
            sqs: current.sqs / BATCH,
            invocations: 1 + 1 / BATCH,
            calls: [],
          });
      }
      rows.push({
        type,
        mode: 'batches of 10',
        write: mean(samples, (r) => r.write),
        read: mean(samples, (r) => r.read),
        failedConditions: mean(samples, (r) => r.failedConditions),
        ingressMs: median(samples.map((r) => r.ingressMs)),
        consumerMs: mean(samples, (r) => r.consumerMs),
        sqs: mean(samples, (r) => r.sqs),
        invocations: 1 + 1 / BATCH,
        calls: [],
      });
    }

    out(
      `${EVENTS} events of each type after ${WARMUP} unmeasured, one at a time, each a 1 KiB body ` +
        '(padded with random base64, which compresses less than a real event); the consumer ' +
        'hydrates both (GET from the OpenAI simulator). Then, as on a busy queue, ' +
        `${BATCHES} batches of ${BATCH} per type after one unmeasured: received, handled in one ` +
        'consumer invocation and deleted ten at a time. Units are what DynamoDB Local reported ' +
        'with `ReturnConsumedCapacity: TOTAL` (base table and index writes together), SQS ' +
        'requests are SDK calls (send, receive, delete), Lambda ms are handler durations rounded ' +
        "up to 1 ms per invocation (median; a batch's time divided by its ten events).",
    );
    out();
    const header =
      '| event | consumer gets | write units | read units | SQS requests | Lambda invocations | ingress billed ms | consumer billed ms | $ per million (DynamoDB + SQS + Lambda) |';
    out(header);
    out('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of rows) {
      out(
        `| \`${row.type}\` | ${row.mode} | ${fmt(row.write, 2)} | ${fmt(row.read, 2)} | ${fmt(row.sqs, 1)} | ${fmt(row.invocations, 1)} | ${row.ingressMs} | ${fmt(row.consumerMs, 1)} | $${fmt(dollarsPerMillion(row), 2)} |`,
      );
    }
    out();
    const failed = rows.reduce((n, r) => n + r.failedConditions, 0);
    if (failed > 0)
      out(
        `Conditional writes that failed (billed, but not reported by DynamoDB): ${fmt(failed, 2)} per event in all.`,
      );
    out(
      `A real OpenAI GET in the consumer (hydration) adds about ${OPENAI_ROUND_TRIP_MS} ms of consumer time per event: ` +
        rows
          .map(
            (r) =>
              `\`${r.type}\` ${r.mode} $${fmt(dollarsPerMillion(r, OPENAI_ROUND_TRIP_MS / (r.mode === 'batches of 10' ? BATCH : 1)), 2)}`,
          )
          .join(', ') +
        " (a batch's GETs run concurrently; counted here as if they did not).",
    );
    out();
    out('Before (the layout of commit 4a13d45, measured the same way, one message per receive):');
    out();
    out(header);
    out('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const line of BEFORE) out(line);
    out();
    for (const row of rows.filter((r) => r.calls.length > 0))
      out(`Calls for one \`${row.type}\` now (DynamoDB: units each): ${row.calls.join(', ')}.`);
    out(`Calls before: ${BEFORE_CALLS}.`);
    out();
    out(
      `Prices (us-east-1 list): DynamoDB on-demand $0.625 per million write and $0.125 per million read request units; Lambda arm64 $0.20 per million requests and $0.0000133334 per GB-second, ingress ${MEMORY_MIB.ingress} MiB and consumer ${MEMORY_MIB.consumer} MiB (the constructs' defaults); SQS $0.40 per million requests. ` +
        "Not included: free tiers, CloudWatch Logs, S3 (only for bodies above the claim-check threshold), data transfer, and the event source mapping's empty long polls on an idle queue (a fixed monthly cost, not per event). " +
        'The local handler times run on a shared 2-core machine against loopback stand-ins, while in AWS each call is a network round trip of a few ms.',
    );
    out();
  } finally {
    await pipeline.stop();
  }
}
