import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DumpRecord } from '../functions/core/catalog';
import type { ListedDump } from '../functions/core/listing';
import { signRecord } from '../functions/core/signing';
import {
  bagEnv,
  type KeyPair,
  keyFolder,
  keyPair,
  makeDumps,
  type RunningBag,
  runCli,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import {
  createDatabase,
  emptyDatabase,
  freshBucket,
  getObjectBytes,
  publicTables,
  s3Client,
  services,
} from './support/env';
import { testSigner } from './support/signing';

const suffix = uniqueSuffix();
const GOOD = `release good ${suffix}`;
const CHANGED = `release changed ${suffix}`;
const REWRITTEN = `release rewritten ${suffix}`;
const COMPRESSED = `release compressed ${suffix}`;
const KEY_BOMB = `release key bomb ${suffix}`;

function fill(rows: number): string {
  return `CREATE TABLE t (id int PRIMARY KEY, note text);
          INSERT INTO t SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, ${rows}) i;`;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('get releases nothing before the SHA-256 and the MDC held', () => {
  let bucket: string;
  let bag: RunningBag;
  let bob: KeyPair;
  let keyFile: string;
  let env: Record<string, string>;
  let dumps: ListedDump[];
  let compressedPlain: Buffer;
  const record = (database: string) => dumps.find((d) => d.database === database) as ListedDump;

  /** Replaces a dump's stored bytes and re-records their size and SHA-256, as a writer to the bucket could. */
  async function replace(database: string, bytes: Buffer): Promise<void> {
    const s3 = s3Client();
    const r = record(database);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: r.key, Body: bytes }));
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${r.key}.json`,
        // Re-signed with the bag's key (as a thief of that key could), so the checks after the signature are reached.
        Body: JSON.stringify(
          await signRecord(
            {
              ...r,
              expiresAt: undefined,
              signatureState: undefined,
              sha256: sha256(bytes),
              bytes: bytes.length,
            } as DumpRecord,
            testSigner(),
          ),
        ),
      }),
    );
  }

  beforeAll(async () => {
    bob = await keyPair('Bob Builder', `bob-${suffix}@example.com`);
    keyFile = join(tempDir('dump-bag-secrets-'), 'bob.secret.asc');
    writeFileSync(keyFile, bob.secretKey, { mode: 0o600 });
    const publicKeys = keyFolder([bob]);
    await Promise.all(
      [GOOD, CHANGED, REWRITTEN, COMPRESSED, KEY_BOMB].map((db) => createDatabase(db, fill(30_000))),
    );
    bucket = await freshBucket();
    await makeDumps(bucket, [GOOD, CHANGED, REWRITTEN, COMPRESSED, KEY_BOMB], { publicKeys });
    bag = await startBag(bagEnv(bucket, { DUMP_BAG_PUBLIC_KEYS: publicKeys }));
    env = { ...services().pgEnv, DUMP_BAG_URL: bag.url, DUMP_BAG_SECRET_KEY: keyFile };
    dumps = (await (await fetch(`${bag.url}/dumps`)).json()).dumps;

    const s3 = s3Client();
    // A flipped byte, record untouched: the SHA-256 tells.
    const changed = await getObjectBytes(s3, bucket, record(CHANGED).key);
    changed[changed.length >> 1] = (changed[changed.length >> 1] as number) ^ 0x01;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: record(CHANGED).key, Body: changed }));
    // A flipped ciphertext byte in the middle, re-recorded: only the MDC, at the very end, tells; the old
    // reader had released about half the archive by then.
    const rewritten = await getObjectBytes(s3, bucket, record(REWRITTEN).key);
    rewritten[rewritten.length >> 1] = (rewritten[rewritten.length >> 1] as number) ^ 0x01;
    await replace(REWRITTEN, rewritten);
    // A compressed message (openpgp.js, zlib): valid, but not the shape Dump Bag writes.
    compressedPlain = Buffer.from(`PGDMP not really, compressible ${'x'.repeat(200_000)}`);
    const compressed = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: compressedPlain }),
      encryptionKeys: await openpgp.readKey({ armoredKey: bob.publicKey }),
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.zlib },
      format: 'binary',
    });
    await replace(COMPRESSED, Buffer.from(compressed));
    // A public-key packet declaring 1 GiB, in an object of 2 MiB.
    const bomb = Buffer.alloc(2 * 1024 * 1024);
    bomb.set([0xc1, 0xff, 0x40, 0, 0, 0]);
    await replace(KEY_BOMB, bomb);
  });

  afterAll(async () => {
    await bag?.close();
  });

  for (const [name, database, error] of [
    ['a flipped byte', CHANGED, /do not match the recorded SHA-256/],
    ['a flipped ciphertext byte with a re-recorded SHA-256', REWRITTEN, /modification detected/i],
  ] as const) {
    it(`${name}: nothing on standard output, no file, an empty target database, no work file`, async () => {
      const work = tempDir('dump-bag-work-');
      const dir = tempDir();
      const withWork = { ...env, DUMP_BAG_WORK_DIR: work };
      const stdout = await runCli(['get', database, '-o', '-'], withWork);
      expect(stdout.stderr).toMatch(error);
      expect(stdout.code).toBe(1);
      expect(stdout.stdout.length).toBe(0);

      const file = await runCli(['get', database, '-o', join(dir, 'x.pgdump')], env);
      expect(file.stderr).toMatch(error);
      expect(readdirSync(dir)).toEqual([]);

      const target = `release target ${suffix} ${database === CHANGED ? 'c' : 'r'}`;
      await emptyDatabase(target);
      const restore = await runCli(['get', database, '--restore', `dbname='${target}'`], withWork);
      expect(restore.stderr).toMatch(error);
      expect(restore.code).toBe(1);
      expect(await publicTables(target)).toEqual([]);
      expect(readdirSync(work)).toEqual([]);
    });
  }

  it('a good dump: same bytes as --stream (which warns), and no work file left', async () => {
    const work = tempDir('dump-bag-work-');
    const verified = await runCli(['get', GOOD, '-o', '-'], { ...env, DUMP_BAG_WORK_DIR: work });
    expect(verified.code).toBe(0);
    expect(verified.stderr).not.toContain('--stream');
    expect(verified.stdout.subarray(0, 5).toString()).toBe('PGDMP');
    expect(readdirSync(work)).toEqual([]);
    const streamed = await runCli(['get', GOOD, '-o', '-', '--stream'], env);
    expect(streamed.code).toBe(0);
    expect(streamed.stderr).toMatch(/--stream releases plaintext before the SHA-256/);
    expect(streamed.stdout.equals(verified.stdout)).toBe(true);
  });

  it('SIGTERM while the plaintext is being released removes the work file', async () => {
    const work = tempDir('dump-bag-work-');
    const child = spawn(
      process.execPath,
      [join(process.cwd(), 'bin', 'dump-bag.js'), 'get', GOOD, '-o', '-'],
      {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, DUMP_BAG_WORK_DIR: work },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Standard output is never read: the release blocks on the full pipe, with the work file in place.
    await new Promise((resolve) => child.stdout.once('readable', resolve));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(readdirSync(work)).toHaveLength(1);
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(readdirSync(work)).toEqual([]);
  });

  it('a compressed message is refused without --foreign, and read with it', async () => {
    const dir = tempDir();
    const refused = await runCli(['get', COMPRESSED, '-o', join(dir, 'c')], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /not in the shape Dump Bag writes \(a compressed or packed message.*--foreign/,
    );
    expect(readdirSync(dir)).toEqual([]);
    const foreign = await runCli(['get', COMPRESSED, '-o', join(dir, 'c'), '--foreign'], env);
    expect(foreign.code).toBe(0);
    expect(readFileSync(join(dir, 'c')).equals(compressedPlain)).toBe(true);
  });

  it('an object declaring a 1 GiB key packet is refused, naming the bound', async () => {
    const dir = tempDir();
    const result = await runCli(['get', KEY_BOMB, '-o', join(dir, 'k')], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/refused: a session key packet declares 1073741824 bytes, over the 65536/);
    expect(existsSync(join(dir, 'k'))).toBe(false);
  });
});
