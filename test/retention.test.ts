import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BackupTarget, dumpAndPrune, dumpDatabase } from '../functions/core/backup';
import { type DumpRecord, listDumps, writeRecord } from '../functions/core/catalog';
import type { RetentionPolicy } from '../functions/core/config';
import { dumpId, dumpKey } from '../functions/core/naming';
import { planRetention, pruneDatabase, RetentionError, withExpiry } from '../functions/core/retention';
import type { PruneResult } from '../functions/prune/handler';
import { allKeys, createDatabase, freshBucket, pgConnection, s3Client, services } from './support/env';
import { testSigner } from './support/signing';
import { tempDir } from './support/temp';

const DAY = 86_400_000;
const POLICY: RetentionPolicy = { retentionDays: 30, manualRetentionDays: 7, keepMin: 3 };

function record(database: string, daysAgo: number, trigger: DumpRecord['trigger'] = 'schedule'): DumpRecord {
  const created = new Date(Date.now() - daysAgo * DAY);
  const id = dumpId(created);
  return {
    database,
    id,
    key: dumpKey(database, id, true),
    createdAt: created.toISOString(),
    trigger,
    encryption: 'gpg',
    recipients: [],
    pgDumpVersion: '15.18',
    serverVersion: '15.18',
    compression: 'gzip:1',
    sha256: '0'.repeat(64),
    bytes: 3,
    seconds: 0.1,
  };
}

describe('planRetention', () => {
  const now = new Date();
  it('keeps the newest keepMin even when every dump is past retention', () => {
    const dumps = [40, 50, 60, 70, 80].map((d) => record('db', d));
    const plan = planRetention(dumps, POLICY, now);
    expect(plan.keep.map((d) => d.id)).toEqual(dumps.slice(0, 3).map((d) => d.id));
    expect(plan.remove.map((d) => d.id)).toEqual(dumps.slice(3).map((d) => d.id));
  });
  it('keeps everything younger than retention, beyond keepMin', () => {
    const dumps = [1, 2, 3, 4, 5, 29, 31].map((d) => record('db', d));
    const plan = planRetention(dumps, POLICY, now);
    expect(plan.remove.map((d) => d.id)).toEqual([dumps[6]?.id]);
  });
  it('manual dumps expire after manualRetentionDays; order comes from the key time, not input order', () => {
    const dumps = [
      record('db', 1),
      record('db', 2),
      record('db', 3),
      record('db', 8, 'manual'),
      record('db', 6, 'manual'),
    ];
    const plan = planRetention([...dumps].reverse(), POLICY, now);
    expect(plan.remove.map((d) => d.id)).toEqual([dumps[3]?.id]);
  });
  it('withExpiry: null among the newest keepMin, then key time + retention', () => {
    const dumps = [1, 2, 3, 4].map((d) => record('db', d));
    const listed = withExpiry(dumps, POLICY);
    expect(listed.slice(0, 3).map((d) => d.expiresAt)).toEqual([null, null, null]);
    const oldest = dumps[3] as DumpRecord;
    const expected = new Date(new Date(oldest.createdAt).getTime() + 30 * DAY);
    expected.setUTCMilliseconds(0);
    expect(listed[3]?.expiresAt).toBe(expected.toISOString());
  });
});

