import { explainEndpointError } from '#adapters/openai-webhook-endpoints';
import { defaultEventTypes, endpointsFor, eventTypeDrift } from '#core/webhooks/endpoint-lifecycle';
import { parseWebhookSecrets } from '#core/webhooks/signature';
import {
  commaList,
  failed,
  parseCommandLine,
  print,
  printUsage,
  TARGET_OPTIONS,
  usageError,
} from './args';
import { positiveInteger } from './format';
import { queueDepth } from './redrive';
import type { CliIo } from './run';
import { awsStackProbe, type StackProbe, stackChecks } from './stack-probe';
import type { WebhookTarget } from './webhook-target';
import { runTest, webhookTargetOf } from './webhooks';

export const DOCTOR_USAGE = `owh doctor: checks a deployed (or local) stack end to end, one line per check, with a fix for each failure.

Usage: owh doctor (--stack NAME [--region R] | --local) [--json] [--no-test] [--timeout 30]
       [--event-types a,b: the ones expected; default: the stack's defaults]
       [--api-key-secret NAME] [--webhook-secret NAME]`;

const OPTIONS = {
  ...TARGET_OPTIONS,
  'no-test': { type: 'boolean' },
  timeout: { type: 'string' },
  'event-types': { type: 'string' },
  'api-key-secret': { type: 'string' },
  'webhook-secret': { type: 'string' },
} as const;

export interface Check {
  readonly name: string;
  /** `skip`: not checkable here; says why. */
  readonly result: 'ok' | 'fail' | 'skip';
  readonly detail: string;
  readonly fix?: string;
}

export async function runDoctor(argv: readonly string[], io: CliIo): Promise<number> {
  let target: WebhookTarget | undefined;
  try {
    const { values, positionals } = parseCommandLine(argv, OPTIONS, DOCTOR_USAGE);
    if (positionals.length > 0)
      throw usageError(`Unexpected argument "${positionals[0]}".`, DOCTOR_USAGE);
    if (values.help) return printUsage(io, DOCTOR_USAGE, true);
    target = await webhookTargetOf(values, io);
    const checks = await diagnose(target, {
      test: !values['no-test'],
      timeoutMs: positiveInteger(values.timeout, '--timeout', 30) * 1000,
      expected: values['event-types'] === undefined ? undefined : commaList(values['event-types']),
      now: io.now,
      ...(target.stackName ? { probe: awsStackProbe(target.stackName, values.region) } : {}),
    });
    print(io, values, checks, () =>
      checks
        .map((c) => {
          const mark = c.result === 'ok' ? 'ok  ' : c.result === 'fail' ? 'FAIL' : 'skip';
          return `${mark} ${c.name.padEnd(14)} ${c.detail}${c.fix ? `\n     ${''.padEnd(14)} fix: ${c.fix}` : ''}`;
        })
        .join('\n'),
    );
    return checks.some((c) => c.result === 'fail') ? 1 : 0;
  } catch (error) {
    return failed(io, error);
  } finally {
    target?.close();
  }
}

