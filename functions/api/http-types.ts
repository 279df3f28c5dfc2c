/**
 * The parts of API Gateway's HTTP API payload v2 that Dump Bag reads and writes, written out here so
 * the Lambda, `dump-bag serve` and the tests share one small, exact shape (@types/aws-lambda's
 * APIGatewayProxyEventV2 / APIGatewayProxyStructuredResultV2 are supersets of these).
 */
export interface ApiEvent {
  readonly version?: string;
  readonly routeKey?: string;
  /** The path as API Gateway passes it, without the query string. */
  readonly rawPath: string;
  /** The query string without `?`, still percent-encoded. */
  readonly rawQueryString?: string;
  readonly cookies?: readonly string[];
  /** Header names in lower case; repeated headers joined with commas. */
  readonly headers?: Readonly<Record<string, string | undefined>>;
  readonly queryStringParameters?: Readonly<Record<string, string | undefined>>;
  readonly pathParameters?: Readonly<Record<string, string | undefined>>;
  readonly requestContext: {
    readonly accountId?: string;
    readonly apiId?: string;
    readonly domainName?: string;
    readonly domainPrefix?: string;
    readonly http: {
      readonly method: string;
      readonly path?: string;
      readonly protocol?: string;
      readonly sourceIp?: string;
      readonly userAgent?: string;
    };
    readonly requestId?: string;
    readonly routeKey?: string;
    /** `$default`, or the stage name that prefixes rawPath. */
    readonly stage?: string;
    readonly time?: string;
    readonly timeEpoch?: number;
  };
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
}

export interface ApiResult {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly isBase64Encoded?: boolean;
  readonly cookies?: string[];
}
