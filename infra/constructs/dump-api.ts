import { Duration } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as authorizers from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import * as integrations from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { SETTINGS } from '../../functions/core/settings';
import { BagFunction, type FunctionDefaults, type RetentionSettings } from './bag-function';
import type { DumpBucket } from './dump-bucket';
import type { PublicKeys } from './public-keys';
import type { SigningKey } from './signing-key';
import { checkProp, oneOf, optional } from './validate';

/** Presigned URLs: the API's default and limits (the API refuses longer). */
const URL_EXPIRY = SETTINGS.urlExpirySeconds;
/** Requests per second: the whole API's, and each public route's (anonymous callers get less). */
const DEFAULT_RATE_LIMIT = 20;
const DEFAULT_PUBLIC_RATE_LIMIT = 5;

/** Who may call the API's private routes. */
export type ApiAuthorization =
  | { readonly type: 'iam' }
  | {
      readonly type: 'jwt';
      /** The token issuer, e.g. https://cognito-idp.<region>.amazonaws.com/<pool id>. */
      readonly issuer: string;
      /** Accepted audiences (client ids). */
      readonly audience: readonly string[];
    };

export interface DumpApiProps extends FunctionDefaults {
  readonly bucket: DumpBucket;
  /** The backup state machine, which POST /dumps/{database} starts. */
  readonly stateMachine: sfn.IStateMachine;
  readonly keys: PublicKeys;
  /** The key that signs the records: the API serves its public half at GET /signing-key. */
  readonly signingKey: SigningKey;
  /** The same retention as the dump function's, to report when each dump will be deleted. @default 30/7 days, keep 3 */
  readonly retention?: RetentionSettings;
  /** Every route but GET /keys, GET /recipients and GET /signing-key requires this. @default { type: 'iam' } (SigV4) */
  readonly authorization?: ApiAuthorization;
  /** How long presigned download URLs stay valid. At most 12 hours. @default Duration.seconds(900) */
  readonly urlExpiry?: Duration;
  /** Steady requests per second for the whole API (burst twice that). @default 20 */
  readonly rateLimit?: number;
  /** Steady requests per second for each public route (/keys, /recipients…; burst twice that), so anonymous callers cannot starve restores. At most rateLimit. @default 5 */
  readonly publicRateLimit?: number;
}

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validateDumpApiProps(scope: IConstruct, props: DumpApiProps): void {
  if (props.authorization) validateAuthorization(scope, props.authorization);
  checkProp(scope, {
    prop: 'urlExpiry',
    value: props.urlExpiry,
    valid: optional(
      (expiry) => expiry.toSeconds() >= URL_EXPIRY.parser.min && expiry.toSeconds() <= URL_EXPIRY.parser.max,
    ),
    rule: 'must be from 1 second to 12 hours',
    fix: 'a download link should be short-lived (context urlExpirySeconds)',
  });
  checkProp(scope, {
    prop: 'rateLimit',
    value: props.rateLimit,
    valid: optional((limit) => limit >= 1),
    rule: 'must be at least 1',
    fix: 'give the steady requests per second the whole API takes',
  });
  checkProp(scope, {
    prop: 'publicRateLimit',
    value: props.publicRateLimit,
    valid: optional((limit) => limit >= 1 && limit <= (props.rateLimit ?? DEFAULT_RATE_LIMIT)),
    rule: 'must be from 1 to `rateLimit`',
    fix: "give the steady requests per second each public route (/keys, /recipients) takes, below the whole API's",
  });
}

function validateAuthorization(scope: IConstruct, authorization: ApiAuthorization): void {
  checkProp(scope, {
    prop: 'authorization.type',
    value: authorization.type,
    valid: oneOf(['iam', 'jwt']),
    rule: "must be 'iam' or 'jwt'",
    fix: "'iam' for SigV4-signed calls, 'jwt' for tokens of an OpenID issuer (context authorization)",
  });
  if (authorization.type === 'jwt') {
    checkProp(scope, {
      prop: 'authorization.issuer',
      value: authorization.issuer,
      valid: (url) => /^https:\/\//.test(url ?? ''),
      rule: "must be the issuer's https:// URL",
      fix: 'give the token issuer, e.g. https://cognito-idp.<region>.amazonaws.com/<pool id> (context jwtIssuer)',
    });
    checkProp(scope, {
      prop: 'authorization.audience',
      value: authorization.audience,
      valid: (audience) => audience !== undefined && audience.length > 0,
      rule: 'must list at least one audience (client id)',
      fix: 'give the client ids whose tokens the API accepts (context jwtAudience)',
    });
    return;
  }
  // Only an untyped caller (cdk.json context, JavaScript) can give these with IAM.
  const { issuer, audience } = authorization as { issuer?: string; audience?: readonly string[] };
  for (const [prop, value] of [
    ['issuer', issuer],
    ['audience', audience],
  ] as const) {
    checkProp(scope, {
      prop: `authorization.${prop}`,
      value,
      valid: value === undefined,
      rule: "applies only with type 'jwt'",
      fix: `set authorization to jwt (context authorization), or leave context jwt${prop === 'issuer' ? 'Issuer' : 'Audience'} out`,
    });
  }
}

