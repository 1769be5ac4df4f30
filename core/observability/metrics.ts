/**
 * The metric catalogue and its CloudWatch embedded-metric-format (EMF) encoding. Pure: no I/O,
 * no clock. Lambdas print the lines on stdout; the sideband worker prints them through the
 * awslogs driver; CloudWatch turns each line into metrics.
 *
 * One namespace, `OpenAiWebhooks`. Every metric is published with the dimension set `[Stack]`
 * (the total) and, when it has one, also with `[Stack, <its dimension>]` (`Category`, `Reason`,
 * `Secret`, `Tool`, `EndReason` or `Action`). Dashboards and alarms read either directly: no metric math.
 */
export const METRICS_NAMESPACE = 'OpenAiWebhooks';

export type MetricUnit = 'Count' | 'Milliseconds' | 'Seconds' | 'None';

/** Every metric this project emits, with its unit and what it counts. README "Metrics" lists them. */
export const METRICS = {
  // Ingress, one request each.
  WebhooksReceived: { unit: 'Count', about: 'every request to the webhook URL' },
  WebhooksVerified: { unit: 'Count', about: 'signature and timestamp verified' },
  WebhooksRejected: { unit: 'Count', about: '4xx answers, by Reason (the error code)' },
  SignatureFailures: { unit: 'Count', about: '401s: bad signature or timestamp out of tolerance' },
  WebhooksDuplicate: { unit: 'Count', about: 'deliveries of an event already queued' },
  WebhooksAccepted: { unit: 'Count', about: 'stored and queued, by Category' },
  WebhooksMalformed: {
    unit: 'Count',
    about: 'verified bodies that are not well-formed events, kept and acknowledged anyway',
  },
  WebhooksFailed: { unit: 'Count', about: '5xx answers (OpenAI retries), by Reason' },
  SecretMatched: { unit: 'Count', about: 'which secret verified, by Secret (current/previous)' },
  AckLatency: { unit: 'Milliseconds', about: 'request in to 200 out, accepted webhooks' },
  // Category consumers, one event each.
  EventsProcessed: { unit: 'Count', about: 'events stored, projected and handled, by Category' },
  EventsSkipped: { unit: 'Count', about: 'redeliveries of an event already processed' },
  ProcessingTime: { unit: 'Milliseconds', about: 'consumer time per event, by Category' },
  ProcessingFailures: { unit: 'Count', about: 'failed attempts (retried, then DLQ)' },
  EventsDeadLettered: {
    unit: 'Count',
    about: 'events whose last attempt failed: their message goes to the DLQ, by Category',
  },
  HydrationErrors: { unit: 'Count', about: 'OpenAI fetches that failed or were refused' },
  EventLatency: { unit: 'Milliseconds', about: 'ingress acceptance to processed, by Category' },
  // Phone calls: the incoming-call handler.
  CallsIncoming: { unit: 'Count', about: 'realtime.call.incoming decided (once per call)' },
  CallsAccepted: { unit: 'Count', about: 'accepted with a session config' },
  CallsRejected: { unit: 'Count', about: 'rejected by policy or capacity, by Reason' },
  CallsMissed: { unit: 'Count', about: 'older than maxRingAge when picked up' },
  CallsFailed: { unit: 'Count', about: 'accept failed or the call was gone, by Reason' },
  AcceptLatency: { unit: 'Milliseconds', about: 'webhook received to accept answered' },
  // Phone calls: the sideband worker.
  AttachLatency: { unit: 'Milliseconds', about: 'accept answered to sideband attached' },
  ToolCalls: { unit: 'Count', about: 'tool calls run, by Tool' },
  ToolLatency: { unit: 'Milliseconds', about: 'tool call duration, by Tool' },
  ToolErrors: { unit: 'Count', about: 'tool calls that failed or timed out, by Tool' },
  TransfersConfirmed: { unit: 'Count', about: 'transfers confirmed by the socket closing' },
  TransfersFailed: { unit: 'Count', about: 'transfers refused or never confirmed' },
  CallsEnded: { unit: 'Count', about: 'calls ended, by EndReason' },
  CallsEndedByChannel: {
    unit: 'Count',
    about:
      'calls ended, by Channel (sip, webrtc): apart from CallsEnded, whose alarms see it whole',
  },
  CallDuration: { unit: 'Seconds', about: 'attached to ended' },
  SessionCapHits: { unit: 'Count', about: 'calls wrapped up before the 60-minute cap' },
  Handoffs: { unit: 'Count', about: 'calls handed to another worker on SIGTERM' },
  SweeperReattaches: { unit: 'Count', about: 'calls re-signalled after their worker died' },
  ActiveCalls: { unit: 'Count', about: 'calls held by one task (Average: per task)' },
  CallCapacity: { unit: 'Count', about: 'calls one task may hold' },
  AccountActiveCalls: { unit: 'Count', about: 'calls holding capacity account-wide (Maximum)' },
  // Phone calls: the sideband worker under faults (issue 11).
  Reattaches: { unit: 'Count', about: 'reattaches after a clean close the worker did not cause' },
  IdleTimeouts: { unit: 'Count', about: 'server idle timeouts (the caller silent)' },
  CallerBargeIns: {
    unit: 'Count',
    about: 'answers the caller talked over: the rest of the answer was not heard',
  },
  ToolCallsSkipped: { unit: 'Count', about: 'function calls not run: interrupted by the caller' },
  ToolOutputsTruncated: { unit: 'Count', about: 'tool outputs cut at maxToolOutputBytes' },
  ToolOutputsHandedOver: {
    unit: 'Count',
    about: 'tool outputs a previous worker stored, delivered by the one that took the call over',
  },
  LeasesLost: {
    unit: 'Count',
    about: 'calls a worker let go of because a sweeper fenced its lease (it had stalled)',
  },
  AttachRetries: { unit: 'Count', about: 'sideband attaches retried after a failure' },
  // Browser voice sessions: the WebRTC session endpoint and attach API (issue 14).
  WebRtcSessionsOpened: { unit: 'Count', about: 'browser offers answered and signalled' },
  WebRtcSessionsRefused: {
    unit: 'Count',
    about: 'session requests refused (bad SDP, unknown profile, full, OpenAI error), by Reason',
  },
  WebRtcAnswerLatency: {
    unit: 'Milliseconds',
    about: 'offer in to SDP answer out (OpenAI included)',
  },
  WebRtcAttaches: { unit: 'Count', about: 'attach API calls queued for the sideband fleet' },
  // Live call control (issue 16): commands as the worker holding the call settles them.
  CallCommandsApplied: {
    unit: 'Count',
    about: 'call-control commands applied by the worker holding the call, by Action',
  },
  CallCommandsRefused: {
    unit: 'Count',
    about: 'commands the call could not take (no response to cancel, unknown target…), by Reason',
  },
  CallCommandsFailed: {
    unit: 'Count',
    about: 'commands claimed but not carried out (the call ended first), by Reason',
  },
  CallCommandLatency: {
    unit: 'Milliseconds',
    about: 'API accepted (202) to applied by the owning worker, by Action',
  },
  // Phone calls: the call recorder (issue 12).
  RecorderItemsDropped: {
    unit: 'Count',
    about:
      'call parts (transcript, tool, usage, event) the recorder gave up writing, by Reason; alarmed above 0',
  },
} as const satisfies Record<string, { unit: MetricUnit; about: string }>;