describe('retention against the bucket', () => {
  const DB = 'ret main';
  const OTHER = 'ret other';
  let scratch: string;

  beforeAll(async () => {
    scratch = tempDir('dump-bag-ret-');
    await createDatabase(DB, 'CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10);');
  });

  function target(bucket: string, pgDumpPath?: string): BackupTarget {
    return {
      s3: s3Client(),
      bucket,
      connection: pgConnection(),
      pgDump: { pgDumpPath },
      retention: POLICY,
      signer: testSigner(),
    };
  }

  /** Old dumps as earlier runs left them: the object and its record. */
  async function seed(bucket: string, dumps: DumpRecord[]): Promise<void> {
    for (const d of dumps) {
      await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: d.key, Body: 'old' }));
      await writeRecord(s3Client(), bucket, d);
    }
  }

  it("after a good dump deletes only that database's expired dumps, never below keepMin, nothing else", async () => {
    const bucket = await freshBucket();
    const old = [40, 41, 42, 43, 44].map((d) => record(DB, d));
    const others = [50, 60, 70, 80].map((d) => record(OTHER, d));
    await seed(bucket, [...old, ...others]);
    const unrelated = [
      'notes/readme.txt',
      `dumps/${encodeURIComponent(DB)}/stray-file.txt`,
      'dumps-archive/x.pg.gpg',
    ];
    for (const key of unrelated)
      await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'keep me' }));

    const result = await dumpAndPrune(target(bucket), {
      database: DB,
      server: { version: '15', major: 15 },
      encryption: { mode: 'none' },
      trigger: 'schedule',
    });
    expect(result.status).toBe('ok');
    // Kept: the new dump and the two newest old ones (keepMin 3); deleted: the three oldest.
    expect([...(result.pruned ?? [])].sort()).toEqual(
      old
        .slice(2)
        .map((d) => d.key)
        .sort(),
    );
    const left = await listDumps(s3Client(), bucket, DB);
    expect(left.map((d) => d.key)).toEqual([result.key, old[0]?.key, old[1]?.key]);
    expect((await listDumps(s3Client(), bucket, OTHER)).length).toBe(4);
    const keys = await allKeys(s3Client(), bucket);
    for (const key of unrelated) expect(keys).toContain(key);
    for (const d of old.slice(2)) {
      expect(keys).not.toContain(d.key);
      expect(keys).not.toContain(`${d.key}.json`);
    }
  });

  it('the dump alone (the Lambda dump step, whose role cannot delete) deletes nothing', async () => {
    const bucket = await freshBucket();
    await seed(
      bucket,
      [40, 41, 42, 43, 44].map((d) => record(DB, d)),
    );
    const before = await allKeys(s3Client(), bucket);
    const result = await dumpDatabase(target(bucket), {
      database: DB,
      server: { version: '15', major: 15 },
      encryption: { mode: 'none' },
      trigger: 'schedule',
    });
    expect(result.status).toBe('ok');
    expect(result.pruned).toBeUndefined();
    expect(await allKeys(s3Client(), bucket)).toEqual([...before, result.key, `${result.key}.json`].sort());
  });

  it('retention refuses to run unless the new dump is listed with its record, and then deletes nothing', async () => {
    const bucket = await freshBucket();
    const old = [40, 41, 42, 43, 44].map((d) => record(DB, d));
    await seed(bucket, old);
    const before = await allKeys(s3Client(), bucket);
    const missing = dumpKey(DB, dumpId(new Date()), true);
    await expect(pruneDatabase(s3Client(), bucket, DB, missing, POLICY)).rejects.toThrow(RetentionError);
    await expect(pruneDatabase(s3Client(), bucket, DB, missing, POLICY)).rejects.toThrow(
      /not listed with its record; nothing was deleted/,
    );
    // Another database's dump does not count either.
    const other = record(OTHER, 1);
    await seed(bucket, [other]);
    await expect(pruneDatabase(s3Client(), bucket, DB, other.key, POLICY)).rejects.toThrow(RetentionError);
    expect((await allKeys(s3Client(), bucket)).filter((k) => !k.includes(encodeURIComponent(OTHER)))).toEqual(
      before,
    );
  });

  it('the prune Lambda handler prunes after a good dump, and turns a bad event into a retentionError', async () => {
    const bucket = await freshBucket();
    const fresh = record(DB, 0);
    const old = [40, 41, 42, 43].map((d) => record(DB, d));
    await seed(bucket, [fresh, ...old]);
    const saved = { ...process.env };
    Object.assign(process.env, services().s3Env, {
      DUMP_BAG_BUCKET: bucket,
      DUMP_BAG_RETENTION_DAYS: '30',
      DUMP_BAG_KEEP_MIN: '3',
    });
    try {
      const { handler } = await import('../functions/prune/handler');
      const good: PruneResult = await handler({ database: DB, key: fresh.key });
      expect(good.retentionError).toBeUndefined();
      // keepMin 3: the fresh one and the two newest old ones stay.
      expect([...good.pruned].sort()).toEqual([old[2]?.key, old[3]?.key].sort());
      expect((await listDumps(s3Client(), bucket, DB)).map((d) => d.key)).toEqual([
        fresh.key,
        old[0]?.key,
        old[1]?.key,
      ]);
      const before = await allKeys(s3Client(), bucket);
      for (const event of [
        { database: DB, key: 'notes/readme.txt' },
        { database: DB, key: record(OTHER, 0).key },
        { database: '', key: fresh.key },
        {},
      ]) {
        const bad = await handler(event as { database: string; key: string });
        expect(bad.pruned).toEqual([]);
        expect(bad.retentionError).toMatch(/database|dump key/);
      }
      expect(await allKeys(s3Client(), bucket)).toEqual(before);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });

  it('a failed run deletes nothing', async () => {
    const bucket = await freshBucket();
    const old = [40, 41, 42, 43, 44].map((d) => record(DB, d));
    await seed(bucket, old);
    const before = await allKeys(s3Client(), bucket);
    const failing = join(scratch, 'pg_dump-fails');
    writeFileSync(
      failing,
      '#!/bin/sh\ncase "$1" in --version) exec pg_dump "$@";; esac\necho "pg_dump: error: boom" >&2\nexit 1\n',
    );
    chmodSync(failing, 0o755);
    const result = await dumpDatabase(target(bucket, failing), {
      database: DB,
      server: { version: '15', major: 15 },
      encryption: { mode: 'none' },
      trigger: 'schedule',
    });
    expect(result.status).toBe('failed');
    expect(await allKeys(s3Client(), bucket)).toEqual(before);
  });
});
