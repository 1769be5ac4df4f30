import * as path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientConfig } from '#adapters/aws-clients';
import { DEFAULT_OPENAI_BASE_URL } from '#adapters/openai-client';
import { OpenAiWebhookEndpoints } from '#adapters/openai-webhook-endpoints';
import { SecretsManagerSource } from '#adapters/secrets-manager-source';
import {
  SecretsManagerWebhookSecret,
  type WebhookSecretStore,
} from '#adapters/secrets-manager-webhook-secret';
import { readState, writeState } from '../local/local-state';
import { CliError, DEFAULT_STATE_FILE, NOT_RUNNING, resolveTarget, type Target } from './target';

/**
 * What `owh webhooks` and `owh doctor` work on: the OpenAI endpoint API with the stack's key, the
 * webhook URL, the webhook secret in Secrets Manager, and the event store (cli/target.ts).
 * - `--stack NAME`: the stack's outputs (WebhookUrl, WebhookEndpointId, OperatorConfig); the key
 *   and the webhook secret by their names (`--api-key-secret`, `--webhook-secret`, else the
 *   stack's defaults); `OPENAI_BASE_URL` overrides the API.
 * - `--local`: local mode's state.json: its URL, its OpenAI (the simulator, or OPENAI_BASE_URL),
 *   and the Secrets Manager stand-in its ingress reads the webhook secret from.
 */
export interface WebhookTarget {
  readonly label: string;
  readonly local: boolean;
  readonly endpoints: OpenAiWebhookEndpoints;
  readonly openAiBaseUrl: string;
  readonly webhookUrl: string;
  /** The endpoint the stack registered (its WebhookEndpointId output), if it did. */
  readonly endpointId: string | undefined;
  readonly secret: WebhookSecretStore;
  readonly secretName: string;
  readonly apiKeySecretName: string | undefined;
  readonly callsOn: boolean;
  /** The table and queues (events, DLQs). */
  readonly target: Target;
  /** Local mode: tells `npm run send` (state.json) the secret now in use. */
  readonly adopt: (storedValue: string) => void;
  readonly stackName: string | undefined;
  close(): void;
}

export interface WebhookTargetOptions {
  readonly stack?: string | undefined;
  readonly region?: string | undefined;
  readonly local?: boolean | undefined;
  readonly state?: string | undefined;
  readonly apiKeySecret?: string | undefined;
  readonly webhookSecret?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
}

/** The stack's default secret names (lib/config.ts DEFAULTS; not imported: that pulls in the CDK). */
const DEFAULT_WEBHOOK_SECRET = 'openai-webhooks/webhook-secret';
const DEFAULT_API_KEY_SECRET = 'openai-webhooks/api-key';

interface LocalState {
  webhookUrl?: string;
  webhookSecret?: string;
  openAiBaseUrl?: string;
  openAiApiKey?: string;
  awsEndpoint?: string;
  webhookSecretId?: string;
  calls?: boolean;
  pid?: number;
}

export async function resolveWebhookTarget(options: WebhookTargetOptions): Promise<WebhookTarget> {
  const target = await resolveTarget(options);
  try {
    return options.local
      ? localWebhookTarget(options, target)
      : await stackWebhookTarget(options, target);
  } catch (error) {
    target.documents.destroy();
    target.sqs.destroy();
    throw error;
  }
}

