import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rekeyTargetFromEnv } from '../cli/commands/rekey';
import { listDumps } from '../functions/core/catalog';
import { INTENT_PREFIX, type RekeyResult, rekeyDumps } from '../functions/core/rekey';
import { MIN_PART } from '../functions/core/rekey-object';
import { bagEnv, makeDumps, type RunningBag, runCli, startBag, tempDir, uniqueSuffix } from './support/bag';
import {
  allKeys,
  createDatabase,
  freshBucket,
  getObjectBytes,
  openUploads,
  restoreInto,
  s3Client,
  snapshot,
} from './support/env';
import { type GpgIdentity, gpgDecrypt, gpgIdentity } from './support/gpg';
import { testPublicKeyFile } from './support/signing';

const suffix = uniqueSuffix();
const SMALL = `rekey small ${suffix}`;
const BIG = `rekey big ${suffix}`;
const ROWS = 'SELECT id, md5(payload) FROM t ORDER BY id';

/** Random bytes pg_dump cannot shrink below half (bytea goes out as hex): about 12 MiB stored for BIG. */
function fill(rows: number): string {
  return `CREATE TABLE t (id int PRIMARY KEY, payload bytea);
          INSERT INTO t SELECT i, decode(md5(random()::text) || md5(random()::text) || md5(random()::text)
            || md5(random()::text), 'hex') FROM generate_series(1, ${rows}) i;`;
}

function secretKeyFile(who: GpgIdentity): string {
  const file = join(tempDir('dump-bag-rekey-'), 'secret.asc');
  const armored = execFileSync('gpg', [
    '--homedir',
    who.home,
    '--batch',
    '--armor',
    '--export-secret-keys',
    who.fingerprint,
  ]);
  writeFileSync(file, armored, { mode: 0o600 });
  return file;
}

