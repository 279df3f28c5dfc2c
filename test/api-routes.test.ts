/**
 * Every route of the HTTP API over real HTTP: the bag's API served on loopback over the real S3 API
 * server, with dumps the product made of real PostgreSQL databases (one with a hostile name);
 * GnuPG imports what GET /keys serves, and a table of hostile requests must get 4xx. The Lambda
 * adapter: api-handler.test.ts. Over 300 lines: one route per case plus the hostile table, all
 * against the one set of dumps and started bag beforeAll builds, which a split would build again.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpPath, encodePathSegment } from '../functions/api/paths';
import { listDumps } from '../functions/core/catalog';
import { loadKeys } from '../functions/core/keys';
import type { ListedDump } from '../functions/core/listing';
import { dumpKey } from '../functions/core/naming';
import {
  bagEnv,
  type KeyPair,
  keyFolder,
  keyPair,
  makeDumps,
  type RunningBag,
  rawRequest,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import { createDatabase, freshBucket, getObjectBytes, s3Client, services } from './support/env';

const suffix = uniqueSuffix();
const PLAIN = `api plain ${suffix}`;
/** Space, quotes, a slash, non-ASCII, and what looks like a query and a percent-escape. */
const ODD = `api é "q" a/b ?x=%41 ${suffix}`;
const DAY_MS = 24 * 60 * 60 * 1000;
const run = promisify(execFile);

