/**
 * The notifier: a real `dump-bag backup` of one good and one missing database posting to a local
 * webhook receiver, the webhook secret's parsing and the messages (pure), and the handler's
 * DescribeExecution lookup for a failed run's event, against a loopback Step Functions stand-in.
 * The same through the synthesized stack: infra/twin-notify.test.ts. Over 300 lines: the notifier's
 * three parts read together as one behaviour, each with its own small setup (receiver, stand-in).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMessage, postMessage, runNotices } from '../functions/core/notify';
import { NotifyConfigError, webhooksFromSecret } from '../functions/core/webhooks';
import { withExecutionError } from '../functions/notify/describe-execution';
import { DUMPS_FAILED_ERROR, EXECUTION_EVENT, executionLink, noticesOf } from '../functions/notify/events';
import { bagEnv, runCli, uniqueSuffix } from './support/bag';
import { createDatabase, freshBucket } from './support/env';

const suffix = uniqueSuffix();
const GOOD = `notify good ${suffix}`;
const MISSING = `notify missing ${suffix}`;
/** A webhook URL's path is its credential, as Slack's and Teams' are. */
const SECRET = `T0KEN${suffix}SECRET`;

interface Receiver {
  readonly url: string;
  readonly bodies: unknown[];
  /** Status codes to answer, in turn; 200 once they run out. */
  readonly answers: number[];
  close(): Promise<void>;
}

async function receiver(): Promise<Receiver> {
  const bodies: unknown[] = [];
  const answers: number[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = answers.shift() ?? 200;
      if (
        status === 200 &&
        req.url === `/hooks/${SECRET}` &&
        req.headers['content-type'] === 'application/json'
      ) {
        bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      }
      res.writeHead(status);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/${SECRET}`,
    bodies,
    answers,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('notify', () => {
  let hook: Receiver;
  beforeAll(async () => {
    hook = await receiver();
    await createDatabase(GOOD, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1);');
  });
  afterAll(() => hook.close());

  const backup = async (extra: Record<string, string>) =>
    runCli(
      ['backup'],
      bagEnv(await freshBucket(), {
        DUMP_BAG_ENCRYPTION: 'none',
        DUMP_BAG_DATABASES: `${GOOD},${MISSING}`,
        DUMP_BAG_NOTIFY_URL: hook.url,
        ...extra,
      }),
    );

  it('backup sends one well-formed message per failed database and none for successes', async () => {
    hook.bodies.length = 0;
    const result = await backup({});
    expect(result.code).toBe(1);
    expect(hook.bodies).toHaveLength(1);
    const [message] = hook.bodies as Record<string, unknown>[];
    expect(message).toMatchObject({
      kind: 'database-failed',
      details: { kind: 'database-failed', database: MISSING, cause: expect.stringMatching(/\S/) },
    });
    expect(message?.text).toMatch(new RegExp(`the backup of ${MISSING} failed: .+`));
    expect(JSON.stringify(message)).not.toContain(SECRET);
    expect(result.stderr + result.stdout.toString()).not.toContain(SECRET);
  }, 120_000);

  it('with the digest on, the successes come in one more message', async () => {
    hook.bodies.length = 0;
    const result = await backup({ DUMP_BAG_NOTIFY_DIGEST: '1' });
    expect(result.code).toBe(1);
    const kinds = (hook.bodies as { kind: string }[]).map((b) => b.kind).sort();
    expect(kinds).toEqual(['database-failed', 'digest']);
    const digest = (hook.bodies as { kind: string; details: { databases: { database: string }[] } }[]).find(
      (b) => b.kind === 'digest',
    );
    expect(digest?.details.databases.map((d) => d.database)).toEqual([GOOD]);
  }, 120_000);

  it('retries a failing webhook, then logs it by number, never by URL, and never throws', async () => {
    hook.bodies.length = 0;
    hook.answers.push(500, 503);
    const message = formatMessage(
      { kind: 'bag-stale', alarm: 'stale', reason: 'no dump for 26 hours' },
      'bag',
    );
    const lines: string[] = [];
    const delivered = await postMessage([hook.url], message, { backoffMs: 1, log: (l) => lines.push(l) });
    expect(delivered).toEqual([{ webhook: 1, delivered: true, attempts: 3 }]);
    expect(hook.bodies).toHaveLength(1);

    hook.answers.push(500, 500, 500);
    const dead = `http://127.0.0.1:1/hooks/${SECRET}`;
    const failed = await postMessage([hook.url, dead], message, { backoffMs: 1, log: (l) => lines.push(l) });
    expect(failed.map((d) => [d.webhook, d.delivered, d.attempts])).toEqual([
      [1, false, 3],
      [2, false, 3],
    ]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/webhook #1 .*HTTP 500/);
    expect(lines[1]).toMatch(/webhook #2 .*could not connect/);
    expect(lines.join('\n')).not.toContain(SECRET);
  });
});

