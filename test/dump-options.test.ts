/**
 * Dump options (allow-list), the archive version in the record, restoring a part with get --restore,
 * the pg_restore version check before any download, and the globals dump of a run, against a real
 * PostgreSQL, the real S3 API server and a bag started on loopback. Over 300 lines: the restore
 * and globals cases all read the one backup beforeAll makes with options, roles and a started bag.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minimumRestoreMajor, parseArchiveVersion } from '../functions/core/archive-version';
import { runBackup } from '../functions/core/backup';
import {
  DumpOptionError,
  optionsFor,
  parseDumpOptionsText,
  validateDumpOptions,
} from '../functions/core/dump-options';
import { GLOBALS_NAME, listGlobals } from '../functions/core/globals';
import type { ListedDump } from '../functions/core/listing';
import { databaseConninfo } from '../functions/core/pg-dump';
import { readSetting, SETTINGS } from '../functions/core/settings';
import {
  backupTarget,
  bagEnv,
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
  pgClient,
  publicTables,
  s3Client,
  services,
  snapshot,
} from './support/env';

const suffix = uniqueSuffix();
const SHOP = `opts shop ${suffix}`;
const TARGET = `opts target ${suffix}`;
const PART = `opts part ${suffix}`;
const PARALLEL = `opts parallel ${suffix}`;
const READER = `opts reader ${suffix}`;
const MEMBER = `opts member ${suffix}`;

describe('dump options: the allow-list', () => {
  const refused = [
    '-f',
    '--file=/tmp/x',
    '-F',
    '--format=plain',
    '-Fp',
    '-d',
    '--dbname=postgres',
    '-h',
    '--host=evil',
    '-p',
    '--port=1',
    '-U',
    '--username=x',
    '-Z',
    '--compress=9',
    '-j',
    '--jobs=4',
    '--snapshot=x',
    '--no-owner',
    '--role=x',
    '--serializable-deferrable',
    '--load-via-partition-root',
    '--filter=/etc/passwd',
    '--unknown-flag',
    '-v',
    'postgres',
  ];
  it.each(refused)('refuses %s naming it', (flag) => {
    expect(() => validateDumpOptions([flag])).toThrow(DumpOptionError);
    expect(() => validateDumpOptions([flag])).toThrow(JSON.stringify(flag.slice(0, 80)));
  });

  it('accepts each allowed flag and writes values as --flag=value', () => {
    expect(
      validateDumpOptions([
        '--exclude-table',
        'logs',
        '--exclude-table-data=audit_*',
        '--schema=public',
        '--exclude-schema',
        'tmp',
        '--no-comments',
        '--no-publications',
        '--no-subscriptions',
        '--no-security-labels',
        '--no-tablespaces',
        '--no-large-objects',
      ]),
    ).toEqual([
      '--exclude-table=logs',
      '--exclude-table-data=audit_*',
      '--schema=public',
      '--exclude-schema=tmp',
      '--no-comments',
      '--no-publications',
      '--no-subscriptions',
      '--no-security-labels',
      '--no-tablespaces',
      '--no-large-objects',
    ]);
  });

  it('refuses bad values: missing, a flag as the pattern, control characters, too long, a value on a switch', () => {
    expect(() => validateDumpOptions(['--schema'])).toThrow('needs a pattern');
    expect(() => validateDumpOptions(['--schema', '--file=/tmp/x'])).toThrow('not a pattern');
    expect(() => validateDumpOptions(['--schema=a\nb'])).toThrow('control character');
    expect(() => validateDumpOptions(['--schema=a\0b'])).toThrow('control character');
    expect(() => validateDumpOptions([`--schema=${'x'.repeat(301)}`])).toThrow('longer than 300');
    expect(() => validateDumpOptions(['--no-comments=1'])).toThrow('takes no value');
    expect(() => validateDumpOptions([42])).toThrow('must be a string');
  });

  it('reads DUMP_BAG_DUMP_OPTIONS as a list or per database, and names the flag it refuses', () => {
    const byDb = parseDumpOptionsText('{"*": ["--no-comments"], "shop": ["--exclude-table=logs"]}');
    expect(optionsFor(byDb, 'shop')).toEqual(['--no-comments', '--exclude-table=logs']);
    expect(optionsFor(byDb, 'other')).toEqual(['--no-comments']);
    expect(optionsFor(byDb, 'constructor')).toEqual(['--no-comments']);
    expect(optionsFor(parseDumpOptionsText('["--no-comments"]'), 'x')).toEqual(['--no-comments']);
    expect(() =>
      readSetting(SETTINGS.dumpOptions, { DUMP_BAG_DUMP_OPTIONS: '{"shop": ["--file=/tmp/x"]}' }),
    ).toThrow(/DUMP_BAG_DUMP_OPTIONS.*"shop".*--file=\/tmp\/x/);
    expect(() => readSetting(SETTINGS.dumpOptions, { DUMP_BAG_DUMP_OPTIONS: 'not json' })).toThrow('JSON');
  });
});

describe('archive versions', () => {
  it('reads major.minor.rev after PGDMP and maps it to the oldest pg_restore', () => {
    expect(parseArchiveVersion(Buffer.from([0x50, 0x47, 0x44, 0x4d, 0x50, 1, 16, 0]))).toBe('1.16.0');
    expect(parseArchiveVersion(Buffer.from('PGDMX\x01\x0e\x00', 'latin1'))).toBeUndefined();
    expect(parseArchiveVersion(Buffer.from('PGDMP\x01'))).toBeUndefined();
    expect(minimumRestoreMajor('1.14.0')).toBe(12);
    expect(minimumRestoreMajor('1.15.0')).toBe(16);
    expect(minimumRestoreMajor('1.16.0')).toBe(17);
    // A format newer than the table: the pg_dump's own major always reads it.
    expect(minimumRestoreMajor('1.17.0', 19)).toBe(19);
  });
});

describe('a bag with dump options, partial restores, the version check and globals', () => {
  let bucket: string;
  let bag: RunningBag;
  let env: Record<string, string>;
  let dumps: ListedDump[];
  const shop = () => dumps.find((d) => d.database === SHOP) as ListedDump;

  beforeAll(async () => {
    await createDatabase(
      SHOP,
      `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2));
       INSERT INTO orders SELECT i, i * 1.5 FROM generate_series(1, 2000) i;
       CREATE TABLE customers (id int PRIMARY KEY, name text);
       INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 300) i;
       CREATE TABLE logs (id int, line text);
       INSERT INTO logs SELECT i, md5(i::text) FROM generate_series(1, 500) i;`,
    );
    const admin = await pgClient();
    try {
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(READER)} NOLOGIN`);
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(MEMBER)} LOGIN PASSWORD 'opts-secret'`);
      await admin.query(`GRANT ${pg.escapeIdentifier(READER)} TO ${pg.escapeIdentifier(MEMBER)}`);
    } finally {
      await admin.end();
    }
    bucket = await freshBucket();
    const summary = await runBackup(
      { ...backupTarget(bucket), dumpOptions: { '*': ['--no-comments'], [SHOP]: ['--exclude-table=logs'] } },
      { config: { exclude: [], encryption: 'none', databases: [SHOP] }, trigger: 'schedule' },
    );
    expect(summary.results.map((r) => r.status)).toEqual(['ok']);
    expect(summary.globals?.status, summary.globals?.error).toBe('ok');
    bag = await startBag(bagEnv(bucket, { DUMP_BAG_ENCRYPTION: 'none' }));
    env = { ...services().pgEnv, DUMP_BAG_URL: bag.url };
    dumps = (await (await fetch(`${bag.url}/dumps`)).json()).dumps;
  }, 120_000);

  afterAll(async () => {
    await bag?.close();
    const admin = await pgClient();
    try {
      for (const db of [SHOP, TARGET, PART, PARALLEL]) {
        await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)}`);
      }
      await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(MEMBER)}`);
      await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(READER)}`);
    } finally {
      await admin.end();
    }
  });

  it('records the options, the archive version and the pg_restore that reads it (real pg_dump 15: 1.14 → 12)', () => {
    expect(shop().dumpOptions).toEqual(['--no-comments', '--exclude-table=logs']);
    expect(shop().archiveVersion).toMatch(/^1\.14\.\d+$/);
    expect(shop().restoreMajor).toBe(12);
  });

  it('an excluded table is absent after restore, the others whole', async () => {
    await emptyDatabase(TARGET);
    const restored = await runCli(['get', SHOP, shop().id, '--restore', databaseConninfo(TARGET)], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await publicTables(TARGET)).toEqual(['customers', 'orders']);
    const q = 'SELECT id, total::text FROM orders ORDER BY id';
    expect(await snapshot(TARGET, q)).toBe(await snapshot(SHOP, q));
  });

  it('get --restore --table restores one table', async () => {
    await emptyDatabase(PART);
    const restored = await runCli(
      ['get', SHOP, 'latest', '--restore', databaseConninfo(PART), '--table', 'customers'],
      env,
    );
    expect(restored.code, restored.stderr).toBe(0);
    expect(await publicTables(PART)).toEqual(['customers']);
    const q = 'SELECT id, name FROM customers ORDER BY id';
    expect(await snapshot(PART, q)).toBe(await snapshot(SHOP, q));
    // --data-only with --clean refused by pg_restore is its own business; --if-exists without --clean is ours.
    const bad = await runCli(['get', SHOP, '--restore', databaseConninfo(PART), '--if-exists'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--if-exists goes with --clean');
  });

  it('get --restore --jobs restores from a checked work file, which is gone afterwards', async () => {
    await emptyDatabase(PARALLEL);
    const work = tempDir('dump-bag-jobs-');
    const restored = await runCli(['get', SHOP, '--restore', databaseConninfo(PARALLEL), '--jobs', '2'], {
      ...env,
      DUMP_BAG_WORK_DIR: work,
    });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await publicTables(PARALLEL)).toEqual(['customers', 'orders']);
    expect(execFileSync('ls', ['-A', work]).toString()).toBe('');
    const outside = await runCli(['get', SHOP, '--jobs', '2'], env);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toContain('go with --restore');
  });

  it('lists and fetches the globals dump; applied with psql it recreates the roles and the membership', async () => {
    const listed = (await (await fetch(`${bag.url}/globals`)).json()).globals as ListedDump[];
    expect(listed.length).toBe(1);
    expect(listed[0]?.database).toBe(GLOBALS_NAME);
    expect(listed[0]?.key).toMatch(/^globals\/globals-\d{8}-\d{6}.*\.sql$/);
    expect((await listGlobals(s3Client(), bucket)).map((g) => g.key)).toEqual([listed[0]?.key]);
    const list = await runCli(['list'], env);
    expect(list.stdout.toString()).toContain('globals: 1 dump(s)');
    expect(list.stdout.toString()).toMatch(/>= 12 \(1\.14\.\d+\)/);

    const dir = tempDir('dump-bag-globals-');
    const file = join(dir, 'globals.sql');
    const got = await runCli(['get', '--globals', 'latest', '-o', file], env);
    expect(got.code, got.stderr).toBe(0);
    const sql = readFileSync(file, 'utf8');
    expect(sql).toContain(`CREATE ROLE ${pg.escapeIdentifier(MEMBER)}`);
    expect(sql).not.toMatch(/SCRAM-SHA-256\$|md5[0-9a-f]{32}/);

    const admin = await pgClient();
    try {
      await admin.query(`DROP ROLE ${pg.escapeIdentifier(MEMBER)}`);
      await admin.query(`DROP ROLE ${pg.escapeIdentifier(READER)}`);
      // psql as a user would; errors for roles that exist (postgres) are expected and not fatal.
      execFileSync('psql', ['-q', '-X', '-d', 'postgres', '-f', file], {
        env: { ...process.env, ...services().pgEnv },
        stdio: 'ignore',
      });
      const r = await admin.query(
        `SELECT count(*)::int AS n FROM pg_auth_members m JOIN pg_roles a ON a.oid = m.roleid JOIN pg_roles b ON b.oid = m.member
          WHERE a.rolname = $1 AND b.rolname = $2`,
        [READER, MEMBER],
      );
      expect(r.rows[0].n).toBe(1);
    } finally {
      await admin.end();
    }
  });

  it('get --restore stops before the download when the local pg_restore is older than the dump needs', async () => {
    // The record is re-written as pg_dump 18 would make it; the local pg_restore is 15.
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const s3 = s3Client();
    // Re-written records lose the bag's signature: the reader allows unsigned ones here on purpose.
    const record = {
      ...shop(),
      signature: undefined,
      expiresAt: undefined,
      archiveVersion: '1.16.0',
      restoreMajor: 17,
      pgDumpVersion: '18.1',
    };
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${record.key}.json`, Body: JSON.stringify(record) }),
    );
    await emptyDatabase(TARGET);
    const stopped = await runCli(
      ['get', SHOP, record.id, '--restore', databaseConninfo(TARGET), '--allow-unsigned'],
      env,
    );
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toContain('needs pg_restore 17 or newer');
    expect(stopped.stderr).toContain('nothing was downloaded');
    expect(stopped.stderr).toContain('postgresql-client-17');
    expect(stopped.stderr).toContain('brew install postgresql@17');
    expect(await publicTables(TARGET)).toEqual([]);
    const verify = await runCli(['verify', SHOP, record.id, '--allow-unsigned'], env);
    expect(verify.code).toBe(1);
    expect(verify.stdout.toString()).toContain('needs pg_restore 17');
  });
});
