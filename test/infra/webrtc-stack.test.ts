import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import type { WebRtcSessionOptions } from '../../lib/constructs/webrtc-session-endpoint';
import type {
  ApiAuth,
  OpenAiWebhooksStackProps,
  WebRtcSessionOptions as PublicWebRtcSessionOptions,
  RouteThrottle,
  TaskProtectionOptions,
  WebhookEndpointProps,
  WebhookRotationProps,
  WebRtcSessionEndpointProps,
} from '../../lib/index';
import { OpenAiWebhooksStack } from '../../lib/openai-webhooks-stack';
import { nagFindings } from './app';

const SESSION = {
  model: 'gpt-realtime-2.1',
  instructions: 'Be brief.',
  voice: 'marin' as const,
  greeting: 'Hello!',
};

function webrtcStack(webrtc: WebRtcSessionOptions | undefined) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new OpenAiWebhooksStack(app, 'Voice', {
    calls: { sessions: { default: SESSION, support: { ...SESSION, voice: 'cedar' } } },
    ...(webrtc ? { webrtc } : {}),
  });
  return { app, stack, template: Template.fromStack(stack) };
}

describe('the stack with a WebRTC session endpoint', () => {
  const modes: [string, WebRtcSessionOptions][] = [
    ['jwt', { auth: { jwt: { issuer: 'https://issuer.example.com', audience: ['voice-app'] } } }],
    ['iam', { auth: 'iam', profiles: ['default', 'support'] }],
    ['open', { auth: 'open', allowedOrigins: ['https://demo.example.com'] }],
  ];
  for (const [name, webrtc] of modes) {
    it(`synthesizes with auth ${name}, cdk-nag clean, with the session URL as an output`, () => {
      const { app, stack, template } = webrtcStack(webrtc);
      template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
      template.hasOutput('WebRtcSessionUrl', Match.anyValue());
      const sessionRoute = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).find(
        (r) => r.Properties.RouteKey === 'POST /session',
      );
      expect(sessionRoute?.Properties.AuthorizationType).toBe(
        name === 'jwt' ? 'JWT' : name === 'iam' ? 'AWS_IAM' : 'NONE',
      );
      expect(nagFindings(app)).toEqual([]);
      const warnings = Annotations.fromStack(stack).findWarning(
        '*',
        Match.stringLikeRegexp('is OPEN'),
      );
      expect(warnings.length > 0).toBe(name === 'open');
    });
  }

  it('the operations dashboard splits calls started and ended by channel, with browser refusals and latency', () => {
    const { template } = webrtcStack({ auth: 'iam' });
    const body = JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'));
    for (const text of [
      'Calls by channel: started and ended',
      'CallsEndedByChannel',
      'webrtc (ended)',
      'WebRtcSessionsOpened',
      'CallsAccepted',
      'WebRtcSessionsRefused',
      'WebRtcAnswerLatency',
    ])
      expect(body).toContain(text);
  });

  it('no webrtc prop: no endpoint', () => {
    webrtcStack(undefined).template.resourceCountIs('AWS::ApiGatewayV2::Api', 0);
  });

  it('refuses webrtc without calls, and a profile that is not a session', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(() => new OpenAiWebhooksStack(app, 'NoCalls', { webrtc: { auth: 'iam' } })).toThrow(
      /webrtc needs calls/,
    );
    expect(() => webrtcStack({ auth: 'iam', profiles: ['+18005550100'] })).toThrow(
      /not a key of calls.sessions/,
    );
  });
});

describe('the public entry (lib/index.ts, the package name)', () => {
  // Type-only: `tsc --noEmit` fails if lib/index.ts stops exporting any of these; the synth
  // below shows they are the types the stack props take.
  it('exports the webrtc, webhookEndpoint and taskProtection prop types the stack takes', () => {
    const auth: ApiAuth = 'iam';
    const throttle: RouteThrottle = { rateLimit: 5, burstLimit: 10 };
    const webrtc: PublicWebRtcSessionOptions = { auth, attachAuth: 'iam', throttle };
    const taskProtection: TaskProtectionOptions = { maxProtectedMinutes: 90, restMinutes: 10 };
    const rotation: WebhookRotationProps = {};
    const webhookEndpoint: WebhookEndpointProps = { register: false, rotation };
    const props: OpenAiWebhooksStackProps = {
      calls: { sessions: { default: SESSION }, service: { taskProtection } },
      webrtc,
      webhookEndpoint,
    };
    const constructProps: Pick<WebRtcSessionEndpointProps, 'auth' | 'maxConcurrentSessions'> = {
      auth: 'open',
      maxConcurrentSessions: 3,
    };
    expect(constructProps.maxConcurrentSessions).toBe(3);
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const template = Template.fromStack(new OpenAiWebhooksStack(app, 'Public', props));
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
  });
});
