/**
 * The API's Lambda adapter (functions/api/handler.ts) with API Gateway HTTP API v2 events: on-demand
 * POSTs against a loopback Step Functions stand-in that keeps its executions running, stage
 * routing, presigned URLs over the real S3 API server, and the JSON log. The routes themselves:
 * api-routes.test.ts. Over 300 lines: the event, context and log-capture builders and the stand-in
 * server are shared by every case, and the 409 case depends on the executions it keeps running.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appFromEnv, handler } from '../functions/api/handler';
import { executionName } from '../functions/api/on-demand';
import { encodePathSegment } from '../functions/api/paths';
import { bagEnv, keyFolder, keyPair, makeDumps, uniqueSuffix } from './support/bag';
import { createDatabase, freshBucket, services } from './support/env';
import { testSigner } from './support/signing';

const suffix = uniqueSuffix();
const DATABASE = `handler é/x ${suffix}`;
const STATE_MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:dump-bag-backup';

/** An event as API Gateway's HTTP API sends it, on a named stage. */
function event(method: string, rawPath: string, rawQueryString = '', stage = 'prod'): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: stage === '$default' ? rawPath : `/${stage}${rawPath}`,
    rawQueryString,
    headers: { host: 'abc123.execute-api.eu-west-1.amazonaws.com', 'user-agent': 'test' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '192.0.2.1', userAgent: 'test' },
      requestId: `req-${Math.random()}`,
      routeKey: '$default',
      stage,
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    isBase64Encoded: false,
  };
}

/** A Lambda context as the runtime passes it. */
function lambdaContext(awsRequestId: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'dump-bag-api',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:dump-bag-api',
    memoryLimitInMB: '256',
    awsRequestId,
    logGroupName: '/aws/lambda/dump-bag-api',
    logStreamName: '2026/12/02/[$LATEST]0123456789abcdef',
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** Captures what the Lambda's process writes, where Powertools' Logger puts its JSON lines. */
async function capturingOutput<T>(fn: () => Promise<T>): Promise<{ result: T; output: string }> {
  let output = '';
  const original = {
    out: process.stdout.write.bind(process.stdout),
    err: process.stderr.write.bind(process.stderr),
  };
  process.stdout.write = ((chunk: string | Uint8Array) => {
    output += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    output += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), output };
  } finally {
    process.stdout.write = original.out;
    process.stderr.write = original.err;
  }
}

