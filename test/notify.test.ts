import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMessage, postMessage, runNotices } from '../functions/core/notify';
import { NotifyConfigError, webhooksFromSecret } from '../functions/core/webhooks';
import { executionLink } from '../functions/notify/events';
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
