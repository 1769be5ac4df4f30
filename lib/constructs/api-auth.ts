import { Annotations, type CfnElement, Stack, Token, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  type HttpApi,
  type HttpMethod,
  HttpNoneAuthorizer,
  HttpRoute,
  type HttpRouteIntegration,
  HttpRouteKey,
  HttpStage,
  type IHttpRouteAuthorizer,
  LogGroupLogDestination,
  type ThrottleSettings,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';
import type { ResolvedLogging } from './logging';
import type { PropsCheck } from './validation';

/**
 * Who may call a route of an API Gateway HTTP API. One choice per endpoint, always explicit:
 * - `{ jwt: { issuer, audience } }`: a JWT authorizer. Any OIDC provider works (Cognito user pools
 *   too: issuer `https://cognito-idp.<region>.amazonaws.com/<pool id>`, audience the app client id).
 *   API Gateway checks the signature against the issuer's JWKS, `iss`, `aud`/`client_id`, `exp` and
 *   `nbf` before the Lambda runs (API Gateway developer guide, "Controlling access to HTTP APIs with
 *   JWT authorizers").
 * - `'iam'`: SigV4-signed requests from principals granted `execute-api:Invoke` on the route
 *   (server to server). Grant with the construct's `grant*` methods.
 * - `'open'`: no authentication at all. For demos only: the route gets throttled, callers get
 *   limited per source IP, and synth prints a warning.
 */
export type ApiAuth =
  | {
      readonly jwt: {
        /** The token issuer, an https:// URL (its `/.well-known/openid-configuration` is read). */
        readonly issuer: string;
        /** Accepted audiences (`aud`, or `client_id` for Cognito access tokens): at least one. */
        readonly audience: readonly string[];
        /** Scopes the token must carry, any of them. @default none required */
        readonly scopes?: readonly string[];
      };
    }
  | 'iam'
  | 'open';

/** The name of an auth choice, for logs, outputs and messages. */
export function apiAuthKind(auth: ApiAuth): 'jwt' | 'iam' | 'open' {
  return typeof auth === 'string' ? auth : 'jwt';
}

/** Records each problem with an auth choice on `check`, naming `prop`. `undefined` passes (no endpoint). */
export function checkApiAuth(
  check: PropsCheck,
  prop: string,
  auth: ApiAuth | undefined,
): PropsCheck {
  if (auth === undefined) return check;
  if (typeof auth === 'string') {
    return check.oneOf(prop, auth, ['iam', 'open'] as const);
  }
  const jwt = (auth as { jwt?: unknown }).jwt;
  if (typeof jwt !== 'object' || jwt === null) {
    return check.that(false, prop, `must be { jwt: { issuer, audience } }, 'iam' or 'open'.`);
  }
  const { issuer, audience, scopes } = auth.jwt;
  check.that(
    typeof issuer === 'string' && (Token.isUnresolved(issuer) || /^https:\/\/[^\s/]+/.test(issuer)),
    `${prop}.jwt.issuer`,
    `must be an https:// URL; got ${JSON.stringify(issuer)}.`,
  );
  check.that(
    Array.isArray(audience) &&
      audience.length > 0 &&
      audience.every((a) => typeof a === 'string' && a !== ''),
    `${prop}.jwt.audience`,
    'must list at least one non-empty audience (a token for another app must not pass).',
  );
  check.that(
    scopes === undefined ||
      (Array.isArray(scopes) && scopes.every((s) => typeof s === 'string' && s !== '')),
    `${prop}.jwt.scopes`,
    'must be non-empty strings.',
  );
  return check;
}

/** One authorizer instance per API and choice, so routes of one API share one JWT authorizer. */
const AUTHORIZERS = new WeakMap<HttpApi, Map<string, IHttpRouteAuthorizer>>();

/** The route authorizer for an auth choice on `api`. */
export function authorizerFor(api: HttpApi, auth: ApiAuth): IHttpRouteAuthorizer {
  const key =
    typeof auth === 'string' ? auth : `jwt ${auth.jwt.issuer} ${auth.jwt.audience.join(',')}`;
  let perApi = AUTHORIZERS.get(api);
  if (!perApi) {
    perApi = new Map();
    AUTHORIZERS.set(api, perApi);
  }
  const known = perApi.get(key);
  if (known) return known;
  const made =
    auth === 'iam'
      ? new HttpIamAuthorizer()
      : auth === 'open'
        ? new HttpNoneAuthorizer()
        : new HttpJwtAuthorizer(`JwtAuthorizer${perApi.size}`, auth.jwt.issuer, {
            jwtAudience: [...auth.jwt.audience],
          });
  perApi.set(key, made);
  return made;
}

export interface AuthedRouteOptions {
  /** The route's path, e.g. `/calls/{call_id}/commands`. */
  readonly path: string;
  /** The route's method. */
  readonly method: HttpMethod;
  /** Where the route goes. */
  readonly integration: HttpRouteIntegration;
  /** Who may call it. */
  readonly auth: ApiAuth;
  /** What the route is, for the open-route warning and nag reason, e.g. `the WebRTC session endpoint`. */
  readonly what: string;
}

/**
 * Adds one route to `api` under `auth`, in `scope` (the construct owning the route). For `'open'`
 * it also prints a synth warning and acknowledges cdk-nag's "no authorization" findings with the
 * reason; the caller still owes the throttling and the per-IP limit it promises.
 */
export function addAuthedRoute(
  scope: IConstruct,
  api: HttpApi,
  options: AuthedRouteOptions,
): HttpRoute {
  const { auth } = options;
  const scopes = typeof auth === 'string' ? undefined : auth.jwt.scopes;
  const id = `${options.method}${options.path.replace(/[^A-Za-z0-9]/g, '')}Route`;
  const route = new HttpRoute(scope, id, {
    httpApi: api,
    routeKey: HttpRouteKey.with(options.path, options.method),
    integration: options.integration,
    authorizer: authorizerFor(api, auth),
    ...(scopes ? { authorizationScopes: [...scopes] } : {}),
  });
  if (auth === 'open') {
    Annotations.of(scope).addWarningV2(
      'openai-webhooks:open-endpoint',
      `${options.method} ${options.path} (${options.what}) is OPEN: anyone on the internet can call it. ` +
        'It is throttled and limited per source IP, but use it for demos only; choose ' +
        "{ jwt: { issuer, audience } } or 'iam' for anything real.",
    );
    Validations.of(route).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: `${options.what} was configured 'open' on purpose (a demo); the route is throttled, callers are limited per source IP, and synth warns about it.`,
    });
  }
  return route;
}