/** Every check, in order; a failure does not stop the ones after it. */
export async function diagnose(
  target: WebhookTarget,
  options: {
    test: boolean;
    timeoutMs: number;
    expected?: readonly string[] | undefined;
    now: () => number;
    /** A deployed stack's resources (alarm subscriber, sideband tasks). @default not checked */
    probe?: StackProbe | undefined;
  },
): Promise<Check[]> {
  const checks: Check[] = [];
  const where = target.local ? ' --local' : target.stackName ? ` --stack ${target.stackName}` : '';

  // 1. The secrets exist and parse.
  try {
    const value = await target.secret.current();
    if (value === undefined) throw new Error('it has no value');
    const secrets = parseWebhookSecrets(value);
    checks.push({
      name: 'webhook secret',
      result: 'ok',
      detail: `${target.secretName} parses (${secrets.map((s) => s.label).join(' + ')})`,
    });
  } catch (error) {
    checks.push({
      name: 'webhook secret',
      result: 'fail',
      detail: `${target.secretName}: ${error instanceof Error ? error.message : String(error)}`,
      fix: `owh webhooks register${where} (or put the endpoint's whsec_… into ${target.secretName})`,
    });
  }
  let endpoints: Awaited<ReturnType<WebhookTarget['endpoints']['list']>> | undefined;
  try {
    endpoints = await target.endpoints.list();
    checks.push({
      name: 'api key',
      result: 'ok',
      detail: `${target.apiKeySecretName ?? 'the key'} may manage webhook endpoints at ${target.openAiBaseUrl}`,
    });
  } catch (error) {
    checks.push({
      name: 'api key',
      result: 'fail',
      detail: explainEndpointError(error, 'list webhook endpoints'),
      fix: 'give the key write access to Webhooks (or use a project key), then run owh doctor again',
    });
  }

  // 2. The function URL answers 405 to GET (it is up, and it is the ingress).
  try {
    const response = await fetch(target.webhookUrl, { signal: AbortSignal.timeout(10_000) });
    await response.arrayBuffer().catch(() => undefined);
    checks.push(
      response.status === 405
        ? { name: 'webhook url', result: 'ok', detail: `${target.webhookUrl} answers 405 to GET` }
        : {
            name: 'webhook url',
            result: 'fail',
            detail: `${target.webhookUrl} answered ${response.status} to GET, not 405`,
            fix: 'check that the URL is the stack’s WebhookUrl output, and the ingress function’s logs',
          },
    );
  } catch (error) {
    checks.push({
      name: 'webhook url',
      result: 'fail',
      detail: `${target.webhookUrl} did not answer (${error instanceof Error ? error.name : String(error)})`,
      fix: target.local
        ? 'start local mode: npm start'
        : 'check the stack is deployed (cdk deploy)',
    });
  }

  // 3. An endpoint is registered for that URL, with the expected event types.
  let registered = false;
  if (endpoints) {
    const mine = endpointsFor(endpoints, target.webhookUrl);
    const expected = options.expected ?? defaultEventTypes(target.callsOn);
    const [first] = mine;
    if (!first)
      checks.push({
        name: 'endpoint',
        result: 'fail',
        detail: `no endpoint at ${target.openAiBaseUrl} delivers to ${target.webhookUrl}`,
        fix: `owh webhooks register${where}`,
      });
    else if (mine.length > 1)
      checks.push({
        name: 'endpoint',
        result: 'fail',
        detail: `${mine.length} endpoints deliver to this URL (${mine.map((e) => e.id).join(', ')}): each event arrives ${mine.length} times`,
        fix: `owh webhooks delete <id>${where} for all but one`,
      });
    else {
      registered = true;
      const drift = eventTypeDrift(first.event_types, expected);
      checks.push(
        drift.missing.length === 0
          ? {
              name: 'endpoint',
              result: 'ok',
              detail: `${first.id} delivers ${first.event_types.length} event types here${drift.extra.length ? ` (also ${drift.extra.join(', ')})` : ''}`,
            }
          : {
              name: 'endpoint',
              result: 'fail',
              detail: `${first.id} is not subscribed to ${drift.missing.join(', ')}`,
              fix: `owh webhooks update ${first.id}${where} --event-types ${[...new Set([...first.event_types, ...drift.missing])].join(',')}`,
            },
      );
    }
  } else
    checks.push({
      name: 'endpoint',
      result: 'skip',
      detail: 'not checked: the key cannot list endpoints',
    });

  // 4. A test event arrives, is verified, stored and processed.
  if (!options.test)
    checks.push({ name: 'test event', result: 'skip', detail: 'not sent (--no-test)' });
  else if (!registered)
    checks.push({
      name: 'test event',
      result: 'skip',
      detail: 'not sent: no single endpoint for this URL',
    });
  else {
    try {
      const outcome = await runTest(target, { timeoutMs: options.timeoutMs, now: options.now });
      const last = outcome.timeline.at(-1);
      checks.push(
        outcome.ok
          ? {
              name: 'test event',
              result: 'ok',
              detail: `${outcome.eventType} ${outcome.eventId} processed in ${last?.atMs ?? '?'} ms`,
            }
          : {
              name: 'test event',
              result: 'fail',
              detail: outcome.problem ?? 'failed',
              fix:
                outcome.statusCode === 401
                  ? `owh webhooks rotate${where} (stores a fresh secret for this endpoint)`
                  : `owh webhooks test${where} prints the timeline; owh events list${where} shows what was stored`,
            },
      );
    } catch (error) {
      checks.push({
        name: 'test event',
        result: 'fail',
        detail: error instanceof Error ? error.message : String(error),
        fix: `owh webhooks test${where}`,
      });
    }
  }

  // 5 and 7 read the stack's resources: the alarm topic's subscriber, the sideband's tasks.
  const stackOnly: Check[] = target.local
    ? [
        { name: 'alarm topic', result: 'skip', detail: 'local mode has no alarm topic' },
        {
          name: 'sideband',
          result: 'skip',
          detail: target.callsOn
            ? 'local mode runs its worker as a process (npm start prints its logs)'
            : 'calls are off',
        },
      ]
    : options.probe
      ? await stackChecks(options.probe, { callsOn: target.callsOn, where })
      : [];
  const alarmCheck = stackOnly.find((c) => c.name === 'alarm topic');
  if (alarmCheck) checks.push(alarmCheck);

  // 6. No dead-letter queue holds messages.
  const full: string[] = [];
  for (const [name, queue] of Object.entries(target.target.config.queues)) {
    const depth = await queueDepth(target.target.sqs, queue.dlqUrl).catch(() => undefined);
    if (depth === undefined) full.push(`${name} (unreadable)`);
    else if (depth.visible + depth.inFlight > 0)
      full.push(`${name} (${depth.visible + depth.inFlight})`);
  }
  checks.push(
    full.length === 0
      ? { name: 'dead letters', result: 'ok', detail: 'every DLQ is empty' }
      : {
          name: 'dead letters',
          result: 'fail',
          detail: `messages in ${full.join(', ')}`,
          fix: `owh events list${where} --status failed, fix the cause, then owh redrive <category>${where}`,
        },
  );

  // 7. Sideband tasks run when calls are on.
  const sidebandCheck = stackOnly.find((c) => c.name === 'sideband');
  if (sidebandCheck) checks.push(sidebandCheck);
  return checks;
}