function localWebhookTarget(options: WebhookTargetOptions, target: Target): WebhookTarget {
  const file = options.state ?? DEFAULT_STATE_FILE;
  const read = readState<LocalState>(file);
  if (read.status !== 'running') throw new CliError(`${NOT_RUNNING} (${file}).`);
  const state = read.state;
  if (!state.webhookUrl || !state.openAiBaseUrl || !state.awsEndpoint || !state.webhookSecretId)
    throw new CliError(
      `${file} lacks the webhook fields (awsEndpoint, webhookSecretId): restart npm start with this version.`,
    );
  const apiKey = options.env.OPENAI_API_KEY || state.openAiApiKey;
  if (!apiKey)
    throw new CliError(
      'No OpenAI API key: set OPENAI_API_KEY (local mode runs against OPENAI_BASE_URL).',
    );
  const secrets = new SecretsManagerClient({
    ...awsClientConfig(state.awsEndpoint),
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const secretId = state.webhookSecretId;
  return {
    label: 'local mode',
    local: true,
    endpoints: new OpenAiWebhookEndpoints({
      baseUrl: state.openAiBaseUrl,
      apiKey: async () => apiKey,
    }),
    openAiBaseUrl: state.openAiBaseUrl,
    webhookUrl: state.webhookUrl,
    endpointId: undefined,
    secret: new SecretsManagerWebhookSecret(secrets, secretId),
    secretName: secretId,
    apiKeySecretName: undefined,
    callsOn: state.calls === true,
    target,
    adopt: (stored) => {
      // `npm run send` signs with state.json's secret: the current one from now on.
      const now = readState<LocalState & Record<string, unknown>>(file);
      if (now.status !== 'running') return;
      const current = currentOf(stored);
      if (current) writeState(file, { ...now.state, webhookSecret: current });
    },
    stackName: undefined,
    close: () => {
      secrets.destroy();
      target.documents.destroy();
      target.sqs.destroy();
    },
  };
}

async function stackWebhookTarget(
  options: WebhookTargetOptions,
  target: Target,
): Promise<WebhookTarget> {
  const stackName = options.stack ?? options.env.OWH_STACK ?? '';
  const clientConfig = {
    ...awsClientConfig(),
    ...(options.region ? { region: options.region } : {}),
  };
  const cloudFormation = new CloudFormationClient(clientConfig);
  const outputs: Record<string, string> = {};
  try {
    const result = await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    for (const o of result.Stacks?.[0]?.Outputs ?? [])
      if (o.OutputKey && o.OutputValue !== undefined) outputs[o.OutputKey] = o.OutputValue;
  } finally {
    cloudFormation.destroy();
  }
  const webhookUrl = outputs.WebhookUrl;
  if (!webhookUrl) throw new CliError(`Stack ${stackName} has no WebhookUrl output.`);
  const secrets = new SecretsManagerClient(clientConfig);
  const apiKeySecretName = options.apiKeySecret ?? DEFAULT_API_KEY_SECRET;
  const secretName = options.webhookSecret ?? DEFAULT_WEBHOOK_SECRET;
  const source = new SecretsManagerSource(secrets);
  let key: string | undefined;
  const apiKey = async () => {
    if (options.env.OPENAI_API_KEY) return options.env.OPENAI_API_KEY;
    key ??= (await source.getSecretString(apiKeySecretName)).trim();
    return key;
  };
  const openAiBaseUrl = options.env.OPENAI_BASE_URL || DEFAULT_OPENAI_BASE_URL;
  return {
    label: target.label,
    local: false,
    endpoints: new OpenAiWebhookEndpoints({ baseUrl: openAiBaseUrl, apiKey }),
    openAiBaseUrl,
    webhookUrl,
    endpointId: outputs.WebhookEndpointId,
    secret: new SecretsManagerWebhookSecret(secrets, secretName),
    secretName,
    apiKeySecretName,
    callsOn: Object.hasOwn(target.config.queues, 'signals'),
    target,
    adopt: () => undefined,
    stackName,
    close: () => {
      secrets.destroy();
      target.documents.destroy();
      target.sqs.destroy();
    },
  };
}

function currentOf(stored: string): string | undefined {
  const trimmed = stored.trim();
  if (trimmed.startsWith('whsec_')) return trimmed;
  try {
    const value = JSON.parse(trimmed) as { current?: unknown };
    return typeof value.current === 'string' ? value.current : undefined;
  } catch {
    return undefined;
  }
}

/** The state file `--local` means, as cli/run.ts resolves it. */
export function stateFileOf(state: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return state ?? (env.OWH_LOCAL_DIR ? path.join(env.OWH_LOCAL_DIR, 'state.json') : undefined);
}