function fill(rows: number): string {
  return `CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, ${rows}) i;`;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function gpg(home: string, args: string[], input?: string): string {
  return execFileSync('gpg', ['--homedir', home, '--batch', ...args], {
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
  }).toString();
}

describe('HTTP API against serve, real S3 API server and real dumps', () => {
  let bucket: string;
  let bag: RunningBag;
  let alice: KeyPair;
  let bob: KeyPair;
  let carol: KeyPair;
  let stored: ListedDump[];

  beforeAll(async () => {
    [alice, bob, carol] = await Promise.all([
      keyPair('Alice Analyst', `alice-${suffix}@example.com`),
      keyPair('Bob Builder', `bob-${suffix}@example.com`),
      keyPair('Carol Cold', `carol-${suffix}@example.com`),
    ]);
    const keys = keyFolder([alice, bob, carol]);
    // Carol's key is in the folder but she is no recipient: /keys lists her, /recipients does not.
    const recipients = `${alice.email},${bob.fingerprint}`;
    await createDatabase(PLAIN, fill(500));
    await createDatabase(ODD, fill(300));
    bucket = await freshBucket();
    await makeDumps(bucket, [PLAIN, ODD], { publicKeys: keys, recipients });
    // Dump ids have whole seconds: the second dump of PLAIN needs a later one.
    await new Promise((r) => setTimeout(r, 1100));
    await makeDumps(bucket, [PLAIN], { publicKeys: keys, recipients }, { trigger: 'manual' });
    bag = await startBag(
      bagEnv(bucket, {
        ...services().pgEnv,
        DUMP_BAG_PUBLIC_KEYS: keys,
        DUMP_BAG_RECIPIENTS: recipients,
        DUMP_BAG_KEEP_MIN: '1',
        DUMP_BAG_URL_EXPIRY_SECONDS: '600',
      }),
    );
    stored = (await (await fetch(`${bag.url}/dumps`)).json()).dumps;
  });

  afterAll(async () => {
    await bag?.close();
  });

  it('GET /dumps lists every recorded dump newest first, with the recorded fields and expiresAt', async () => {
    const response = await fetch(`${bag.url}/dumps`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { dumps } = (await response.json()) as { dumps: ListedDump[] };
    const catalog = await listDumps(s3Client(), bucket);
    expect(dumps.map(({ expiresAt: _, signatureState: __, ...record }) => record)).toEqual(catalog);
    expect(dumps.map((d) => d.signatureState)).toEqual(dumps.map(() => 'valid'));
    expect(dumps.map((d) => d.database).sort()).toEqual([ODD, PLAIN, PLAIN].sort());
    expect([...dumps.map((d) => d.id)]).toEqual([...dumps.map((d) => d.id)].sort().reverse());
    for (const d of dumps) {
      expect(Object.keys(d)).toEqual(
        expect.arrayContaining([
          'database',
          'id',
          'key',
          'createdAt',
          'trigger',
          'encryption',
          'recipients',
          'pgDumpVersion',
          'serverVersion',
          'compression',
          'sha256',
          'bytes',
          'expiresAt',
        ]),
      );
      expect(d.recipients.map((r) => r.fingerprint).sort()).toEqual(
        [alice.fingerprint, bob.fingerprint].sort(),
      );
    }
    // keepMin 1: the newest of each database stays; PLAIN's older, scheduled dump goes after 30 days.
    const plain = dumps.filter((d) => d.database === PLAIN);
    expect(plain.map((d) => d.trigger)).toEqual(['manual', 'schedule']);
    expect(plain[0]?.expiresAt).toBeNull();
    const older = plain[1] as ListedDump;
    expect(new Date(older.expiresAt as string).getTime()).toBe(
      new Date(
        `${older.id.replace(/^(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)-(\d{3})-[0-9a-f]{8}$/, '$1-$2-$3T$4:$5:$6.$7Z')}`,
      ).getTime() +
        30 * DAY_MS,
    );
  });

  it('GET /dumps?database= filters by an encoded name', async () => {
    const response = await fetch(`${bag.url}/dumps?database=${encodeURIComponent(ODD)}`);
    expect(response.status).toBe(200);
    const { dumps } = (await response.json()) as { dumps: ListedDump[] };
    expect(dumps.map((d) => d.database)).toEqual([ODD]);
  });

  it('GET /dumps/{database}/{id|latest} returns one dump', async () => {
    const latest = await fetch(`${bag.url}${dumpPath(ODD, 'latest')}`);
    expect(latest.status).toBe(200);
    const odd = (await latest.json()) as ListedDump;
    expect(odd.database).toBe(ODD);
    expect(odd).toEqual(stored.find((d) => d.database === ODD));

    const older = stored.filter((d) => d.database === PLAIN)[1] as ListedDump;
    const byId = await fetch(`${bag.url}${dumpPath(PLAIN, older.id)}`);
    expect(await byId.json()).toEqual(older);
  });

  it('GET /dumps/{database}/{id}/url presigns the stored object, with its expiry', async () => {
    const before = Date.now();
    const response = await fetch(`${bag.url}${dumpPath(ODD, 'latest', '/url')}`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { url: string; expiresAt: string };
    expect(Object.keys(body).sort()).toEqual(['expiresAt', 'url']);
    const expires = new Date(body.expiresAt).getTime();
    expect(expires).toBeGreaterThanOrEqual(before + 600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 600_000 + 1000);
    const url = new URL(body.url);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('600');
    const record = stored.find((d) => d.database === ODD) as ListedDump;
    expect(url.pathname).toBe(`/${bucket}/${record.key.split('/').map(encodePathSegment).join('/')}`);

    const download = Buffer.from(await (await fetch(body.url)).arrayBuffer());
    expect(download.equals(await getObjectBytes(s3Client(), bucket, record.key))).toBe(true);
    expect(sha256(download)).toBe(record.sha256);
  });

  it('GET /keys serves every key, each after a # comment, and GnuPG imports them; /recipients resolve there', async () => {
    const keys = await fetch(`${bag.url}/keys`);
    expect(keys.status).toBe(200);
    expect(keys.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const text = await keys.text();
    const blocks = text.split('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    expect(blocks).toHaveLength(4);
    for (const p of [alice, bob, carol]) {
      expect(text).toContain(
        `# ${p.name} <${p.email}> ${p.fingerprint}\n-----BEGIN PGP PUBLIC KEY BLOCK-----`,
      );
    }

    // The older design's users' very lines, through a shell and curl (asynchronously: the bag runs in this process).
    const home = tempDir('dump-bag-gnupg-');
    await run('bash', ['-c', `curl -s "$BAG/keys" | gpg --batch --import`], {
      env: { ...process.env, BAG: bag.url, GNUPGHOME: home },
    });
    const listed = gpg(home, ['--with-colons', '--list-keys']);
    const fingerprints = [...listed.matchAll(/^fpr:::::::::([0-9A-F]{40}):/gm)].map((m) => m[1]);
    for (const p of [alice, bob, carol]) expect(fingerprints).toContain(p.fingerprint);

    const recipients = (
      await run('bash', ['-c', 'RECIPIENTS=$(curl -s "$BAG/recipients"); printf %s "$RECIPIENTS"'], {
        env: { ...process.env, BAG: bag.url },
      })
    ).stdout;
    expect(recipients.split(',').sort()).toEqual([alice.fingerprint, bob.fingerprint].sort());
    for (const entry of recipients.split(',')) {
      expect(gpg(home, ['--with-colons', '--list-keys', entry])).toContain(`fpr:::::::::${entry}:`);
    }
    // And gpg --recipient takes them: encrypt to both and check who the message is for.
    const encrypted = execFileSync(
      'gpg',
      [
        '--homedir',
        home,
        '--batch',
        '--trust-model',
        'always',
        '--encrypt',
        ...recipients.split(',').flatMap((r) => ['--recipient', r]),
      ],
      { input: 'hello' },
    );
    const packets = execFileSync(
      'bash',
      ['-c', 'gpg --homedir "$1" --batch --list-packets 2>/dev/null; exit 0', '_', home],
      {
        input: encrypted,
      },
    ).toString();
    expect((packets.match(/:pubkey enc packet:/g) ?? []).length).toBe(2);
  });

  it('another bag can take its keys and recipients from this one by URL', async () => {
    const keys = await loadKeys(`${bag.url}/keys`);
    expect(keys.map((k) => k.fingerprint).sort()).toEqual(
      [alice.fingerprint, bob.fingerprint, carol.fingerprint].sort(),
    );
  });

  it('GET / serves the status page with every name escaped', async () => {
    const response = await fetch(`${bag.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toMatch(/script-src 'nonce-[^']+'/);
    const html = await response.text();
    expect(html).toContain(`<h2>api é &#34;q&#34; a/b ?x=%41 ${suffix}</h2>`);
    expect(html).not.toContain(`"q"`);
    expect((html.match(/<tr class="dump"/g) ?? []).length).toBe(3);
  });

  it('POST /dumps/{database} answers 202 at once and the dump appears, marked manual; a second one meanwhile is 409', async () => {
    const path = `/dumps/${encodePathSegment(PLAIN)}`;
    // Dump ids have whole seconds; a dump in the same second as the last one would replace it.
    await new Promise((r) => setTimeout(r, 1100));
    const [first, second] = await Promise.all([
      fetch(`${bag.url}${path}`, { method: 'POST' }),
      new Promise((r) => setTimeout(r, 20)).then(() => fetch(`${bag.url}${path}`, { method: 'POST' })),
    ]);
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ database: PLAIN, trigger: 'manual', status: 'started' });
    expect(second.status).toBe(409);
    await bag.idle();
    const { dumps } = (await (
      await fetch(`${bag.url}/dumps?database=${encodeURIComponent(PLAIN)}`)
    ).json()) as {
      dumps: ListedDump[];
    };
    expect(dumps).toHaveLength(3);
    expect(dumps[0]?.trigger).toBe('manual');
    expect((dumps[0] as ListedDump).id > (stored[0] as ListedDump).id).toBe(true);
  });

  it('a cross-site POST is refused', async () => {
    const response = await rawRequest(bag.port, 'POST', `/dumps/${encodePathSegment(PLAIN)}`, {
      origin: 'http://evil.example',
    });
    expect(response.status).toBe(403);
  });

  it('records that are not JSON, of the wrong shape or too large are skipped: /dumps and the page keep working', async () => {
    const before = ((await (await fetch(`${bag.url}/dumps`)).json()) as { dumps: ListedDump[] }).dumps;
    const client = s3Client();
    const hostile = `api hostile ${suffix}`;
    const bodies = [
      '{not json',
      JSON.stringify({ database: 42, sha256: null }),
      `{"pad":"${'x'.repeat(100_000)}"}`,
    ];
    for (const [i, body] of bodies.entries()) {
      const key = dumpKey(hostile, `2026120${i + 1}-000000`, true);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'ciphertext' }));
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}.json`, Body: body }));
    }
    const listed = await fetch(`${bag.url}/dumps`);
    expect(listed.status).toBe(200);
    const { dumps } = (await listed.json()) as { dumps: ListedDump[] };
    expect(dumps.map((d) => d.key)).toEqual(before.map((d) => d.key));
    const page = await fetch(`${bag.url}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    for (const d of before) expect(html).toContain(d.id);
    expect(html).not.toContain('api hostile');
  });

  describe('hostile requests get 4xx, never 5xx and never a URL', () => {
    const latestOdd = () => `/dumps/${encodePathSegment(ODD)}`;
    const cases: [string, string, () => string, number][] = [
      ['encoded traversal', 'GET', () => '/dumps/..%2F..%2F..%2Fetc%2Fpasswd/latest', 404],
      ['encoded traversal to url', 'GET', () => '/dumps/..%2Fdumps/latest/url', 404],
      ['dot segments as-is', 'GET', () => '/dumps/../keys', 400],
      ['dot segment before url', 'GET', () => `${latestOdd()}/latest/../url`, 400],
      ['single dot segment', 'GET', () => '/dumps/./latest/url', 400],
      ['encoded NUL', 'GET', () => '/dumps/a%00b/latest', 400],
      ['encoded NUL in the id', 'GET', () => `${latestOdd()}/2020%000101-000000/url`, 400],
      ['overlong name (64 bytes)', 'GET', () => `/dumps/${'a'.repeat(64)}/latest`, 400],
      ['overlong multi-byte name', 'GET', () => `/dumps/${encodeURIComponent('é'.repeat(32))}/latest`, 400],
      ['very long path', 'GET', () => `/dumps/${'b'.repeat(6000)}/latest`, 400],
      ['broken percent-encoding', 'GET', () => '/dumps/%E0%A4%A/latest', 400],
      ['unknown id', 'GET', () => `${latestOdd()}/20200101-000000`, 404],
      ['unknown id, url', 'GET', () => `${latestOdd()}/20200101-000000/url`, 404],
      ['impossible date as id', 'GET', () => `${latestOdd()}/20261399-256199/url`, 400],
      ['not an id', 'GET', () => `${latestOdd()}/..%2F..%2Fsecret/url`, 400],
      ['unknown database', 'GET', () => '/dumps/no%20such%20db/latest/url', 404],
      ['empty database', 'GET', () => '/dumps//latest', 400],
      ['extra segment', 'GET', () => `${latestOdd()}/latest/url/more`, 400],
      ['unknown route', 'GET', () => '/admin', 404],
      ['unknown query parameter', 'GET', () => '/dumps?db=x', 400],
      ['repeated query parameter', 'GET', () => '/dumps?database=a&database=b', 400],
      ['NUL in the query', 'GET', () => '/dumps?database=a%00', 400],
      ['query on a route without any', 'GET', () => `${latestOdd()}/latest/url?expires=99999`, 400],
      ['DELETE a dump', 'DELETE', () => `${latestOdd()}/latest`, 405],
      ['PUT a dump', 'PUT', () => `${latestOdd()}/latest`, 405],
      ['POST to a dump', 'POST', () => `${latestOdd()}/latest/url`, 405],
      ['POST /keys', 'POST', () => '/keys', 405],
      ['DELETE /dumps', 'DELETE', () => '/dumps', 405],
      ['GET /dumps/{database}', 'GET', () => latestOdd(), 405],
      ['HEAD the page', 'HEAD', () => '/', 405],
      ['POST with a NUL name', 'POST', () => '/dumps/%00', 400],
    ];
    it.each(cases)('%s: %s', async (_name, method, path, status) => {
      const response = await rawRequest(bag.port, method, path());
      expect(response.status).toBe(status);
      expect(response.body).not.toMatch(/X-Amz-|https?:\/\//i);
      if (method !== 'HEAD') expect(JSON.parse(response.body)).toEqual({ error: expect.any(String) });
      if (status === 405) expect(response.headers.allow).toMatch(/^(GET|POST)$/);
    });

    it('a raw NUL byte in the request line is refused by the server', async () => {
      const { connect } = await import('node:net');
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(bag.port, '127.0.0.1', () => {
          socket.write(`GET /dumps/a\u0000b/latest HTTP/1.1\r\nHost: 127.0.0.1:${bag.port}\r\n\r\n`);
        });
        let data = '';
        socket.on('data', (c) => {
          data += c.toString();
        });
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(reply).toMatch(/^HTTP\/1\.1 4\d\d /);
    });

    it('a request naming another host is refused (no DNS rebinding onto serve)', async () => {
      const response = await rawRequest(bag.port, 'GET', '/dumps', { host: 'evil.example' });
      expect(response.status).toBe(403);
      expect(response.body).not.toContain('dumps/');
    });
  });
});
