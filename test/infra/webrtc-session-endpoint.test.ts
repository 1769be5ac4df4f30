import { Duration } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import type { ApiAuth } from '../../lib/constructs/api-auth';
import { EventStore } from '../../lib/constructs/event-store';
import { SidebandService } from '../../lib/constructs/sideband-service';
import { PropsError } from '../../lib/constructs/validation';
import {
  WebRtcSessionEndpoint,
  type WebRtcSessionOptions,
} from '../../lib/constructs/webrtc-session-endpoint';
import { nagFindings } from './app';
import { bareStack, callsFixture } from './constructs';

const JWT: ApiAuth = {
  jwt: {
    issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
    audience: ['app-client'],
  },
};

function endpointIn(options: Partial<WebRtcSessionOptions> & { auth: ApiAuth }) {
  const { app, stack } = bareStack();
  const store = new EventStore(stack, 'Store');
  const apiKeySecret = Secret.fromSecretNameV2(stack, 'ApiKey', 'api-key');
  const { config, tool } = callsFixture(stack);
  const sideband = new SidebandService(stack, 'Sideband', {
    store,
    apiKeySecret,
    callsConfig: config,
    toolFunctions: [tool],
  });
  const endpoint = new WebRtcSessionEndpoint(stack, 'WebRtc', {
    store,
    sideband,
    callsConfig: config,
    apiKeySecret,
    ...options,
  });
  return { app, stack, endpoint, template: () => Template.fromStack(stack) };
}

/** The findings of everything but the test's own tool function fixture. */
function ownFindings(app: Parameters<typeof nagFindings>[0]): string[] {
  return nagFindings(app).filter((f) => !f.includes('/LookupOrder/'));
}

function routes(template: Template) {
  return Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map(
    (r) => r.Properties as { RouteKey: string; AuthorizationType: string; AuthorizerId?: unknown },
  );
}

describe('WebRtcSessionEndpoint', () => {
  it('JWT: both routes exist, the session route behind a JWT authorizer, attach behind IAM', () => {
    const { app, template: t } = endpointIn({ auth: JWT });
    const template = t();
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: {
        Issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
        Audience: ['app-client'],
      },
    });
    const byKey = Object.fromEntries(routes(template).map((r) => [r.RouteKey, r]));
    expect(byKey['POST /session']?.AuthorizationType).toBe('JWT');
    expect(byKey['POST /calls/{call_id}/attach']?.AuthorizationType).toBe('AWS_IAM');
    expect(ownFindings(app)).toEqual([]);
  });

  it('IAM: SigV4 on both routes, and grantAttach / grantOpenSession allow execute-api:Invoke on their route', () => {
    const { app, stack, endpoint, template: t } = endpointIn({ auth: 'iam' });
    const caller = new Role(stack, 'Caller', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    });
    expect(endpoint.grantAttach(caller)).toBeDefined();
    expect(endpoint.grantOpenSession(caller)).toBeDefined();
    const template = t();
    expect(routes(template).map((r) => r.AuthorizationType)).toEqual(['AWS_IAM', 'AWS_IAM']);
    const policy = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policy).toContain('execute-api:Invoke');
    expect(policy).toContain('/POST/calls/*/attach');
    expect(policy).toContain('/POST/session');
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
    expect(ownFindings(app)).toEqual([]);
  });

  it('open: no auth on the session route, tight throttling, a per-IP limit and a loud warning', () => {
    const { app, stack, endpoint, template: t } = endpointIn({ auth: 'open' });
    const template = t();
    const byKey = Object.fromEntries(routes(template).map((r) => [r.RouteKey, r]));
    expect(byKey['POST /session']?.AuthorizationType).toBe('NONE');
    expect(byKey['POST /calls/{call_id}/attach']?.AuthorizationType).toBe('AWS_IAM');
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 },
      RouteSettings: {
        'POST /session': { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 },
      },
      AccessLogSettings: { DestinationArn: Match.anyValue() },
    });
    const env = JSON.stringify(template.findResources('AWS::Lambda::Function'));
    expect(env).toContain('perIp');
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('OPEN'));
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    // Nothing to grant on an open route.
    expect(
      endpoint.grantOpenSession(
        new Role(stack, 'R', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') }),
      ),
    ).toBeUndefined();
    // The "no authorization" finding is acknowledged with a reason, not silenced.
    expect(ownFindings(app)).toEqual([]);
  });

  it('hands the function the same calls environment and grants as the incoming-call handler', () => {
    const { template: t } = endpointIn({
      auth: 'iam',
      maxConcurrentSessions: 7,
      maxSessionLength: Duration.minutes(10),
    });
    const template = t();
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          WEBRTC_CONFIG: Match.serializedJson(
            Match.objectLike({
              auth: 'iam',
              attachAuth: 'iam',
              profiles: ['default'],
              defaultProfile: 'default',
              maxConcurrentSessions: 7,
            }),
          ),
          CALLS_CONFIG: Match.anyValue(),
          SIGNAL_QUEUE_URL: Match.anyValue(),
          OPENAI_API_KEY_SECRET_ID: 'api-key',
          TABLE_NAME: Match.anyValue(),
        }),
      },
    });
    // The worker learns the session cap.
    expect(JSON.stringify(template.findResources('AWS::ECS::TaskDefinition'))).toContain(
      'WEBRTC_MAX_SESSION_MS',
    );
    // Room for OpenAI's 10 s, a stalled signal's SDK attempts and the /hangup after them,
    // under API Gateway's 30 s integration cap.
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ WEBRTC_CONFIG: Match.anyValue() }) },
      Timeout: 29,
    });
  });

  it('refuses props that do not hold together, naming each', () => {
    expect(() => endpointIn({ auth: 'iam', profiles: ['nope'] })).toThrow(PropsError);
    expect(() => endpointIn({ auth: 'iam', profiles: ['toString'] })).toThrow(
      /not a key of calls.sessions/,
    );
    expect(() => endpointIn({ auth: { jwt: { issuer: 'http://x', audience: [] } } })).toThrow(
      /jwt.issuer[\s\S]*jwt.audience/,
    );
    expect(() => endpointIn({ auth: 'iam', perIpLimit: 3 })).toThrow(/perIpLimit/);
    expect(() => endpointIn({ auth: 'iam', maxSessionLength: Duration.minutes(90) })).toThrow(
      /maxSessionLength/,
    );
    expect(() => endpointIn({ auth: 'sometimes' as never })).toThrow(/auth/);
  });
});
