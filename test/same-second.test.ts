import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dumpPath } from '../functions/api/paths';
import { runBackup } from '../functions/core/backup';
import { type DumpRecord, listDumps } from '../functions/core/catalog';
import { parseDumpKey } from '../functions/core/naming';
import {
  backupTarget,
  bagEnv,
  makeDumps,
  type RunningBag,
  rawRequest,
  runCli,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import {
  allKeys,
  createDatabase,
  freshBucket,
  getObjectBytes,
  restoreInto,
  s3Client,
  snapshot,
} from './support/env';
import { type GpgIdentity, gpgDecrypt, gpgIdentity } from './support/gpg';

const suffix = uniqueSuffix();
const TWICE = `same second ${suffix}`;
const ROWS = 'SELECT id, note FROM t ORDER BY id';
const fill = (tag: string) =>
  `CREATE TABLE t (id int PRIMARY KEY, note text);
   INSERT INTO t SELECT i, ${`'${tag.replace(/'/g, "''")}'`} || md5(i::text) FROM generate_series(1, 5000) i;`;

describe('two backups of one database in the same second', () => {
  afterAll(() => {
    vi.useRealTimers();
  });

  it('both survive under their own keys, and both verify and restore', async () => {
    const gpg = gpgIdentity('cv25519', `twice-${suffix}@example.com`);
    const keys = join(tempDir('dump-bag-keys-'), 'key.asc');
    writeFileSync(keys, gpg.publicKey);
    await createDatabase(TWICE, fill(TWICE));
    const bucket = await freshBucket();
    // One clock reading for both: the same second and the same millisecond, as a double click could give.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date());
    const run = () =>
      runBackup(backupTarget(bucket), {
        config: { databases: [TWICE], exclude: [], encryption: 'gpg', publicKeys: keys },
        trigger: 'manual',
      });
    const [a, b] = await Promise.all([run(), run()]);
    vi.useRealTimers();
    expect([a.error, b.error]).toEqual([undefined, undefined]);
    const results = [...a.results, ...b.results];
    expect(results.map((r) => [r.status, r.error])).toEqual([
      ['ok', undefined],
      ['ok', undefined],
    ]);
    const [ka, kb] = results.map((r) => r.key as string);
    expect(ka).not.toBe(kb);
    const [ia, ib] = [parseDumpKey(ka as string)?.id, parseDumpKey(kb as string)?.id];
    // Same UTC second and millisecond, told apart by the random part.
    expect(ia?.slice(0, 19)).toBe(ib?.slice(0, 19));

    const dumps = await listDumps(s3Client(), bucket, TWICE);
    expect(dumps.map((d) => d.key).sort()).toEqual([ka, kb].sort());
    for (const dump of dumps) {
      const stored = await getObjectBytes(s3Client(), bucket, dump.key);
      expect(stored.length).toBe(dump.bytes);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(dump.sha256);
      const archive = await gpgDecrypt(gpg.home, stored);
      const restored = `restored ${dump.id}`;
      await restoreInto(restored, archive);
      expect(await snapshot(restored, ROWS)).toBe(await snapshot(TWICE, ROWS));
    }
    // The two dumps and their records; the run's globals dump lives apart, under globals/.
    expect((await allKeys(s3Client(), bucket)).filter((k) => k.startsWith('dumps/')).length).toBe(4);
  });
});

describe('databases named . and ..', () => {
  let bucket: string;
  let bag: RunningBag;
  let gpg: GpgIdentity;

  beforeAll(async () => {
    gpg = gpgIdentity('cv25519', `dots-${suffix}@example.com`);
    const publicKeys = join(tempDir('dump-bag-keys-'), 'key.asc');
    writeFileSync(publicKeys, gpg.publicKey);
    await createDatabase('..', fill('two dots'));
    await createDatabase('.', fill('one dot'));
    bucket = await freshBucket();
    await makeDumps(bucket, ['..', '.'], { publicKeys });
    bag = await startBag(bagEnv(bucket, { DUMP_BAG_PUBLIC_KEYS: publicKeys }));
  });

  afterAll(async () => {
    await bag?.close();
  });

  it('are stored with no key segment . or .., listed, downloaded by presigned URL, and restore to the same rows', async () => {
    const keys = await allKeys(s3Client(), bucket);
    for (const key of keys) expect(key.split('/'), key).not.toContain('..');
    for (const key of keys) expect(key.split('/'), key).not.toContain('.');
    expect(keys.filter((k) => k.startsWith('dumps/%2E%2E/%2E%2E-'))).toHaveLength(2);
    expect(keys.filter((k) => k.startsWith('dumps/%2E/%2E-'))).toHaveLength(2);

    const list = await runCli(['list', '--json'], { DUMP_BAG_URL: bag.url });
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout.toString()) as { database: string }[];
    expect(listed.map((d) => d.database).sort()).toEqual(['.', '..']);

    for (const name of ['..', '.']) {
      const [dump] = (await (await fetch(`${bag.url}/dumps?database=${encodeURIComponent(name)}`)).json())
        .dumps as DumpRecord[];
      expect(dump?.database).toBe(name);
      // The path as curl sends it: WHATWG URL parsers (fetch) resolve even %2E%2E as a dot segment.
      const answer = await rawRequest(bag.port, 'GET', `${dumpPath(name, 'latest')}/url`);
      expect(answer.status).toBe(200);
      const { url } = JSON.parse(answer.body) as { url: string };
      // The presigned URL keeps the encoded dots, so the download reaches the object.
      expect(new URL(url).pathname).toContain('/dumps/%252E');
      const stored = Buffer.from(await (await fetch(url)).arrayBuffer());
      expect(createHash('sha256').update(stored).digest('hex')).toBe(dump?.sha256);
      const restored = `restored dots ${name.length} ${suffix}`;
      await restoreInto(restored, await gpgDecrypt(gpg.home, stored));
      expect(await snapshot(restored, ROWS)).toBe(await snapshot(name, ROWS));
    }
  });

  it('come back through the command line: `dump-bag get .. latest` and `get . <id>`, the stored bytes, restoring to the same rows', async () => {
    const dir = tempDir();
    for (const name of ['..', '.']) {
      const [dump] = (await (await fetch(`${bag.url}/dumps?database=${encodeURIComponent(name)}`)).json())
        .dumps as DumpRecord[];
      const out = join(dir, `dots-${name.length}.pg.gpg`);
      const which = name === '..' ? 'latest' : (dump?.id ?? '');
      const got = await runCli(['get', name, which, '--encrypted', '-o', out], { DUMP_BAG_URL: bag.url });
      expect(got.stderr, got.stderr).not.toMatch(/error/i);
      expect(got.code).toBe(0);
      const stored = readFileSync(out);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(dump?.sha256);
      const restored = `restored cli dots ${name.length} ${suffix}`;
      await restoreInto(restored, await gpgDecrypt(gpg.home, stored));
      expect(await snapshot(restored, ROWS)).toBe(await snapshot(name, ROWS));
    }
  });
});
