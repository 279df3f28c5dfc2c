/**
 * The failure rules of a backup, each forced on the real path: an unknown database and a wrong
 * password on the real PostgreSQL, pg_dump killed, failing or silent (fake pg_dump scripts), S3
 * failing mid-upload (a fault proxy before the real S3 API server), time running out, and bad keys,
 * with what each may leave in the bucket. Over 300 lines: one table of failure rules, a case
 * each, sharing the ~20 MB database beforeAll creates so uploads span several parts.
 */
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BackupTarget, dumpDatabase, runBackup } from '../functions/core/backup';
import { listDumps } from '../functions/core/catalog';
import { createS3Client } from '../functions/core/s3';
import { backupTarget } from './support/bag';
import { allKeys, createDatabase, freshBucket, openUploads, s3Client, services } from './support/env';
import { startFaultProxy } from './support/fault-proxy';
import { tempDir } from './support/temp';

const MiB = 1024 * 1024;
const BIG = 'fail big';
const SMALL = 'fail small';
const SMALL2 = 'fail small two';

let keyFile: string;
let scratch: string;

/** The shared target with 5 MiB parts (S3's least), two at a time, and whatever a test changes. */
function target(bucket: string, overrides: Partial<BackupTarget> = {}): BackupTarget {
  return { ...backupTarget(bucket), upload: { partSize: 5 * MiB, concurrency: 2 }, ...overrides };
}

