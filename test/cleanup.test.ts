import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../functions/core/backup';
import { listDumps, writeRecord } from '../functions/core/catalog';
import { cleanupIncomplete, DEFAULT_CLEANUP_AGE_MS, parseDuration } from '../functions/core/cleanup';
import { dumpId, dumpKey, uniqueDumpId } from '../functions/core/naming';
import { backupTarget, bagEnv, runCli, uniqueSuffix } from './support/bag';
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
import { gpgDecrypt, gpgIdentity } from './support/gpg';
import { placeholderRecord } from './support/records';
import { tempDir } from './support/temp';

const suffix = uniqueSuffix();
const HOUR = 3_600_000;

describe('cleanup', () => {
  it('aborts uploads and removes unrecorded dumps under dumps/, leaving complete dumps and everything else', async () => {
    const client = s3Client();
    const bucket = await freshBucket();
    const id = dumpId(new Date(Date.now() - 3_600_000));
    const complete = dumpKey('db one', id, true);
    const orphan = dumpKey('db two', id, true);
    const record = placeholderRecord({ database: 'db one', id, key: complete, encryption: 'gpg' });
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: complete, Body: 'x' }));
    await writeRecord(client, bucket, record);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: orphan, Body: 'x' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'elsewhere/file', Body: 'x' }));
    const killed = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: dumpKey('db three', id, true) }),
    );
    await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: dumpKey('db three', id, true),
        UploadId: killed.UploadId,
        PartNumber: 1,
        Body: Buffer.alloc(1024),
      }),
    );
    expect(await openUploads(client, bucket)).toHaveLength(1);

    // A run still under way (younger than the threshold) is spared.
    const spared = await cleanupIncomplete(client, bucket, { olderThanMs: 2 * 3_600_000 });
    expect(spared.deletedOrphans).toEqual([]);
    expect(spared.abortedUploads).toEqual([]);

    // A day on, with the default threshold (24 hours), they are a killed run's leftovers.
    const result = await cleanupIncomplete(client, bucket, { now: new Date(Date.now() + 25 * 3_600_000) });
    expect(result.abortedUploads.map((u) => u.key)).toEqual([dumpKey('db three', id, true)]);
    expect(result.deletedOrphans).toEqual([orphan]);
    expect(await openUploads(client, bucket)).toEqual([]);
    expect(await allKeys(client, bucket)).toEqual([complete, `${complete}.json`, 'elsewhere/file'].sort());
    expect((await listDumps(client, bucket)).map((d) => d.key)).toEqual([complete]);
  });

  it("ages leftovers by the upload's Initiated and the object's LastModified, never by the time in the key", async () => {
    const client = s3Client();
    const bucket = await freshBucket();
    // Keys whose ids say 2020, written just now: a run started long ago, or a clock that was wrong.
    const orphan = dumpKey('old id', '20200101-000000', true);
    const uploading = dumpKey('old id', uniqueDumpId(new Date('2020-01-01T00:00:01Z')), true);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: orphan, Body: 'x' }));
    await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: uploading }));

    const now = await cleanupIncomplete(client, bucket);
    expect(now).toEqual({ abortedUploads: [], deletedOrphans: [] });
    const within = await cleanupIncomplete(client, bucket, { now: new Date(Date.now() + 23 * HOUR) });
    expect(within).toEqual({ abortedUploads: [], deletedOrphans: [] });
    expect(await allKeys(client, bucket)).toEqual([orphan]);
    expect(await openUploads(client, bucket)).toEqual([uploading]);

    const later = await cleanupIncomplete(client, bucket, { now: new Date(Date.now() + 25 * HOUR) });
    expect(later.deletedOrphans).toEqual([orphan]);
    expect(later.abortedUploads.map((u) => u.key)).toEqual([uploading]);
    expect(await allKeys(client, bucket)).toEqual([]);
    expect(await openUploads(client, bucket)).toEqual([]);
  });

  it('durations: 30m, 24h, 7d, 90s; a bare number or anything else is refused, naming the fix', () => {
    expect(parseDuration('30m')).toBe(30 * 60_000);
    expect(parseDuration('24h')).toBe(DEFAULT_CLEANUP_AGE_MS);
    expect(parseDuration('7d')).toBe(7 * 24 * HOUR);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('0m')).toBe(0);
    for (const bad of ['5', '', '-1h', '1.5h', '2w', '1h30m', 'soon']) {
      expect(() => parseDuration(bad), bad).toThrow(/e\.g\. 30m, 24h or 7d/);
    }
  });

  it('the command takes --older-than as a duration (default 24h) and refuses a bare number', async () => {
    const client = s3Client();
    const bucket = await freshBucket();
    const orphan = dumpKey('cli', '20200101-000000', true);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: orphan, Body: 'x' }));
    const bare = await runCli(['cleanup', '--older-than', '60'], bagEnv(bucket));
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('"60" is no duration: give a whole number and a unit, e.g. 30m, 24h or 7d');
    const byDefault = await runCli(['cleanup', '--json'], bagEnv(bucket));
    expect(byDefault.code).toBe(0);
    expect(JSON.parse(byDefault.stdout.toString())).toEqual({ abortedUploads: [], deletedOrphans: [] });
    expect(await allKeys(client, bucket)).toEqual([orphan]);
  });

  it('with its defaults during a running backup, leaves it whole: the backup completes and verifies', async () => {
    const database = `cleanup running ${suffix}`;
    // About 7.5 MB stored (hex bytea from random bytes, compressed): two 5 MiB parts, so the upload is open for a while.
    await createDatabase(
      database,
      `CREATE TABLE t (id int PRIMARY KEY, blob bytea);
       INSERT INTO t SELECT i, decode(md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) || md5((i + 3)::text), 'hex')
         FROM generate_series(1, 250000) i;`,
    );
    const gpg = gpgIdentity('cv25519', `cleanup-${suffix}@example.com`);
    const keys = join(tempDir('dump-bag-keys-'), 'key.asc');
    writeFileSync(keys, gpg.publicKey);
    const client = s3Client();
    const bucket = await freshBucket();
    const backup = runBackup(
      { ...backupTarget(bucket), upload: { partSize: 5 * 1024 * 1024, concurrency: 1 } },
      {
        config: { databases: [database], exclude: [], encryption: 'gpg', publicKeys: keys },
        trigger: 'manual',
      },
    );
    let open: string[] = [];
    const deadline = Date.now() + 60_000;
    while (open.length === 0 && Date.now() < deadline) {
      open = await openUploads(client, bucket);
      if (open.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(open).toHaveLength(1);
    const cleaned = await cleanupIncomplete(client, bucket);
    expect(cleaned).toEqual({ abortedUploads: [], deletedOrphans: [] });

    const summary = await backup;
    expect(summary.results.map((r) => [r.status, r.error])).toEqual([['ok', undefined]]);
    const [dump] = await listDumps(client, bucket, database);
    expect(dump?.key).toBe(open[0]);
    const stored = await getObjectBytes(client, bucket, dump?.key as string);
    // More than one 5 MiB part: the upload was a multipart one, open while cleanup ran.
    expect(stored.length).toBeGreaterThan(5 * 1024 * 1024);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(dump?.sha256);
    const restored = `restored cleanup ${suffix}`;
    await restoreInto(restored, await gpgDecrypt(gpg.home, stored));
    const rows = "SELECT count(*) AS n, md5(string_agg(blob::text, ',' ORDER BY id)) AS h FROM t";
    expect(await snapshot(restored, rows)).toBe(await snapshot(database, rows));
  });
});