/**
 * The routes, and whether each is public by design. Below /dumps they are greedy: a database name
 * may hold `/`, which API Gateway decodes from `%2F` before matching, so `{database}/{id}` would
 * split it; the function parses the path itself and answers 404 for anything else.
 */
export const API_ROUTES: readonly { method: apigw.HttpMethod; path: string; public: boolean }[] = [
  { method: apigw.HttpMethod.GET, path: '/', public: false },
  { method: apigw.HttpMethod.GET, path: '/dumps', public: false },
  // GET /dumps/{database}/{id|latest} and GET /dumps/{database}/{id|latest}/url
  { method: apigw.HttpMethod.GET, path: '/dumps/{proxy+}', public: false },
  // POST /dumps/{database}
  { method: apigw.HttpMethod.POST, path: '/dumps/{proxy+}', public: false },
  // Other bags and people fetch the public keys and recipients without credentials, as with the older bag.
  { method: apigw.HttpMethod.GET, path: '/keys', public: true },
  { method: apigw.HttpMethod.GET, path: '/recipients', public: true },
  { method: apigw.HttpMethod.GET, path: '/signing-key', public: true },
];

/**
 * The HTTP API: one Lambda behind every route, IAM (or JWT) on all but the public key routes,
 * access logs and throttling on the stage. Its role reads and lists dumps and starts backups.
 */
export class DumpApi extends Construct {
  readonly httpApi: apigw.HttpApi;
  readonly function: BagFunction;
  /** The API's base URL. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: DumpApiProps) {
    super(scope, id);
    validateDumpApiProps(this, props);
    const authorization = props.authorization ?? { type: 'iam' };
    const urlExpiry = props.urlExpiry ?? Duration.seconds(URL_EXPIRY.default);
    const expirySeconds = urlExpiry.toSeconds();
    const rateLimit = props.rateLimit ?? DEFAULT_RATE_LIMIT;
    const publicRateLimit = props.publicRateLimit ?? Math.min(DEFAULT_PUBLIC_RATE_LIMIT, rateLimit);
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.function = new BagFunction(this, 'Handler', {
      entry: 'functions/api/handler.ts',
      description: 'Dump Bag API: lists dumps, presigns downloads, starts on-demand dumps, serves keys',
      architecture: props.architecture,
      memorySize: 512,
      // API Gateway gives up after 30 s.
      timeout: Duration.seconds(29),
      logRetention,
      serviceName: props.serviceName,
      environment: { [URL_EXPIRY.env]: String(expirySeconds) },
    });
    this.function
      .bindDumpReader(props.bucket)
      .bindStateMachine(props.stateMachine)
      .bindRetention(props.retention ?? {});
    props.keys.bind(this.function);
    props.signingKey.bindPublicKey(this.function);

    const defaultAuthorizer =
      authorization.type === 'jwt'
        ? new authorizers.HttpJwtAuthorizer('Jwt', authorization.issuer, {
            jwtAudience: [...authorization.audience],
          })
        : new authorizers.HttpIamAuthorizer();
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'Dump Bag: list and fetch database dumps',
      createDefaultStage: false,
      defaultAuthorizer,
    });
    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: logRetention });
    const stage = new apigw.HttpStage(this, 'Stage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit, burstLimit: rateLimit * 2 },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            caller: '$context.identity.userArn',
            requestTime: '$context.requestTime',
            routeKey: '$context.routeKey',
            status: '$context.status',
            responseLength: '$context.responseLength',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });
    const integration = new integrations.HttpLambdaIntegration('Api', this.function);
    for (const route of API_ROUTES) {
      const [created] = this.httpApi.addRoutes({
        path: route.path,
        methods: [route.method],
        integration,
        authorizer: route.public ? new apigw.HttpNoneAuthorizer() : undefined,
      });
      if (route.public && created) {
        // Route settings name the route by key: the stage must come after it.
        stage.node.addDependency(created);
        NagSuppressions.addResourceSuppressions(created, [
          {
            id: 'AwsSolutions-APIG4',
            reason: `${route.method} ${route.path} is public by design: it serves public keys or their fingerprints (the OpenPGP recipients, the record signing key), so other bags and readers can take and pin their key configuration from this one.`,
          },
        ]);
      }
    }
    // The HTTP API's L2 stage has no per-route throttle; CloudFormation's RouteSettings (a JSON map, so CloudFormation's casing) has.
    (stage.node.defaultChild as apigw.CfnStage).routeSettings = Object.fromEntries(
      API_ROUTES.filter((r) => r.public).map((r) => [
        `${r.method} ${r.path}`,
        { ThrottlingRateLimit: publicRateLimit, ThrottlingBurstLimit: publicRateLimit * 2 },
      ]),
    );
    this.url = this.httpApi.apiEndpoint;
  }
}