/**
 * Lets `grantee` call `route` with SigV4: `execute-api:Invoke` on exactly this route of this API
 * (any stage), a path parameter as `*`. Only meaningful for `'iam'` routes: the other choices
 * authenticate with a token or not at all, so this adds nothing for them and returns undefined.
 * The stage and a path parameter are wildcards cdk-nag reports; they are acknowledged on the
 * grantee with the reason.
 */
export function grantRouteInvoke(
  api: HttpApi,
  method: HttpMethod,
  path: string,
  auth: ApiAuth,
  grantee: IGrantable,
): Grant | undefined {
  if (auth !== 'iam') return undefined;
  const arnPath = path.replace(/\{[^}]+\}/g, '*');
  const grant = Grant.addToPrincipal({
    grantee,
    actions: ['execute-api:Invoke'],
    resourceArns: [api.arnForExecuteApi(method, arnPath, '*')],
  });
  if (Construct.isConstruct(grantee)) {
    const apiId = Stack.of(api).getLogicalId(api.node.defaultChild as CfnElement);
    Validations.of(grantee).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${apiId}>/*/${method}${arnPath}]`,
      reason: `${method} ${path} on this API only, in any stage (it has one, $default, as CDK's own grantInvoke writes it)${arnPath !== path ? '; the path parameter (a call id) is only known at run time' : ''}.`,
    });
  }
  return grant;
}

/**
 * The `$default` stage of an HTTP API: deployed on every change, throttled, with JSON access logs
 * in a log group of its own (`AccessLogs`, kept as the stack's logging props say). Both of the
 * stack's HTTP APIs (WebRTC sessions, call control) are served this way.
 */
export function addLoggedDefaultStage(
  scope: Construct,
  api: HttpApi,
  throttle: ThrottleSettings,
  logging: Pick<ResolvedLogging, 'logRetention' | 'logRemovalPolicy'>,
): HttpStage {
  const accessLogs = new LogGroup(scope, 'AccessLogs', {
    retention: logging.logRetention,
    removalPolicy: logging.logRemovalPolicy,
  });
  return new HttpStage(scope, 'Stage', {
    httpApi: api,
    stageName: '$default',
    autoDeploy: true,
    throttle,
    accessLogSettings: {
      destination: new LogGroupLogDestination(accessLogs),
      format: AccessLogFormat.jsonWithStandardFields(),
    },
  });
}
