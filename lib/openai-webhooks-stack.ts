import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { CATEGORIES } from '../lambdas/shared/core/categories';
import { ENV } from '../lambdas/shared/env';
import { type OpenAiWebhooksConfig, type ResolvedConfig, resolveConfig } from './config';
import { Alarms } from './constructs/alarms';
import { CategoryFanout } from './constructs/category-fanout';
import { EventStore } from './constructs/event-store';
import { SidebandService } from './constructs/sideband-service';
import { WebhookIngress } from './constructs/webhook-ingress';

export interface OpenAiWebhooksStackProps extends StackProps, OpenAiWebhooksConfig {}

/** Composes the constructs; it creates no resource of its own beyond imports and outputs. */
export class OpenAiWebhooksStack extends Stack {
  readonly config: ResolvedConfig;
  readonly store: EventStore;
  readonly fanout: CategoryFanout;
  readonly ingress: WebhookIngress;
  readonly alarms: Alarms;
  readonly sideband?: SidebandService;

  constructor(scope: Construct, id: string, props: OpenAiWebhooksStackProps = {}) {
    super(scope, id, props);
    const config = resolveConfig(props);
    this.config = config;
    // Logs follow the table: kept unless the user chose to destroy data.
    const logRemovalPolicy =
      config.removalPolicy === RemovalPolicy.DESTROY ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    const webhookSecret = Secret.fromSecretNameV2(this, 'WebhookSecret', config.webhookSecretName);
    const apiKeySecret =
      config.openAiApiKeySecretName === null
        ? undefined
        : Secret.fromSecretNameV2(this, 'OpenAiApiKey', config.openAiApiKeySecretName);

    this.store = new EventStore(this, 'EventStore', { removalPolicy: config.removalPolicy });
    this.fanout = new CategoryFanout(this, 'Fanout', {
      categories: config.categories,
      store: this.store,
      eventRetention: config.eventRetention,
      dlqRetention: config.dlqRetention,
      logRetention: config.logRetention,
      logRemovalPolicy,
      logLevel: config.logLevel,
      openAiEnvironment: {
        [ENV.openAiBaseUrl]: config.openAiBaseUrl,
        ...(apiKeySecret ? { [ENV.openAiKeySecretId]: apiKeySecret.secretName } : {}),
      },
      ...(apiKeySecret ? { grantOpenAiKey: (grantee) => apiKeySecret.grantRead(grantee) } : {}),
    });
    this.ingress = new WebhookIngress(this, 'Ingress', {
      store: this.store,
      fanout: this.fanout,
      webhookSecret,
      signatureTolerance: config.signatureTolerance,
      maxBodyBytes: config.maxBodyBytes,
      dedupeRetention: config.dedupeRetention,
      reservedConcurrency: config.ingressReservedConcurrency,
      memorySize: config.ingressMemorySize,
      timeout: config.ingressTimeout,
      logRetention: config.logRetention,
      logRemovalPolicy,
      logLevel: config.logLevel,
    });

    const calls = config.calls;
    if (calls && apiKeySecret) {
      const sideband = new SidebandService(this, 'Sideband', {
        store: this.store,
        apiKeySecret,
        callsConfig: calls.config,
        toolFunctions: calls.toolFunctions,
        openAiBaseUrl: config.openAiBaseUrl,
        minTasks: calls.minTasks,
        maxTasks: calls.maxTasks,
        cpu: calls.cpu,
        memoryMiB: calls.memoryMiB,
        ...(calls.vpc ? { vpc: calls.vpc } : {}),
        ...(calls.vpcSubnets ? { vpcSubnets: calls.vpcSubnets } : {}),
        dlqRetention: config.dlqRetention,
        logRetention: config.logRetention,
        logRemovalPolicy,
        logLevel: config.logLevel,
      });
      this.sideband = sideband;
      // The realtime consumer is the incoming-call handler.
      const incoming = this.fanout.pipelines.realtime.consumer;
      incoming.addEnvironment(ENV.callsConfig, this.toJsonString(calls.config));
      incoming.addEnvironment(ENV.signalQueueUrl, sideband.signalQueue.queueUrl);
      apiKeySecret.grantRead(incoming);
      sideband.grantSignal(incoming);
      if (calls.minTasks === 0) {
        incoming.addEnvironment(ENV.ecsCluster, sideband.cluster.clusterName);
        incoming.addEnvironment(ENV.ecsService, sideband.service.serviceName);
        sideband.grantScaleFromZero(incoming);
      }
    }

    this.alarms = new Alarms(this, 'Alarms', {
      ...(config.alarmEmail ? { alarmEmail: config.alarmEmail } : {}),
    });
    for (const category of CATEGORIES) {
      this.alarms.addAlarm(`DeadLetters-${category}`, this.fanout.metricDeadLetterDepth(category), {
        threshold: 1,
        description: `${category} events failed ${config.categories[category].maxReceiveCount} times and wait in the DLQ. Fix the cause, then redrive.`,
      });
    }
    if (this.sideband) {
      this.alarms.addAlarm('DeadLetters-signals', this.sideband.metricSignalDeadLetters(), {
        threshold: 1,
        description:
          'Call signals failed 5 times: accepted calls may have no sideband worker. Check the sideband service logs.',
      });
    }
    this.alarms.addAlarm('Ingress5xx', this.ingress.metricResponses('5xx'), {
      threshold: 5,
      description:
        'The webhook endpoint answered 5xx (storage or queue failure); OpenAI is retrying.',
    });

    new CfnOutput(this, 'TableName', { value: this.store.table.tableName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn });
  }
}
