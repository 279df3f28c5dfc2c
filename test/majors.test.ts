/**
 * Real servers of PostgreSQL 14, 16, 17 and 18, each backed up by the product with the pg_dump
 * layer's x86_64 binaries (the product picks the major), fetched through `dump-bag get`, restored
 * by the layer's pg_restore of the major it picked into a fresh server of the same major, and
 * compared; the run's globals dump recreates the role and its grants there. One server runs at a
 * time. The layer itself (both architectures, arm64 under qemu): layer.test.ts. Over 300 lines:
 * one flow per major, read top to bottom, with the helpers it alone uses.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { majorOf } from '../functions/core/archive-version';
import { type BackupSummary, runBackup } from '../functions/core/backup';
import type { ListedDump } from '../functions/core/listing';
import { databaseConninfo } from '../functions/core/pg-dump';
import { assembleLayer } from '../infra/constructs/pg-dump-layer/local-build';
import { PG_DUMP_RECIPE_DIR, readPins } from '../infra/constructs/pg-dump-layer/pins';
import {
  backupTarget,
  bagEnv,
  keyFolder,
  keyPair,
  type RunningBag,
  runCli,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import { createDatabase, freshBucket, pgClient, pgConnection, publicTables, snapshot } from './support/env';
import {
  type MajorServer,
  SERVER_MAJORS,
  type ServerMajor,
  startPostgresMajor,
} from './support/postgres-major';

const PINS = readPins(PG_DUMP_RECIPE_DIR);
const suffix = uniqueSuffix();
const DB = `majors shop ✓ ${suffix}`;
const READER = `majors reader "${suffix}"`;

/**
 * What each server major gets, written out rather than computed: the layer's pg_dump is the oldest
 * major not older than the server (issue 11), and the archive format it writes decides the oldest
 * pg_restore that reads it (pg_backup_archiver.h: 1.14 since 12, 1.16 since 17; 18 writes 1.16 too).
 */
const EXPECTED: Record<ServerMajor, { pgDump: number; archive: RegExp; restore: number }> = {
  14: { pgDump: 15, archive: /^1\.14\.\d+$/, restore: 12 },
  16: { pgDump: 17, archive: /^1\.16\.\d+$/, restore: 17 },
  17: { pgDump: 17, archive: /^1\.16\.\d+$/, restore: 17 },
  18: { pgDump: 18, archive: /^1\.16\.\d+$/, restore: 17 },
};

const FILL = `
  CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
  CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, joined date);
  CREATE TABLE orders (
    id bigint PRIMARY KEY DEFAULT nextval('invoice_no'),
    customer int NOT NULL REFERENCES customers,
    total numeric(10,2),
    items jsonb,
    at timestamptz
  );
  INSERT INTO customers (name, joined)
    SELECT 'customer ' || i || ' ✓', date '2024-01-01' + i FROM generate_series(1, 300) AS i;
  INSERT INTO orders (customer, total, items, at)
    SELECT 1 + i % 300, i * 1.25, jsonb_build_object('n', i, 'odd', i % 2 = 1),
           timestamptz '2024-01-01 00:00:00+00' + i * interval '17 minutes'
    FROM generate_series(1, 3000) AS i;
  CREATE ROLE ${pg.escapeIdentifier(READER)} NOLOGIN;
  GRANT SELECT ON customers, orders TO ${pg.escapeIdentifier(READER)};
  GRANT USAGE ON SEQUENCE invoice_no TO ${pg.escapeIdentifier(READER)};`;

/** Every row and both sequences' positions, as text, for comparing a database with its restored copy. */
async function contents(database: string, env: Record<string, string>): Promise<string> {
  const parts = [
    'SELECT id, name, joined::text FROM customers ORDER BY id',
    'SELECT id, customer, total::text, items, at::text FROM orders ORDER BY id',
    'SELECT last_value, is_called FROM invoice_no',
    'SELECT last_value, is_called FROM customers_id_seq',
  ];
  return (await Promise.all(parts.map((q) => snapshot(database, q, env)))).join('\n');
}

/** What the reader role may do in a database: the grants the dump carries. */
async function readerRights(database: string, env: Record<string, string>): Promise<unknown> {
  const db = await pgClient(database, env);
  try {
    const r = await db.query(
      `SELECT has_table_privilege($1, 'public.orders', 'SELECT') AS select_orders,
              has_table_privilege($1, 'public.customers', 'SELECT') AS select_customers,
              has_table_privilege($1, 'public.orders', 'INSERT') AS insert_orders,
              has_sequence_privilege($1, 'public.invoice_no', 'USAGE') AS use_invoice_no`,
      [READER],
    );
    return r.rows[0];
  } finally {
    await db.end();
  }
}

/** The lines of a tool's stderr that report errors. */
function errorLines(stderr: string, pattern: RegExp): string[] {
  return stderr.split('\n').filter((line) => pattern.test(line));
}