describe("the notifier's webhook secret and messages", () => {
  const hook = `https://hooks.example.com/services/${SECRET}`;

  it('takes a JSON list or one URL, skips a bad entry by number, and never repeats the value', () => {
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    expect(
      webhooksFromSecret(JSON.stringify([hook, 'http://evil.example.com/x', 42]), 'the secret S', log),
    ).toEqual([hook]);
    expect(lines).toEqual([
      'notify: webhook #2 of the secret S is not an https URL (http only on loopback): skipped',
      'notify: webhook #3 of the secret S is not an https URL (http only on loopback): skipped',
    ]);
    expect(webhooksFromSecret(` ${hook}\n`, 'the secret S', log)).toEqual([hook]);
    for (const bad of [`{"url": "${hook}"}`, `["http://example.com/${SECRET}"]`, '[', '']) {
      let error: unknown;
      try {
        webhooksFromSecret(bad, 'the secret S', () => undefined);
      } catch (caught: unknown) {
        error = caught;
      }
      expect(error, bad).toBeInstanceOf(NotifyConfigError);
      expect((error as Error).message).toMatch(/^the secret S holds .*put-secret-value/);
      expect((error as Error).message).not.toContain(SECRET);
    }
  });

  it('links an execution ARN to its console page and nothing else', () => {
    const arn = 'arn:aws:states:eu-west-1:123456789012:execution:dump-bag:run-1';
    expect(executionLink(arn)).toBe(
      `https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${encodeURIComponent(arn)}`,
    );
    expect(executionLink(arn.replace('arn:aws:', 'arn:aws-cn:').replace('eu-west-1', 'cn-north-1'))).toMatch(
      /^https:\/\/cn-north-1\.console\.amazonaws\.cn\//,
    );
    for (const hostile of [
      'https://evil.example.com/',
      `${arn} javascript:alert(1)`,
      'arn:aws:states:eu-west-1:123456789012:execution:a/b:c',
      42,
      'x'.repeat(5000),
    ])
      expect(executionLink(hostile)).toBeUndefined();
  });

  it("turns the run's key warnings into key-expiring messages that say how to renew", () => {
    const notices = runNotices([{ database: 'a', status: 'ok' }], {
      keyWarnings: [
        {
          fingerprint: 'ABCD',
          userId: 'Ann <ann@example.com>',
          expiresAt: new Date('2026-12-12T00:00:00Z'),
          daysLeft: 10,
        },
      ],
    });
    expect(notices).toEqual([
      {
        kind: 'key-expiring',
        fingerprint: 'ABCD',
        userId: 'Ann <ann@example.com>',
        expiresAt: '2026-12-12T00:00:00.000Z',
        daysLeft: 10,
      },
    ]);
    expect(formatMessage(notices[0] as (typeof notices)[0], 'bag').text).toBe(
      ':key: bag: the key of Ann <ann@example.com> (ABCD) expires 2026-12-12T00:00:00.000Z: renew it (gpg --quick-set-expire) and re-export it',
    );
  });
});