export type MetricName = keyof typeof METRICS;

/** The one extra dimension a metric may carry besides `Stack`. */
export type MetricDimension =
  | 'Category'
  | 'Reason'
  | 'Secret'
  | 'Tool'
  | 'EndReason'
  | 'Action'
  | 'Channel';

export interface MetricPoint {
  readonly name: MetricName;
  readonly value: number;
  readonly dimension?: { readonly name: MetricDimension; readonly value: string };
}

/** Where metrics go: a Lambda's or the worker's stdout, a file in local mode, an array in tests. */
export type MetricsPublisher = (points: readonly MetricPoint[]) => void;

export const noMetrics: MetricsPublisher = () => undefined;

/**
 * Encodes points as EMF records (usually one). Points whose dimensions do not conflict share a
 * record, each group in its own directive; a second point with the same name, or the same
 * dimension with another value, goes to a record of its own. `properties` (correlation ids) are
 * kept on every record for Logs Insights.
 */
export function emfRecords(
  stack: string,
  points: readonly MetricPoint[],
  timestamp: number,
  properties: Readonly<Record<string, unknown>> = {},
): Record<string, unknown>[] {
  interface Draft {
    readonly values: Map<string, number>;
    readonly dims: Map<string, string>;
    readonly directives: Map<string, MetricName[]>;
  }
  const drafts: Draft[] = [];
  for (const point of points) {
    const dim = point.dimension;
    let draft = drafts.find(
      (d) =>
        !d.values.has(point.name) && (!dim || (d.dims.get(dim.name) ?? dim.value) === dim.value),
    );
    if (!draft) {
      draft = { values: new Map(), dims: new Map(), directives: new Map() };
      drafts.push(draft);
    }
    draft.values.set(point.name, point.value);
    if (dim) draft.dims.set(dim.name, dim.value);
    const key = dim?.name ?? '';
    draft.directives.set(key, [...(draft.directives.get(key) ?? []), point.name]);
  }
  return drafts.map((draft) => ({
    ...properties,
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [...draft.directives].map(([dimension, names]) => ({
        Namespace: METRICS_NAMESPACE,
        Dimensions: dimension ? [['Stack'], ['Stack', dimension]] : [['Stack']],
        Metrics: names.map((name) => ({ Name: name, Unit: METRICS[name].unit })),
      })),
    },
    Stack: stack,
    ...Object.fromEntries(draft.dims),
    ...Object.fromEntries(draft.values),
  }));
}

/** A publisher that prints EMF lines, for Lambda (stdout) and the sideband worker (awslogs). */
export function emfPublisher(options: {
  readonly stack: string;
  readonly clock: () => number;
  readonly write: (line: string) => void;
  readonly properties?: Readonly<Record<string, unknown>>;
}): MetricsPublisher {
  return (points) => {
    if (points.length === 0) return;
    for (const record of emfRecords(options.stack, points, options.clock(), options.properties))
      options.write(JSON.stringify(record));
  };
}

export const count = (
  name: MetricName,
  dimension?: MetricPoint['dimension'],
  value = 1,
): MetricPoint => (dimension ? { name, value, dimension } : { name, value });