/** A stand-in pg_dump for faults the real one cannot produce on cue; `--version` still answers truly. */
function fakePgDump(name: string, body: string): string {
  const path = join(scratch, name);
  writeFileSync(path, `#!/bin/sh\ncase "$1" in --version) exec pg_dump "$@";; esac\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function serverInfo() {
  return { version: '15', major: 15 };
}

const cli = join(import.meta.dirname, '..', 'bin', 'dump-bag.js');

describe('failure rules', () => {
  beforeAll(async () => {
    scratch = tempDir('dump-bag-fail-');
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ email: 'f@example.com' }],
    });
    keyFile = join(scratch, 'key.asc');
    writeFileSync(keyFile, publicKey);
    // Incompressible rows, so the dump spans several 5 MiB parts (about 20 MB).
    await createDatabase(
      BIG,
      `CREATE TABLE blobs (id int, data bytea);
       INSERT INTO blobs SELECT i, decode(md5(i::text) || md5((i * 7)::text), 'hex') FROM generate_series(1, 600000) i;`,
    );
    await createDatabase(SMALL, 'CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);');
    await createDatabase(SMALL2, 'CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);');
  });

  async function gpgEncryption() {
    const { loadEncryption } = await import('../functions/core/keys');
    return loadEncryption({ encryption: 'gpg', publicKeys: keyFile });
  }

  it("an unknown database fails with pg_dump's message; the good ones are stored; the CLI exits non-zero", async () => {
    const bucket = await freshBucket();
    const { env } = services();
    const result = await promisify(execFile)(process.execPath, [cli, 'backup', '--json'], {
      env: {
        ...process.env,
        ...env,
        DUMP_BAG_BUCKET: bucket,
        DUMP_BAG_PUBLIC_KEYS: keyFile,
        DUMP_BAG_DATABASES: `${SMALL},no such db,${SMALL2}`,
      },
    }).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => error,
    );
    expect(result.code).toBe(1);
    const summary = JSON.parse(result.stdout) as {
      ok: boolean;
      databases: { database: string; status: string; error: string | null; key: string | null }[];
    };
    expect(summary.ok).toBe(false);
    expect(summary.databases.map((d) => [d.database, d.status])).toEqual([
      [SMALL, 'ok'],
      ['no such db', 'failed'],
      [SMALL2, 'ok'],
    ]);
    expect(summary.databases[1]?.error).toMatch(
      /pg_dump exited with code 1: .*database "no such db" does not exist/,
    );
    expect(summary.databases[1]?.key).toBeNull();
    const stored = await listDumps(s3Client(), bucket);
    expect(stored.map((d) => d.database).sort()).toEqual([SMALL, SMALL2].sort());
    expect((await allKeys(s3Client(), bucket)).some((k) => k.includes('no%20such%20db'))).toBe(false);
  });

  it('a wrong password stops the run with the cause and never prints the password', async () => {
    const bucket = await freshBucket();
    const secret = 'hunter2-not-the-password';
    const summary = await runBackup(
      target(bucket, { connection: { ...target(bucket).connection, password: secret } }),
      {
        config: { encryption: 'gpg', publicKeys: keyFile, exclude: [], databases: [SMALL] },
        trigger: 'schedule',
      },
    );
    expect(summary.ok).toBe(false);
    expect(summary.error).toMatch(/password authentication failed/);
    expect(summary.error).not.toContain(secret);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('pg_dump killed part-way aborts the multipart upload: no object, no open upload', async () => {
    const bucket = await freshBucket();
    const killer = fakePgDump('pg_dump-killed', 'pg_dump "$@" | head -c 12000000\nkill -KILL $$');
    const result = await dumpDatabase(target(bucket, { pgDump: { pgDumpPath: killer } }), {
      database: BIG,
      server: serverInfo(),
      encryption: await gpgEncryption(),
      trigger: 'schedule',
    });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/pg_dump was killed by SIGKILL/);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
    expect(await openUploads(s3Client(), bucket)).toEqual([]);
  });

  it('pg_dump exiting non-zero after writing a small archive leaves no object (the exit is awaited)', async () => {
    const bucket = await freshBucket();
    const late = fakePgDump(
      'pg_dump-late-failure',
      'pg_dump "$@"\necho "pg_dump: error: simulated late failure" >&2\nexit 1',
    );
    const result = await dumpDatabase(target(bucket, { pgDump: { pgDumpPath: late } }), {
      database: SMALL,
      server: serverInfo(),
      encryption: await gpgEncryption(),
      trigger: 'schedule',
    });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/exited with code 1: pg_dump: error: simulated late failure/);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('output without the PGDMP header is refused even though the encrypted stream has bytes', async () => {
    const bucket = await freshBucket();
    const liar = fakePgDump('pg_dump-not-a-dump', 'echo "this is not a dump"\nexit 0');
    const result = await dumpDatabase(target(bucket, { pgDump: { pgDumpPath: liar } }), {
      database: SMALL,
      server: serverInfo(),
      encryption: await gpgEncryption(),
      trigger: 'schedule',
    });
    expect(result).toMatchObject({ status: 'failed' });
    expect(result.error).toMatch(/no PGDMP header/);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('pg_dump writing nothing and exiting 0 is a failure', async () => {
    const bucket = await freshBucket();
    const silent = fakePgDump('pg_dump-silent', 'exit 0');
    const result = await dumpDatabase(target(bucket, { pgDump: { pgDumpPath: silent } }), {
      database: SMALL,
      server: serverInfo(),
      encryption: await gpgEncryption(),
      trigger: 'schedule',
    });
    expect(result.error).toMatch(/wrote no archive/);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('a missing pg_dump binary is reported by path', async () => {
    const bucket = await freshBucket();
    const result = await dumpDatabase(
      target(bucket, { pgDump: { pgDumpPath: join(scratch, 'no-such-pg_dump') } }),
      {
        database: SMALL,
        server: serverInfo(),
        encryption: await gpgEncryption(),
        trigger: 'schedule',
      },
    );
    expect(result.status).toBe('failed');
    expect(result.error).toContain('no-such-pg_dump');
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('S3 failing on the third part aborts the upload and keeps older dumps', async () => {
    const bucket = await freshBucket();
    const good = await dumpDatabase(target(bucket), {
      database: BIG,
      server: serverInfo(),
      encryption: await gpgEncryption(),
      trigger: 'schedule',
    });
    expect(good.status).toBe('ok');
    await new Promise((r) => setTimeout(r, 1100)); // the next dump gets a new id (one per second)
    const proxy = await startFaultProxy(
      services().s3Endpoint,
      (req) => req.method === 'PUT' && /[?&]partNumber=3(&|$)/.test(req.url ?? ''),
    );
    try {
      const client = createS3Client({ ...services().s3Env, AWS_ENDPOINT_URL_S3: proxy.endpoint });
      const result = await dumpDatabase(target(bucket, { s3: client }), {
        database: BIG,
        server: serverInfo(),
        encryption: await gpgEncryption(),
        trigger: 'schedule',
      });
      expect(proxy.faults.length).toBeGreaterThan(0);
      expect(result.status).toBe('failed');
      expect(result.error).toMatch(/^upload to S3 failed: injected/);
    } finally {
      await proxy.close();
    }
    expect(await openUploads(s3Client(), bucket)).toEqual([]);
    const dumps = await listDumps(s3Client(), bucket);
    expect(dumps.map((d) => d.key)).toEqual([good.key]);
    expect((await allKeys(s3Client(), bucket)).filter((k) => !k.endsWith('.json'))).toEqual([good.key]);
  });

  it('time running out aborts the upload and says so', async () => {
    const bucket = await freshBucket();
    const result = await dumpDatabase(target(bucket), {
      database: BIG,
      server: serverInfo(),
      encryption: await gpgEncryption(),
      trigger: 'schedule',
      deadline: Date.now() + 300,
    });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/time ran out/);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
    expect(await openUploads(s3Client(), bucket)).toEqual([]);
  });

  it('bad keys stop the run before anything is uploaded, naming the cause', async () => {
    const bucket = await freshBucket();
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ email: 'p@example.com' }],
    });
    const privateFile = join(scratch, 'private.asc');
    writeFileSync(privateFile, privateKey);
    const expired = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ email: 'old@example.com' }],
      date: new Date(Date.now() - 10 * 86400_000),
      keyExpirationTime: 86400,
    });
    const expiredFile = join(scratch, 'expired.asc');
    writeFileSync(expiredFile, expired.publicKey);
    const cases: [Record<string, string>, RegExp][] = [
      [{ DUMP_BAG_PUBLIC_KEYS: join(scratch, 'missing.asc') }, /does not exist/],
      [{ DUMP_BAG_PUBLIC_KEYS: privateFile }, /holds a private key/],
      [{ DUMP_BAG_PUBLIC_KEYS: expiredFile }, /old@example.com.*cannot encrypt/],
      [
        { DUMP_BAG_PUBLIC_KEYS: keyFile, DUMP_BAG_RECIPIENTS: 'nobody@example.com' },
        /nobody@example.com has no public key/,
      ],
      [
        { DUMP_BAG_PUBLIC_KEYS: 'http://127.0.0.1:9/keys', DUMP_BAG_RECIPIENTS: 'A'.repeat(40) },
        /cannot fetch public keys/,
      ],
    ];
    for (const [vars, message] of cases) {
      const run = await promisify(execFile)(process.execPath, [cli, 'backup'], {
        env: {
          ...process.env,
          ...services().env,
          DUMP_BAG_BUCKET: bucket,
          DUMP_BAG_DATABASES: SMALL,
          ...vars,
        },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(run.code, JSON.stringify(vars)).toBe(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toContain('PRIVATE KEY BLOCK');
    }
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });
  it('keys and server are checked side by side: bad keys are reported even when the server is down too', async () => {
    const bucket = await freshBucket();
    const summary = await runBackup(
      target(bucket, {
        connection: { host: '127.0.0.1', port: 9, user: 'nobody', password: 'pw-not-shown' },
      }),
      {
        config: { encryption: 'gpg', publicKeys: join(scratch, 'missing.asc'), exclude: [] },
        trigger: 'manual',
      },
    );
    expect(summary.ok).toBe(false);
    expect(summary.error).toMatch(/missing\.asc.*does not exist/);
    expect(summary.results).toEqual([]);
  });

  it('a pg_dump that cannot run fails the dump, naming it, though its version was asked early', async () => {
    const bucket = await freshBucket();
    const missing = join(scratch, 'no-such-pg_dump');
    const summary = await runBackup(target(bucket, { pgDump: { pgDumpPath: missing } }), {
      config: { databases: [SMALL], exclude: [], encryption: 'gpg', publicKeys: keyFile },
      trigger: 'manual',
    });
    expect(summary.ok).toBe(false);
    expect(summary.results).toHaveLength(1);
    expect(summary.results[0]?.error).toMatch(/cannot run .*no-such-pg_dump --version/);
    // No dump of the database; the globals come from the pg_dumpall on PATH, as no pg_dumpall is beside it.
    expect((await allKeys(s3Client(), bucket)).filter((k) => !k.startsWith('globals/'))).toEqual([]);
  });
});