describe("a failed run's status event without its error (AWS's schema does not promise one)", () => {
  const STATE_MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:dump-bag';
  const EXECUTION = 'arn:aws:states:eu-west-1:123456789012:execution:dump-bag:run-1';
  let server: Server;
  let sfn: SFNClient;
  /** What the Step Functions stand-in answers DescribeExecution next: a status and body, or no answer. */
  let answer: { status: number; body: unknown } | 'hang';
  const asked: { target: string; body: unknown }[] = [];
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    // Step Functions' JSON API on loopback, as test/api-handler.test.ts stands in for it.
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        asked.push({
          target: String(req.headers['x-amz-target']),
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
        });
        if (answer === 'hang') return void held.push(res);
        res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sfn = new SFNClient({
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
  });
  afterAll(() => {
    for (const res of held) res.destroy();
    sfn.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const failedRun = (detail: Record<string, unknown> = {}) => ({
    source: EXECUTION_EVENT.source,
    'detail-type': EXECUTION_EVENT.detailType,
    detail: { executionArn: EXECUTION, stateMachineArn: STATE_MACHINE, status: 'FAILED', ...detail },
  });
  /** The handler's path: the lookup, then the pure parse; the log lines it wrote. */
  const told = async (event: unknown, timeoutMs?: number) => {
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    const enriched = await withExecutionError(event, STATE_MACHINE, sfn, { log, timeoutMs });
    return { ...noticesOf(enriched, STATE_MACHINE), lines };
  };
  const described = (body: Record<string, unknown>) => {
    answer = { status: 200, body: { executionArn: EXECUTION, stateMachineArn: STATE_MACHINE, ...body } };
  };

  it('asks DescribeExecution, and tells nothing when it says the databases failed (each was told already)', async () => {
    asked.length = 0;
    described({ status: 'FAILED', error: DUMPS_FAILED_ERROR, cause: '1 of 2 dumps failed: x' });
    const { notices, skipped, lines } = await told(failedRun());
    expect(asked).toEqual([
      { target: 'AWSStepFunctions.DescribeExecution', body: { executionArn: EXECUTION } },
    ]);
    expect(notices).toEqual([]);
    expect(skipped).toEqual(['a run whose failed databases were told one by one']);
    expect(lines).toEqual([]);
  });

  it("tells a run that timed out once, with the execution's own error and cause", async () => {
    described({ status: 'TIMED_OUT', error: 'States.Timeout', cause: 'the state machine ran past its 8 h' });
    const { notices, lines } = await told(failedRun({ status: 'TIMED_OUT' }));
    expect(notices).toEqual([
      {
        kind: 'database-failed',
        database: '(every database)',
        cause: 'TIMED_OUT: States.Timeout: the state machine ran past its 8 h',
        executionLink: executionLink(EXECUTION),
      },
    ]);
    expect(lines).toEqual([]);
  });

  it('takes only strings from the answer, and bounds the cause', async () => {
    described({ status: 'FAILED', error: 'States.TaskFailed', cause: 'c'.repeat(100_000) });
    const long = await told(failedRun());
    expect(long.notices[0]).toMatchObject({ cause: `FAILED: States.TaskFailed: ${'c'.repeat(4096)}` });
    described({ status: 'FAILED', error: 42, cause: { nested: DUMPS_FAILED_ERROR } });
    const hostile = await told(failedRun());
    expect(hostile.notices.map((n) => n.kind === 'database-failed' && n.cause)).toEqual(['FAILED']);
  });

  it('asks nothing when the event carries its error, or is not a failed run of this state machine', async () => {
    asked.length = 0;
    described({ status: 'FAILED', error: DUMPS_FAILED_ERROR });
    const own = await told(failedRun({ error: 'States.Runtime', cause: 'bad JSONPath' }));
    expect(own.notices).toMatchObject([{ cause: 'FAILED: States.Runtime: bad JSONPath' }]);
    await told(failedRun({ stateMachineArn: `${STATE_MACHINE}-other` }));
    await told(failedRun({ status: 'SUCCEEDED' }));
    await told(failedRun({ executionArn: 'https://evil.example.com/' }));
    expect(asked).toEqual([]);
  });

  it('tells the run with its status alone when the lookup is refused, and logs why with the fix', async () => {
    answer = {
      status: 400,
      body: {
        __type: 'AccessDeniedException',
        message: 'not authorized to perform: states:DescribeExecution',
      },
    };
    const { notices, lines } = await told(failedRun());
    expect(notices).toEqual([
      {
        kind: 'database-failed',
        database: '(every database)',
        cause: 'FAILED',
        executionLink: executionLink(EXECUTION),
      },
    ]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`DescribeExecution of ${EXECUTION} failed (not authorized to perform`);
    expect(lines[0]).toMatch(/told with its status only; grant the notifier's role states:DescribeExecution/);
  });

  it('tells the run with its status alone when Step Functions does not answer in time, and logs it', async () => {
    answer = 'hang';
    const started = Date.now();
    const { notices, lines } = await told(failedRun({ status: 'ABORTED' }), 300);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(notices).toMatchObject([
      { kind: 'database-failed', database: '(every database)', cause: 'ABORTED' },
    ]);
    expect(lines).toEqual([
      `notify: DescribeExecution of ${EXECUTION} failed (no answer within 300 ms): the run is told with its status only`,
    ]);
  });
});
