import * as path from 'node:path';
import { Annotations, Duration, Token } from 'aws-cdk-lib';
import {
  type CfnStage,
  CorsHttpMethod,
  HttpApi,
  HttpMethod,
  type HttpRoute,
  type HttpStage,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { GraphWidget, type IWidget, type Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { CallsConfig } from '#core/calls/calls-config';
import { ENV } from '#core/env';
import type { MetricName } from '#core/observability/metrics';
import { PROFILE_HEADER } from '#core/webrtc/session-request';
import {
  validateWebRtcConfig,
  WEBRTC_DEFAULTS,
  type WebRtcConfig,
} from '#core/webrtc/webrtc-config';
import {
  type ApiAuth,
  addAuthedRoute,
  addLoggedDefaultStage,
  apiAuthKind,
  checkApiAuth,
  grantRouteInvoke,
} from './api-auth';
import type { EventStore } from './event-store';
import { type LoggingProps, resolveLogging } from './logging';
import { NodeFunction, PROJECT_ROOT } from './node-function';
import { type ProjectMetricOptions, projectMetric } from './project-metrics';
import type { SidebandService } from './sideband-service';
import { PropsCheck } from './validation';

/** API Gateway route throttling: steady requests per second, and the burst above it. */
export interface RouteThrottle {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

/** The `webrtc` stack prop and the construct's own options. */
export interface WebRtcSessionOptions {
  /**
   * Who may open a browser session (`POST /session`): a JWT authorizer
   * (`{ jwt: { issuer, audience } }`, any OIDC provider, Cognito included), `'iam'` (SigV4, server
   * to server) or `'open'` (demos: throttled, limited per IP, with a synth warning). Required.
   */
  readonly auth: ApiAuth;
  /** Who may call `POST /calls/{call_id}/attach`. @default 'iam' */
  readonly attachAuth?: ApiAuth;
  /**
   * The profiles a browser may pick (`?profile=` or `X-Session-Profile`): keys of
   * `calls.sessions`, whose session configs (model, voice, instructions, tools, greeting) the
   * call gets. @default ['default']
   */
  readonly profiles?: readonly string[];
  /** The profile of a request that names none. @default 'default' when it is a profile, else none */
  readonly defaultProfile?: string;
  /**
   * Browser sessions at once: a session is admitted only while fewer calls (SIP and browser,
   * sharing the fleet's account-wide counter) hold a slot; more get 429. @default 20
   */
  readonly maxConcurrentSessions?: number;
  /**
   * The longest a browser session lasts: the worker asks the model to wrap up before it, then
   * hangs up (2 to 60 minutes). @default the calls' `wrapUpAfter` plus `wrapUpGrace`
   */
  readonly maxSessionLength?: Duration;
  /** The largest SDP offer accepted, in bytes (1024 to 262144). @default 65536 */
  readonly maxSdpBytes?: number;
  /** Route throttling of both routes. @default 5/s burst 10 when open, else 50/s burst 100 */
  readonly throttle?: RouteThrottle;
  /** `open` only: session requests one source IP may make per `perIpWindow`, counted in the table. @default 10 */
  readonly perIpLimit?: number;
  /** `open` only: the per-IP window (1 second to 1 hour). @default Duration.minutes(1) */
  readonly perIpWindow?: Duration;
  /**
   * Origins a browser page may call the endpoint from (CORS). `Location` and `X-Call-Id` are
   * exposed to them. @default none: same-origin callers and non-browser clients only
   */
  readonly allowedOrigins?: readonly string[];
}

export interface WebRtcSessionEndpointProps extends WebRtcSessionOptions {
  readonly store: EventStore;
  /** The sideband fleet: its signal queue and scaling. */
  readonly sideband: SidebandService;
  /** The fleet's calls config (the one given to `sideband`): its sessions are the profiles. */
  readonly callsConfig: CallsConfig;
  /** The OpenAI API key (read at run time; only its name is in the environment). */
  readonly apiKeySecret: ISecret;
  /** @default 'https://api.openai.com/v1' */
  readonly openAiBaseUrl?: string;
  /** Log group and level of the session function. @default the LoggingProps defaults */
  readonly logging?: LoggingProps;
}

/** The endpoint's own metrics. */
export type WebRtcMetricName = Extract<
  MetricName,
  'WebRtcSessionsOpened' | 'WebRtcSessionsRefused' | 'WebRtcAnswerLatency' | 'WebRtcAttaches'
>;

/** The refusal reasons drawn on the dashboard (core/webrtc/session-endpoint.ts gives them). */
const WEBRTC_REFUSALS = [
  'unauthenticated',
  'invalid_sdp',
  'unsupported_media_type',
  'sdp_too_large',
  'unknown_profile',
  'too_many_sessions',
  'rate_limited',
  'openai_error',
  'openai_unreachable',
  'invalid_answer',
] as const;

const DEFAULT_THROTTLE = {
  open: { rateLimit: 5, burstLimit: 10 },
  authenticated: { rateLimit: 50, burstLimit: 100 },
} as const;

/**
 * The server half of browser voice sessions (OpenAI "Realtime API with WebRTC" and "Webhooks and
 * server-side controls" guides): an API Gateway HTTP API whose `POST /session` takes a browser's
 * SDP offer, opens the call at OpenAI with the project key and a profile's session, hands the
 * call to the sideband fleet and returns the SDP answer; and `POST /calls/{call_id}/attach` for
 * teams that do their own SDP exchange. The logic is core/webrtc/; the Lambda is
 * lambdas/webrtc-session/handler.ts.
 */
export class WebRtcSessionEndpoint extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly fn: LambdaFunction;
  readonly sessionRoute: HttpRoute;
  readonly attachRoute: HttpRoute;
  readonly auth: ApiAuth;
  readonly attachAuth: ApiAuth;

  constructor(scope: Construct, id: string, props: WebRtcSessionEndpointProps) {
    super(scope, id);
    const check = new PropsCheck('WebRtcSessionEndpoint', id);
    const logging = resolveLogging(props.logging, check);
    const sessions = props.callsConfig.policy.sessions;
    const profiles = props.profiles ?? ['default'];
    const open = props.auth === 'open';
    const attachAuth = props.attachAuth ?? 'iam';
    const config: WebRtcConfig = {
      profiles,
      ...((props.defaultProfile ?? (profiles.includes('default') ? 'default' : undefined)) !==
      undefined
        ? { defaultProfile: props.defaultProfile ?? 'default' }
        : {}),
      maxConcurrentSessions: props.maxConcurrentSessions ?? WEBRTC_DEFAULTS.maxConcurrentSessions,
      maxSdpBytes: props.maxSdpBytes ?? WEBRTC_DEFAULTS.maxSdpBytes,
      auth: apiAuthKind(props.auth),
      attachAuth: apiAuthKind(attachAuth),
      ...(open
        ? {
            perIp: {
              limit: props.perIpLimit ?? WEBRTC_DEFAULTS.perIpLimit,
              windowSeconds: (
                props.perIpWindow ?? Duration.seconds(WEBRTC_DEFAULTS.perIpWindowSeconds)
              ).toSeconds(),
            },
          }
        : {}),
    };
    const throttle =
      props.throttle ?? (open ? DEFAULT_THROTTLE.open : DEFAULT_THROTTLE.authenticated);
    checkApiAuth(check, 'auth', props.auth);
    checkApiAuth(check, 'attachAuth', props.attachAuth);
    check
      .that(
        props.auth !== undefined,
        'auth',
        "is required: { jwt: { issuer, audience } }, 'iam' or 'open'.",
      )
      .problemsOf('webrtc', validateWebRtcConfig(config, sessions, 'webrtc'))
      .duration('maxSessionLength', props.maxSessionLength, {
        min: Duration.minutes(2),
        max: Duration.minutes(60),
        why: 'OpenAI ends a Realtime session at 60 minutes',
      })
      .integer('throttle.rateLimit', throttle.rateLimit, 1, 10_000)
      .integer('throttle.burstLimit', throttle.burstLimit, 1, 5000)
      .that(
        open || (props.perIpLimit === undefined && props.perIpWindow === undefined),
        'perIpLimit',
        "applies only to auth 'open' (an authenticated caller is limited by its identity).",
      )
      .that(
        (props.allowedOrigins ?? []).every(
          (o) => Token.isUnresolved(o) || o === '*' || /^https?:\/\/[^\s/]+$/.test(o),
        ),
        'allowedOrigins',
        'must be origins like https://app.example.com (no path), or "*".',
      )
      .assert();
    this.auth = props.auth;
    this.attachAuth = attachAuth;

    const fn = new NodeFunction(this, 'Handler', {
      entry: path.join(PROJECT_ROOT, 'lambdas/webrtc-session/handler.ts'),
      description:
        'WebRTC session endpoint: forwards SDP offers to OpenAI and hands calls to the sideband fleet',
      memorySize: 512,
      // The OpenAI create waits up to 10 s (adapters/openai-realtime-calls.ts), a stalled signal
      // send up to ~7 s (the SDK's 3 attempts of 2 s; no second round: core/webrtc), then the
      // /hangup of a call that cannot be served up to 3 s. API Gateway's cap is 30 s.
      timeout: Duration.seconds(29),
      logging,
      environment: {
        [ENV.webrtcConfig]: JSON.stringify(config),
        [ENV.openAiBaseUrl]: props.openAiBaseUrl ?? 'https://api.openai.com/v1',
        [ENV.openAiKeySecretId]: props.apiKeySecret.secretName,
      },
    });
    this.fn = fn.fn;
    props.store.bindReadWrite(this.fn);
    props.store.acknowledgeIndexGrant(fn);
    // The same environment and grants as the SIP incoming-call handler: the calls config, the
    // signal queue, the key, and scaling a fleet at zero.
    props.sideband.bindIncomingCallHandler(this.fn);
    props.apiKeySecret.grantRead(this.fn);
    if (props.maxSessionLength)
      props.sideband.taskDefinition.defaultContainer?.addEnvironment(
        ENV.webrtcMaxSessionMs,
        String(props.maxSessionLength.toMilliseconds()),
      );

    const origins = props.allowedOrigins ?? [];
    this.api = new HttpApi(this, 'Api', {
      description: 'Browser voice sessions (WebRTC) for the OpenAI sideband fleet',
      createDefaultStage: false,
      ...(origins.length > 0
        ? {
            corsPreflight: {
              allowOrigins: [...origins],
              allowMethods: [CorsHttpMethod.POST],
              allowHeaders: ['content-type', 'authorization', PROFILE_HEADER],
              exposeHeaders: ['location', 'x-call-id'],
              maxAge: Duration.hours(1),
            },
          }
        : {}),
    });
    this.stage = addLoggedDefaultStage(this, this.api, throttle, logging);
    const integration = new HttpLambdaIntegration('Integration', this.fn);
    this.sessionRoute = addAuthedRoute(this, this.api, {
      path: '/session',
      method: HttpMethod.POST,
      integration,
      auth: props.auth,
      what: 'the WebRTC session endpoint',
    });
    this.attachRoute = addAuthedRoute(this, this.api, {
      path: '/calls/{call_id}/attach',
      method: HttpMethod.POST,
      integration,
      auth: attachAuth,
      what: 'the attach API',
    });
    // Per-route throttling too (the stage's is the default for routes without their own). An L1
    // property of JSON: CloudFormation's casing (AWS::ApiGatewayV2::Stage RouteSettings).
    const cfnStage = this.stage.node.defaultChild as CfnStage;
    cfnStage.routeSettings = {
      'POST /session': {
        ThrottlingRateLimit: throttle.rateLimit,
        ThrottlingBurstLimit: throttle.burstLimit,
      },
      'POST /calls/{call_id}/attach': {
        ThrottlingRateLimit: throttle.rateLimit,
        ThrottlingBurstLimit: throttle.burstLimit,
      },
    };
    // The route settings name the routes: the stage must wait for them.
    this.stage.node.addDependency(this.sessionRoute, this.attachRoute);
    if (open)
      Annotations.of(this).addWarningV2(
        'openai-webhooks:webrtc-open',
        `The WebRTC session endpoint is OPEN: anyone who finds its URL can start voice sessions billed to your OpenAI project (throttled to ${throttle.rateLimit}/s, ${config.perIp?.limit} per IP per ${config.perIp?.windowSeconds} s, ${config.maxConcurrentSessions} at once). Use it for demos only.`,
      );
    if (attachAuth === 'open')
      Annotations.of(this).addWarningV2(
        'openai-webhooks:webrtc-attach-open',
        'The attach API is OPEN: anyone can point the sideband fleet (your tools, your instructions) at a call id. Use attachAuth: "iam" (the default).',
      );
  }

  /** The URL the browser POSTs its offer to. */
  get sessionUrl(): string {
    return `${this.api.apiEndpoint}/session`;
  }

  /** Lets `grantee` open sessions with SigV4 (auth `'iam'`; undefined otherwise: nothing to grant). */
  grantOpenSession(grantee: IGrantable): Grant | undefined {
    return grantRouteInvoke(this.api, HttpMethod.POST, '/session', this.auth, grantee);
  }

  /** Lets `grantee` call the attach API with SigV4 (attachAuth `'iam'`, the default). */
  grantAttach(grantee: IGrantable): Grant | undefined {
    return grantRouteInvoke(
      this.api,
      HttpMethod.POST,
      '/calls/{call_id}/attach',
      this.attachAuth,
      grantee,
    );
  }

  /** One of the endpoint's EMF metrics: sessions opened, refused by Reason, answer latency, attaches. */
  metricSessions(name: WebRtcMetricName, options?: ProjectMetricOptions): Metric {
    return projectMetric(this, name, options);
  }

  /** API Gateway 4xx answers (auth refused, throttled, bad requests). */
  metricClientErrors(): Metric {
    return this.api.metricClientError({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  /** API Gateway 5xx answers. */
  metricServerErrors(): Metric {
    return this.api.metricServerError({ period: Duration.minutes(1), statistic: 'Sum' });
  }

  metricLatency(): Metric {
    return this.api.metricLatency({ statistic: 'p99' });
  }

  /**
   * Dashboard widgets for browser sessions: calls started per channel (SIP accepts beside browser
   * sessions), refusals by reason, and the endpoint's latency. The stack adds them to its
   * operations dashboard.
   */
  dashboardWidgets(sipAccepted: Metric, endedByChannel?: (channel: string) => Metric): IWidget[] {
    const minute = { period: Duration.minutes(1), statistic: 'Sum' } as const;
    return [
      new GraphWidget({
        title: 'Calls by channel: started and ended',
        left: [
          sipAccepted.with({ label: 'SIP (accepted)', ...minute }),
          this.metricSessions('WebRtcSessionsOpened', {
            label: 'WebRTC (sessions opened)',
            ...minute,
          }),
          this.metricSessions('WebRtcAttaches', { label: 'WebRTC (attach API)', ...minute }),
          ...(endedByChannel
            ? ['sip', 'webrtc'].map((channel) =>
                endedByChannel(channel).with({ label: `${channel} (ended)`, ...minute }),
              )
            : []),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: 'Browser sessions refused, by reason',
        left: [
          ...WEBRTC_REFUSALS.map((reason) =>
            this.metricSessions('WebRtcSessionsRefused', {
              dimension: { name: 'Reason', value: reason },
              label: reason,
              ...minute,
            }),
          ),
          this.metricClientErrors().with({ label: 'API Gateway 4xx (auth, throttling)' }),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: 'Browser session answer latency (ms)',
        left: [
          this.metricSessions('WebRtcAnswerLatency', { statistic: 'p50', label: 'p50' }),
          this.metricSessions('WebRtcAnswerLatency', { statistic: 'p99', label: 'p99' }),
        ],
        width: 8,
      }),
    ];
  }
}