/** pg_restore 17 and newer always sends `SET transaction_timeout`, which a server older than 17 refuses. */
const TIMEOUT_ERROR =
  'pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter "transaction_timeout"';
function refusesTimeout(server: number, restoreTool: number): boolean {
  return restoreTool >= 17 && server < 17;
}

let pgRoot: string;
let publicKeys: string;
let secretKeyFile: string;

beforeAll(async () => {
  const out = tempDir('dump-bag-majors-layer-');
  // A cached build is copied; a fresh machine compiles PostgreSQL first (minutes per major).
  const built = assembleLayer({
    recipeDir: PG_DUMP_RECIPE_DIR,
    outputDir: out,
    architecture: 'x86_64',
    majors: [...PINS.keys()],
  });
  if (!built.ok) throw new Error(`the x86_64 pg_dump layer cannot be built here: ${built.reason}`);
  pgRoot = join(out, 'pg');
  const reader = await keyPair('Mia Majors', `mia-${suffix}@example.com`);
  publicKeys = keyFolder([reader]);
  secretKeyFile = join(tempDir('dump-bag-secrets-'), 'mia.secret.asc');
  writeFileSync(secretKeyFile, reader.secretKey, { mode: 0o600 });
}, 60 * 60_000);

describe.each(SERVER_MAJORS)('a PostgreSQL %i server', (major) => {
  const expected = EXPECTED[major];
  let server: MajorServer | undefined;
  let bag: RunningBag | undefined;
  let summary: BackupSummary;
  let before: string;
  let record: ListedDump;
  let work: string;

  /** `dump-bag get` against this major's bag, with the layer's pg_restore `tool` first on the PATH. */
  function client(args: string[], tool: number) {
    const bin = join(pgRoot, String(tool), 'bin');
    return runCli(args, {
      ...(server?.env ?? {}),
      PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
      DUMP_BAG_URL: bag?.url ?? '',
      DUMP_BAG_SECRET_KEY: secretKeyFile,
      DUMP_BAG_WORK_DIR: work,
    });
  }

  /** The layer's pg_restore `tool` on an archive file, into `database` of this major's server. */
  function pgRestore(tool: number, args: string[]) {
    const result = spawnSync(join(pgRoot, String(tool), 'bin', 'pg_restore'), args, {
      env: { PATH: process.env.PATH ?? '', ...server?.env },
      timeout: 120_000,
    });
    return { status: result.status, stderr: result.stderr.toString() };
  }

  beforeAll(async () => {
    work = tempDir('dump-bag-majors-work-');
    server = await startPostgresMajor(major);
    await createDatabase(DB, FILL, server.env);
    before = await contents(DB, server.env);
    const bucket = await freshBucket();
    summary = await runBackup(
      {
        ...backupTarget(bucket),
        connection: pgConnection(server.env),
        pgDump: { pgRoot },
      },
      { config: { exclude: [], encryption: 'gpg', publicKeys, databases: [DB] }, trigger: 'manual' },
    );
    await server.stop();
    // Every restore below goes into a fresh server of the same major, so nothing comes from the source.
    server = await startPostgresMajor(major);
    bag = await startBag(bagEnv(bucket, { DUMP_BAG_PUBLIC_KEYS: publicKeys }));
    const listed = (await (await fetch(`${bag.url}/dumps?database=${encodeURIComponent(DB)}`)).json()) as {
      dumps: ListedDump[];
    };
    expect(listed.dumps).toHaveLength(1);
    record = listed.dumps[0] as ListedDump;
  }, 5 * 60_000);

  afterAll(async () => {
    await bag?.close();
    await server?.stop();
  });

  it(`is dumped by pg_dump ${expected.pgDump}, and its record names pg_restore ${expected.restore} as the oldest that reads it`, () => {
    expect(summary.error).toBeUndefined();
    expect(summary.results.map((r) => [r.database, r.status, r.error])).toEqual([[DB, 'ok', undefined]]);
    expect(summary.globals?.status).toBe('ok');
    expect(majorOf(record.serverVersion)).toBe(major);
    expect(record.pgDumpVersion).toContain(PINS.get(expected.pgDump)?.version);
    expect(majorOf(record.pgDumpVersion)).toBe(expected.pgDump);
    expect(record.archiveVersion).toMatch(expected.archive);
    expect(record.restoreMajor).toBe(expected.restore);
    expect(record.signatureState).toBe('valid');
  });

  it(`its globals (psql) and its dump (pg_restore ${expected.pgDump}, owners and privileges kept) rebuild it in a fresh ${major} server: same rows, sequences, role and grants`, async () => {
    const env = server?.env ?? {};
    const dir = tempDir('dump-bag-majors-files-');
    const globals = join(dir, 'globals.sql');
    const gotGlobals = await client(['get', '--globals', 'latest', '-o', globals], expected.pgDump);
    expect(gotGlobals.code, gotGlobals.stderr).toBe(0);
    const sql = readFileSync(globals, 'utf8');
    expect(sql).toContain(`CREATE ROLE ${pg.escapeIdentifier(READER)};`);
    expect(sql).not.toMatch(/SCRAM-SHA-256\$|md5[0-9a-f]{32}/);
    // psql as a user would run it; the server's own superuser exists already, and that is the only error.
    const psql = spawnSync('psql', ['-X', '-q', '-d', 'postgres', '-f', globals], {
      env: { ...process.env, ...env },
    });
    expect(psql.status).toBe(0);
    expect(errorLines(psql.stderr.toString(), /ERROR/)).toEqual([
      expect.stringMatching(/ERROR: {2}role "postgres" already exists$/),
    ]);

    const archive = join(dir, 'shop.pgdump');
    const got = await client(['get', DB, record.id, '-o', archive], expected.pgDump);
    expect(got.code, got.stderr).toBe(0);
    const head = readFileSync(archive).subarray(0, 8);
    expect(head.subarray(0, 5).toString()).toBe('PGDMP');
    expect(`${head[5]}.${head[6]}.${head[7]}`).toBe(record.archiveVersion);

    const copy = `${DB} with grants`;
    await createDatabase(copy, 'SELECT 1', env);
    const tolerant = refusesTimeout(major, expected.pgDump);
    const restore = pgRestore(expected.pgDump, [
      ...(tolerant ? [] : ['--exit-on-error']),
      `--dbname=${databaseConninfo(copy)}`,
      archive,
    ]);
    if (tolerant) {
      expect(errorLines(restore.stderr, /^pg_restore: error:/)).toEqual([TIMEOUT_ERROR]);
      expect(restore.status).toBe(1);
    } else {
      expect(restore.stderr).toBe('');
      expect(restore.status).toBe(0);
    }
    expect(await contents(copy, env)).toBe(before);
    expect(await readerRights(copy, env)).toEqual({
      select_orders: true,
      select_customers: true,
      insert_orders: false,
      use_invoice_no: true,
    });
  });

  // Into a 16 server pg_restore 17 would send SET transaction_timeout; get --restore then goes through a script without it.
  it(`get --restore with pg_restore ${expected.pgDump} first on the PATH restores it whole`, async () => {
    const copy = `${DB} get restore`;
    await createDatabase(copy, 'SELECT 1', server?.env);
    const restored = await client(
      ['get', DB, record.id, '--restore', databaseConninfo(copy)],
      expected.pgDump,
    );
    expect(restored.code, restored.stderr).toBe(0);
    expect(await contents(copy, server?.env ?? {})).toBe(before);
    expect(readdirSync(work)).toEqual([]);
  });

  // The oldest reader the record names, when the layer has it and it is not the dumping major.
  if (expected.restore !== expected.pgDump && PINS.has(expected.restore)) {
    it(`the record's oldest reader, pg_restore ${expected.restore}, restores it whole too`, async () => {
      const copy = `${DB} oldest reader`;
      await createDatabase(copy, 'SELECT 1', server?.env);
      const restored = await client(
        ['get', DB, record.id, '--restore', databaseConninfo(copy)],
        expected.restore,
      );
      expect(restored.code, restored.stderr).toBe(0);
      expect(await contents(copy, server?.env ?? {})).toBe(before);
    });
  }

  if (expected.restore > 15) {
    it(`a local pg_restore 15 stops get --restore before the download, naming pg_restore ${expected.restore}`, async () => {
      const copy = `${DB} too old`;
      await createDatabase(copy, 'SELECT 1', server?.env);
      const stopped = await client(['get', DB, record.id, '--restore', databaseConninfo(copy)], 15);
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toContain(`needs pg_restore ${expected.restore} or newer`);
      expect(stopped.stderr).toContain('the local pg_restore is 15: nothing was downloaded');
      expect(stopped.stderr).toContain(`postgresql-client-${expected.restore}`);
      expect(readdirSync(work)).toEqual([]);
      expect(await publicTables(copy, server?.env ?? {})).toEqual([]);
    });
  }
});

describe('the README’s support table', () => {
  it('names for each server major above the pg_dump that dumped it and the oldest pg_restore its record named', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const rows = new Map<number, { pgDump: number; restore: number }>();
    for (const [, servers = '', pgDump, restore] of readme.matchAll(
      /^\| ([\d, ]+) \| (\d+) \| (\d+) or newer/gm,
    )) {
      for (const server of servers.split(','))
        rows.set(Number(server), { pgDump: Number(pgDump), restore: Number(restore) });
    }
    for (const major of SERVER_MAJORS) {
      const { pgDump, restore } = EXPECTED[major];
      expect([major, rows.get(major)]).toEqual([major, { pgDump, restore }]);
    }
  });
});