describe('the API Lambda handler (API Gateway HTTP API payload v2)', () => {
  let bucket: string;
  let sfnServer: Server;
  let sfnEndpoint: string;
  const sfnRequests: { target: string; body: Record<string, unknown> }[] = [];
  const sfnExecutions: { name: string; executionArn: string; startDate: number; status: string }[] = [];
  /** The stand-in's executions end, as the state machine would once the dump is stored. */
  const finishExecutions = () => {
    for (const e of sfnExecutions) e.status = 'SUCCEEDED';
  };
  const startsOf = () => sfnRequests.filter((r) => r.target === 'AWSStepFunctions.StartExecution');

  beforeAll(async () => {
    const owner = await keyPair('Handler Owner', `handler-${suffix}@example.com`);
    await createDatabase(DATABASE, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1);');
    bucket = await freshBucket();
    await makeDumps(bucket, [DATABASE], { publicKeys: keyFolder([owner]) });
    // Step Functions cannot run here; this stands in for its endpoint, records the calls and keeps
    // the executions it started RUNNING until a test ends them, answering ListExecutions as the service does.
    sfnServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const target = String(req.headers['x-amz-target']);
        const request = JSON.parse(body);
        sfnRequests.push({ target, body: request });
        const reply = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
          res.end(JSON.stringify(payload));
        };
        if (target === 'AWSStepFunctions.ListExecutions') {
          const executions = sfnExecutions
            .filter((e) => request.statusFilter === undefined || e.status === request.statusFilter)
            .map((e) => ({ ...e, stateMachineArn: STATE_MACHINE }));
          return reply(200, { executions });
        }
        const name = String(request.name ?? `exec-${sfnExecutions.length + 1}`);
        if (sfnExecutions.some((e) => e.name === name)) {
          return reply(400, {
            __type: 'ExecutionAlreadyExists',
            message: `Execution Already Exists: '${name}'`,
          });
        }
        const execution = {
          name,
          executionArn: `${STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${name}`,
          startDate: Date.now() / 1000,
          status: 'RUNNING',
        };
        sfnExecutions.push(execution);
        reply(200, { executionArn: execution.executionArn, startDate: execution.startDate });
      });
    });
    await new Promise<void>((resolve) => sfnServer.listen(0, '127.0.0.1', resolve));
    sfnEndpoint = `http://127.0.0.1:${(sfnServer.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => sfnServer.close(() => resolve())));

  it('POST /dumps/{database} starts the state machine with the manual input and answers 202', async () => {
    const sfn = new SFNClient({
      endpoint: sfnEndpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    const app = appFromEnv(bagEnv(bucket, { DUMP_BAG_STATE_MACHINE_ARN: STATE_MACHINE }), { sfn });
    const { result } = await capturingOutput(() =>
      app(event('POST', `/dumps/${encodePathSegment(DATABASE)}`)),
    );
    expect(result.statusCode).toBe(202);
    // First the running executions are asked for (409 below), then the one execution starts.
    expect(sfnRequests).toEqual([
      {
        target: 'AWSStepFunctions.ListExecutions',
        body: { stateMachineArn: STATE_MACHINE, statusFilter: 'RUNNING', maxResults: 1000 },
      },
      {
        target: 'AWSStepFunctions.StartExecution',
        body: {
          stateMachineArn: STATE_MACHINE,
          name: expect.stringMatching(/^manual-[0-9a-f]{24}-\d{8}-\d{6}$/),
          input: JSON.stringify({ databases: [DATABASE], trigger: 'manual' }),
        },
      },
    ]);
  });

  it('a second POST of a database while its dump runs is a 409 naming the running execution; another database starts', async () => {
    const sfn = new SFNClient({
      endpoint: sfnEndpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    let now = new Date('2026-12-02T10:00:00.100Z');
    const app = appFromEnv(bagEnv(bucket, { DUMP_BAG_STATE_MACHINE_ARN: STATE_MACHINE }), {
      sfn,
      now: () => now,
    });
    finishExecutions();
    const database = `second ${suffix}`;
    const path = `/dumps/${encodePathSegment(database)}`;
    const first = await capturingOutput(() => app(event('POST', path)));
    expect(first.result.statusCode).toBe(202);
    const running = sfnExecutions.at(-1)?.name;
    expect(running).toBe(executionName(database, now));
    const before = startsOf().length;
    now = new Date('2026-12-02T10:00:05.000Z');
    const second = await capturingOutput(() => app(event('POST', path)));
    expect(second.result.statusCode).toBe(409);
    expect(JSON.parse(second.result.body).error).toContain(`already running (execution ${running}, started `);
    expect(startsOf().length).toBe(before);
    // Another database is not held up by it.
    const other = await capturingOutput(() => app(event('POST', `/dumps/other-${suffix}`)));
    expect(other.result.statusCode).toBe(202);
    // A request racing past the check in the same second meets the name Step Functions runs once.
    finishExecutions();
    now = new Date('2026-12-02T10:00:00.900Z');
    const racing = await capturingOutput(() => app(event('POST', path)));
    expect(racing.result.statusCode).toBe(409);
    expect(JSON.parse(racing.result.body).error).toContain('started this very second');
    // Once it ended, the database can be dumped again.
    now = new Date('2026-12-02T10:01:00.000Z');
    const again = await capturingOutput(() => app(event('POST', path)));
    expect(again.result.statusCode).toBe(202);
    finishExecutions();
  });

  it('reads a database name whose %2F API Gateway already decoded into a slash', async () => {
    const sfn = new SFNClient({
      endpoint: sfnEndpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    // An hour on, so its execution's name is not the first test's (one name per database and second).
    const app = appFromEnv(bagEnv(bucket, { DUMP_BAG_STATE_MACHINE_ARN: STATE_MACHINE }), {
      sfn,
      now: () => new Date(Date.now() + 3_600_000),
    });
    // As the HTTP API hands it over: `handler é%2Fx …` arrives as `handler é/x …`.
    const latest = await capturingOutput(() => app(event('GET', `/dumps/${DATABASE}/latest`)));
    expect(latest.result.statusCode).toBe(200);
    expect(JSON.parse(latest.result.body).database).toBe(DATABASE);
    const url = await capturingOutput(() => app(event('GET', `/dumps/${DATABASE}/latest/url`)));
    expect(url.result.statusCode).toBe(200);
    finishExecutions();
    const started = await capturingOutput(() => app(event('POST', `/dumps/${DATABASE}`)));
    expect(started.result.statusCode).toBe(202);
    expect(JSON.parse(String(sfnRequests.at(-1)?.body.input))).toEqual({
      databases: [DATABASE],
      trigger: 'manual',
    });
    // A POST with a dump's shape is no database name.
    expect((await app(event('POST', `/dumps/${DATABASE}/latest`))).statusCode).toBe(405);
  });

  it('without DUMP_BAG_STATE_MACHINE_ARN a POST is a bare 500, and nothing starts', async () => {
    const app = appFromEnv(bagEnv(bucket), {
      sfn: new SFNClient({ endpoint: sfnEndpoint, region: 'eu-west-1' }),
    });
    const before = sfnRequests.length;
    const { result, output } = await capturingOutput(() => app(event('POST', '/dumps/x')));
    expect(result.statusCode).toBe(500);
    expect(JSON.parse(result.body)).toEqual({ error: 'internal error', requestId: expect.any(String) });
    expect(output).toContain('DUMP_BAG_STATE_MACHINE_ARN is not set');
    expect(sfnRequests.length).toBe(before);
  });

  it('the exported handler routes under a stage, presigns, and logs JSON without the URL', async () => {
    // The handler reads its settings from the process environment at its first successful call.
    delete process.env.DUMP_BAG_BUCKET;
    const missing = await capturingOutput(() => handler(event('GET', '/dumps')));
    expect(missing.result.statusCode).toBe(500);
    expect(missing.result.body).not.toContain('DUMP_BAG_BUCKET');
    expect(missing.output).toContain('DUMP_BAG_BUCKET is not set');

    Object.assign(process.env, bagEnv(bucket), { DUMP_BAG_URL_EXPIRY_SECONDS: '43200' });
    const listed = await capturingOutput(() =>
      handler(event('GET', '/dumps', `database=${encodeURIComponent(DATABASE)}`)),
    );
    expect(listed.result.statusCode).toBe(200);
    const [dump] = JSON.parse(listed.result.body).dumps;
    expect(dump.database).toBe(DATABASE);

    const presigned = await capturingOutput(() =>
      handler(
        event('GET', `/dumps/${encodePathSegment(DATABASE)}/${dump.id}/url`),
        lambdaContext('lambda-req-1'),
      ),
    );
    expect(presigned.result.statusCode).toBe(200);
    const { url, expiresAt } = JSON.parse(presigned.result.body);
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('43200');
    expect(new Date(expiresAt).getTime()).toBeGreaterThan(Date.now() + 43_100_000);
    const bytes = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(bytes.length).toBe(dump.bytes);

    const lines = presigned.output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'INFO',
        message: 'request',
        route: '/dumps/{database}/{id}/url',
        status: 200,
      }),
    );
    expect(presigned.output).not.toContain('X-Amz-Signature');
    expect(presigned.output).not.toContain(url.slice(0, 40));

    const page = await capturingOutput(() => handler(event('GET', '')));
    expect(page.result.statusCode).toBe(200);
    // Under a stage, the buttons point below the stage's path.
    expect(page.result.body).toContain(
      `data-url="/prod/dumps/${encodePathSegment(DATABASE)}/${dump.id}/url"`,
    );
    const stageless = await capturingOutput(() => handler(event('GET', '/keys', '', '$default')));
    expect(stageless.result.statusCode).toBe(404);
    expect(JSON.parse(stageless.result.body).error).toContain('DUMP_BAG_PUBLIC_KEYS');
  });

  it('an expiry beyond 12 hours is refused at start', () => {
    expect(() => appFromEnv(bagEnv(bucket, { DUMP_BAG_URL_EXPIRY_SECONDS: '43201' }))).toThrow(
      'DUMP_BAG_URL_EXPIRY_SECONDS must be a whole number of seconds from 1 to 43200',
    );
  });

  it('presigned URLs say when temporary credentials end them', async () => {
    const soon = new Date(Date.now() + 120_000);
    const { createApp } = await import('../functions/api/app');
    const app = createApp({
      s3: new S3Client({
        endpoint: services().s3Endpoint,
        forcePathStyle: true,
        region: 'us-east-1',
        credentials: async () => ({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', expiration: soon }),
      }),
      bucket,
      retention: { retentionDays: 30, manualRetentionDays: 7, keepMin: 3 },
      urlExpirySeconds: 900,
      loadKeys: async () => [],
      loadRecipients: async () => [],
      signingKey: () => testSigner().publicKeyPem(),
      startDump: async () => {},
      logger: { info: () => {}, error: () => {} },
    });
    const result = await app(
      event('GET', `/dumps/${encodePathSegment(DATABASE)}/latest/url`, '', '$default'),
    );
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body).expiresAt).toBe(soon.toISOString());
  });
});