describe('rekey: a leaver loses the stored dumps too', () => {
  let rsa: GpgIdentity;
  let curve: GpgIdentity;
  let curveSecret: string;
  let bucket: string;
  let bag: RunningBag | undefined;
  const keys = tempDir('dump-bag-rekey-keys-');

  beforeAll(async () => {
    rsa = gpgIdentity('rsa', 'rekey-rsa@example.com');
    curve = gpgIdentity('cv25519', 'rekey-curve@example.com');
    curveSecret = secretKeyFile(curve);
    writeFileSync(join(keys, 'both.asc'), `${rsa.publicKey}\n${curve.publicKey}`);
    writeFileSync(join(keys, 'curve.asc'), curve.publicKey);
    await createDatabase(SMALL, fill(200));
    await createDatabase(BIG, fill(200_000));
    bucket = await freshBucket();
    await makeDumps(bucket, [SMALL, BIG], { publicKeys: join(keys, 'both.asc') });
  }, 240_000);

  afterAll(async () => {
    await bag?.close();
  });

  const target = async (extra: Record<string, string> = {}) => ({
    ...(await rekeyTargetFromEnv(
      bagEnv(bucket, {
        DUMP_BAG_PUBLIC_KEYS: join(keys, 'curve.asc'),
        DUMP_BAG_SECRET_KEY: curveSecret,
        ...extra,
      }),
    )),
    copyPartBytes: MIN_PART,
  });

  it('dry run names who is removed per dump and changes nothing', async () => {
    const before = await allKeys(s3Client(), bucket);
    const results = await rekeyDumps({ ...(await target()), dryRun: true });
    expect(results.map((r) => [r.database, r.status]).sort()).toEqual(
      [
        [BIG, 'would-rekey'],
        [SMALL, 'would-rekey'],
      ].sort(),
    );
    for (const r of results) {
      expect(r.removed).toEqual([expect.stringContaining(rsa.fingerprint)]);
      expect(r.added).toEqual([]);
    }
    expect(await allKeys(s3Client(), bucket)).toEqual(before);
  });

  it('a run dying between the new object and its record is finished by the next; then only the remaining reader decrypts', async () => {
    const s3 = s3Client();
    const old = await listDumps(s3, bucket);
    const oldBig = old.find((d) => d.database === BIG);
    expect(oldBig?.bytes).toBeGreaterThan(2 * MIN_PART);

    // First run: dies right after the big dump's new object is stored and checked.
    const first = await rekeyDumps({
      ...(await target()),
      afterObject: (key) => {
        if (key === oldBig?.key) throw new Error('killed');
      },
    });
    const died = first.find((r) => r.database === BIG) as RekeyResult;
    expect(died).toMatchObject({ status: 'failed', error: 'killed' });
    // The state it left: the object is new, its record still the old one, the intent kept.
    const half = await getObjectBytes(s3, bucket, oldBig?.key as string);
    expect(createHash('sha256').update(half).digest('hex')).not.toBe(oldBig?.sha256);
    expect(await allKeys(s3, bucket)).toContain(`${INTENT_PREFIX}${oldBig?.key}.json`);

    const second = await rekeyDumps(await target());
    expect(second.map((r) => [r.database, r.status]).sort()).toEqual(
      [
        [BIG, 'rekeyed'],
        [SMALL, 'unchanged'],
      ].sort(),
    );
    const fresh = await rekeyDumps(await target());
    expect(fresh.every((r) => r.status === 'unchanged')).toBe(true);

    expect((await allKeys(s3, bucket)).filter((k) => k.startsWith(INTENT_PREFIX))).toEqual([]);
    expect(await openUploads(s3, bucket)).toEqual([]);
    const now = await listDumps(s3, bucket);
    expect(now.map((d) => d.key).sort()).toEqual(old.map((d) => d.key).sort());
    for (const record of now) {
      expect(record.recipients.map((r) => r.fingerprint)).toEqual([curve.fingerprint]);
      expect((record as { rekeyedAt?: string }).rekeyedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      const stored = await getObjectBytes(s3, bucket, record.key);
      expect(stored.length).toBe(record.bytes);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(record.sha256);
      await expect(gpgDecrypt(rsa.home, stored)).rejects.toThrow(/gpg exited 2/);
      const plain = await gpgDecrypt(curve.home, stored);
      const restored = `rekey restored ${record.database.slice(6, 11)} ${suffix}`;
      await restoreInto(restored, plain);
      expect(await snapshot(restored, ROWS)).toBe(await snapshot(record.database, ROWS));
    }
  }, 240_000);

  it('the small dump is put whole, the big one copied by S3 in parts', async () => {
    const s3 = s3Client();
    // Re-key back to both readers and look at how each object was built.
    const results = await rekeyDumps({
      ...(await target({ DUMP_BAG_PUBLIC_KEYS: join(keys, 'both.asc') })),
    });
    const bigResult = results.find((r) => r.database === BIG) as RekeyResult;
    const smallResult = results.find((r) => r.database === SMALL) as RekeyResult;
    expect(bigResult.status).toBe('rekeyed');
    expect(bigResult.added).toEqual([expect.stringContaining(rsa.fingerprint)]);
    // All but the first 5 MiB of the body went by UploadPartCopy (two copy parts of 5 MiB and the rest).
    expect(bigResult.copied).toBeGreaterThan(MIN_PART);
    expect(smallResult.copied).toBe(0);
    for (const record of await listDumps(s3, bucket)) {
      const stored = await getObjectBytes(s3, bucket, record.key);
      const fromRsa = await gpgDecrypt(rsa.home, stored);
      expect(fromRsa.equals(await gpgDecrypt(curve.home, stored))).toBe(true);
    }
  }, 240_000);

  it('verify passes on the re-keyed dumps through the bag', async () => {
    bag = await startBag(bagEnv(bucket));
    const result = await runCli(['verify', '--key', curveSecret, '--url', bag.url], {
      ...bagEnv(bucket),
      DUMP_BAG_SIGNING_KEY: await testPublicKeyFile(),
    });
    expect(result.stderr).not.toMatch(/FAILED/);
    expect(result.code).toBe(0);
    expect(result.stdout.toString()).toMatch(/ok .*sha256 ok.*decrypted, integrity ok/);
  }, 120_000);
});
