import { Annotations, CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { CATEGORIES } from '#core/webhooks/categories';
import { type OpenAiWebhooksConfig, type ResolvedConfig, resolveConfig } from './config';
import { Alarms } from './constructs/alarms';
import { CallControlApi } from './constructs/call-control-api';
import { callToolBuilder } from './constructs/call-tool-function';
import { CategoryFanout } from './constructs/category-fanout';
import { EventStore } from './constructs/event-store';
import type { LoggingProps } from './constructs/logging';
import { OperationsDashboard } from './constructs/operations-dashboard';
import { SidebandService } from './constructs/sideband-service';
import {
  WebhookEndpointRegistration,
  WebhookSigningSecret,
} from './constructs/webhook-endpoint-registration';
import { WebhookIngress } from './constructs/webhook-ingress';
import { WebhookSecretRotation } from './constructs/webhook-secret-rotation';
import { WebRtcSessionEndpoint } from './constructs/webrtc-session-endpoint';

export interface OpenAiWebhooksStackProps extends StackProps, OpenAiWebhooksConfig {}

/**
 * Composes the constructs; it creates no resource of its own beyond imports and outputs, and
 * wires them only through what each one exposes (bind, grant and metric methods, accessors).
 */
export class OpenAiWebhooksStack extends Stack {
  readonly config: ResolvedConfig;
  readonly store: EventStore;
  readonly fanout: CategoryFanout;
  readonly ingress: WebhookIngress;
  readonly alarms: Alarms;
  readonly dashboard: OperationsDashboard;
  readonly sideband?: SidebandService;
  readonly webrtc?: WebRtcSessionEndpoint;
  readonly callControl?: CallControlApi;
  /** The endpoint registered at OpenAI on deploy (`webhookEndpoint.register`). */
  readonly webhookEndpoint?: WebhookEndpointRegistration;
  readonly secretRotation?: WebhookSecretRotation;

  constructor(scope: Construct, id: string, props: OpenAiWebhooksStackProps = {}) {
    super(scope, id, props);
    // Tools written in this app (CallTool.fromEntry) get their Lambda functions here.
    const config = resolveConfig(props, callToolBuilder(this));
    this.config = config;
    const logging: LoggingProps = {
      logRetention: config.logRetention,
      // Logs follow the table: kept unless the user chose to destroy data.
      logRemovalPolicy:
        config.removalPolicy === RemovalPolicy.DESTROY
          ? RemovalPolicy.DESTROY
          : RemovalPolicy.RETAIN,
      logLevel: config.logLevel,
      tracing: config.tracing,
    };

    const endpoint = config.webhookEndpoint;
    // Registering its own endpoint, the stack makes the secret too, unless told to adopt one.
    const webhookSecret =
      endpoint && !endpoint.adoptExistingSecret
        ? new WebhookSigningSecret(this, 'WebhookSigningSecret', {
            secretName: config.webhookSecretName,
            removalPolicy: config.removalPolicy,
            rotated: endpoint.rotationEvery !== undefined,
          }).secret
        : Secret.fromSecretNameV2(this, 'WebhookSecret', config.webhookSecretName);
    const apiKeySecret =
      config.openAiApiKeySecretName === null
        ? undefined
        : Secret.fromSecretNameV2(this, 'OpenAiApiKey', config.openAiApiKeySecretName);

    this.store = new EventStore(this, 'EventStore', {
      removalPolicy: config.removalPolicy,
      eventRetention: config.eventRetention,
    });
    this.fanout = new CategoryFanout(this, 'Fanout', {
      store: this.store,
      categories: config.categories,
      eventRetention: config.eventRetention,
      dlqRetention: config.dlqRetention,
      openAiBaseUrl: config.openAiBaseUrl,
      ...(apiKeySecret ? { openAiApiKey: apiKeySecret } : {}),
      logging,
      // The realtime consumer answers phone calls: a short timeout and redelivery, no batching window.
      incomingCalls: config.calls !== undefined,
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
      logging,
    });

    const calls = config.calls;
    if (calls && apiKeySecret) {
      this.sideband = new SidebandService(this, 'Sideband', {
        store: this.store,
        apiKeySecret,
        callsConfig: calls.config,
        toolFunctions: calls.toolFunctions,
        openAiBaseUrl: config.openAiBaseUrl,
        minTasks: calls.minTasks,
        maxTasks: calls.maxTasks,
        cpu: calls.cpu,
        memoryMiB: calls.memoryMiB,
        cpuTargetPercent: calls.cpuTargetPercent,
        ...(calls.vpc ? { vpc: calls.vpc } : {}),
        ...(calls.vpcSubnets ? { vpcSubnets: calls.vpcSubnets } : {}),
        ...(calls.taskProtection ? { taskProtection: calls.taskProtection } : {}),
        dlqRetention: config.dlqRetention,
        logging,
      });
      // The realtime consumer is the incoming-call handler.
      this.sideband.bindIncomingCallHandler(this.fanout.consumerOf('realtime'));
      // Browser voice sessions, served by the same fleet (no `webrtc` prop: no endpoint).
      if (config.webrtc) {
        this.webrtc = new WebRtcSessionEndpoint(this, 'WebRtc', {
          ...config.webrtc,
          store: this.store,
          sideband: this.sideband,
          callsConfig: calls.config,
          apiKeySecret,
          openAiBaseUrl: config.openAiBaseUrl,
          logging,
        });
        new CfnOutput(this, 'WebRtcSessionUrl', {
          value: this.webrtc.sessionUrl,
          description: 'Browsers POST their SDP offer here (application/sdp); see README "WebRTC".',
        });
      }
      // Live call control (issue 16); `owh calls say|…` reads the CallControlUrl output.
      if (config.callControl) {
        this.callControl = new CallControlApi(this, 'CallControl', {
          ...config.callControl,
          store: this.store,
          sideband: this.sideband,
          callsConfig: calls.config,
          logging,
        });
        new CfnOutput(this, 'CallControlUrl', {
          value: this.callControl.url,
          description:
            'POST /calls/{call_id}/commands here (IAM by default); see README "Call control".',
        });
      }
    }

    if (endpoint && apiKeySecret) {
      this.webhookEndpoint = new WebhookEndpointRegistration(this, 'WebhookEndpoint', {
        webhookUrl: this.ingress.webhookUrl,
        webhookSecret,
        apiKeySecret,
        eventTypes: endpoint.eventTypes,
        callsEnabled: config.calls !== undefined,
        ...(endpoint.name ? { name: endpoint.name } : {}),
        retainOnDelete: endpoint.retainOnDelete,
        openAiBaseUrl: config.openAiBaseUrl,
        logging,
      });
      if (endpoint.rotationEvery)
        this.secretRotation = new WebhookSecretRotation(this, 'SecretRotation', {
          webhookSecret,
          apiKeySecret,
          endpointId: this.webhookEndpoint.endpointId,
          every: endpoint.rotationEvery,
          openAiBaseUrl: config.openAiBaseUrl,
          logging,
        });
    }

    this.alarms = new Alarms(this, 'Alarms', {
      ingress: this.ingress,
      fanout: this.fanout,
      store: this.store,
      ...(this.sideband ? { sideband: this.sideband } : {}),
      thresholds: config.alarms,
      ...(config.alarmEmail ? { alarmEmail: config.alarmEmail } : {}),
    });
    if (!config.alarmEmail)
      Annotations.of(this).addWarningV2(
        'openai-webhooks:no-alarm-subscriber',
        'No alarmEmail is set: the alarms notify an SNS topic nobody is subscribed to, so a DLQ, a throttled ingress or failing calls go unnoticed. Set alarmEmail, or subscribe to the AlarmTopicArn output yourself.',
      );
    this.secretRotation?.alarm.addAlarmAction(new SnsAction(this.alarms.topic));
    this.dashboard = new OperationsDashboard(this, 'Operations', {
      ingress: this.ingress,
      fanout: this.fanout,
      store: this.store,
      ...(this.sideband ? { sideband: this.sideband } : {}),
      ...(this.callControl ? { callControl: this.callControl } : {}),
      alarms: this.alarms.alarms,
    });
    // Browser sessions beside phone calls: calls started per channel, refusals, latency.
    const sideband = this.sideband;
    if (this.webrtc && sideband)
      this.dashboard.dashboard.addWidgets(
        ...this.webrtc.dashboardWidgets(sideband.metricCalls('CallsAccepted'), (channel) =>
          sideband.metricCalls('CallsEndedByChannel', {
            dimension: { name: 'Channel', value: channel },
          }),
        ),
      );

    // The signing secret's rotation: when it last ran, and its outcomes.
    if (this.secretRotation)
      this.dashboard.dashboard.addWidgets(...this.secretRotation.dashboardWidgets());

    new CfnOutput(this, 'WebhookUrl', {
      value: this.ingress.webhookUrl,
      description: 'Register this URL as the webhook endpoint in the OpenAI project settings.',
    });
    if (this.webhookEndpoint)
      new CfnOutput(this, 'WebhookEndpointId', {
        value: this.webhookEndpoint.endpointId,
        description: 'The webhook endpoint registered at OpenAI (owh webhooks list).',
      });
    new CfnOutput(this, 'TableName', { value: this.store.tableName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topicArn });
    new CfnOutput(this, 'DashboardName', { value: this.dashboard.dashboardName });
    // The operator CLI (owh --stack NAME) reads this: the table and every queue it may touch.
    new CfnOutput(this, 'OperatorConfig', {
      description: 'Read by the operator CLI (owh); JSON.',
      value: this.toJsonString(
        operatorConfig(this.store, this.fanout, this.sideband, this.dashboard),
      ),
    });
  }
}

/** What the operator CLI needs to find; the shape of `cli/target.ts`'s OperatorConfig. */
function operatorConfig(
  store: EventStore,
  fanout: CategoryFanout,
  sideband: SidebandService | undefined,
  dashboard: OperationsDashboard,
): Record<string, unknown> {
  const queues: Record<string, { queueUrl: string; dlqUrl: string }> = {};
  for (const category of CATEGORIES) {
    queues[category] = {
      queueUrl: fanout.queueOf(category).queueUrl,
      dlqUrl: fanout.deadLetterQueueOf(category).queueUrl,
    };
  }
  if (sideband)
    queues.signals = {
      queueUrl: sideband.signalQueue.queueUrl,
      dlqUrl: sideband.signalDeadLetterQueue.queueUrl,
    };
  return {
    tableName: store.tableName,
    queues,
    dashboardName: dashboard.dashboardName,
  };
}
