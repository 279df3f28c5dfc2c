import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Transform } from 'node:stream';
import { promisify } from 'node:util';
import { ARCHIVE_HEAD_BYTES, parseArchiveVersion } from './archive-version';
import { checkedOutput } from './child-output';
import type { DumpOptions } from './dump-options';
import { ConfigError, PgDumpError } from './errors';

/** Where the Lambda layer puts `<major>/bin/pg_dump` and `<major>/lib`. */
export const LAYER_PG_ROOT = '/opt/pg';
/** The custom format's magic bytes: anything else on pg_dump's stdout is not a dump. */
const MAGIC = Buffer.from('PGDMP');

export interface PgDumpBinary {
  readonly path: string;
  /** Extra environment the binary needs (its own library folder). */
  readonly env: Record<string, string>;
}

export interface PgDumpSource {
  /** An explicit binary; wins over everything else. */
  readonly pgDumpPath?: string;
  /** A folder of `<major>/bin/pg_dump`; defaults to the layer's /opt/pg when it exists. */
  readonly pgRoot?: string;
}

/** The majors available under a root folder, ascending. */
export function availableMajors(root: string): number[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'pg_dump')))
    .map(Number)
    .sort((a, b) => a - b);
}

/** The folder of pg_dump builds by major (the layer's), if there is one. */
function pgRootOf(source: PgDumpSource): string | undefined {
  return source.pgRoot ?? (existsSync(LAYER_PG_ROOT) ? LAYER_PG_ROOT : undefined);
}

/** The pg_dump to run whatever the server's major: the one given, or the one on PATH when there is no folder of builds. */
export function fixedPgDump(source: PgDumpSource): PgDumpBinary | undefined {
  if (source.pgDumpPath) return { path: source.pgDumpPath, env: {} };
  return pgRootOf(source) ? undefined : { path: 'pg_dump', env: {} };
}

/**
 * Picks the pg_dump for a server major: the oldest major not older than the server (an older
 * pg_dump refuses a newer server; a newer one writes archives only its own pg_restore or newer
 * reads). With the layer's 15, 17, 18: 13–15 → 15, 16–17 → 17, 18 → 18 (layers/pg-dump/README.md).
 */
export function resolvePgDump(source: PgDumpSource, serverMajor: number): PgDumpBinary {
  const fixed = fixedPgDump(source);
  if (fixed) return fixed;
  const root = pgRootOf(source) as string;
  const majors = availableMajors(root);
  const major = majors.find((m) => m >= serverMajor);
  if (major === undefined) {
    throw new ConfigError(
      `no pg_dump for a PostgreSQL ${serverMajor} server under ${root} (it has ${majors.join(', ') || 'none'}); add that major to the layer`,
    );
  }
  const home = join(root, String(major));
  return {
    path: join(home, 'bin', 'pg_dump'),
    env: { LD_LIBRARY_PATH: [join(home, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
  };
}

/** `pg_dump --version`'s number, e.g. "15.18". */
export async function pgDumpVersion(binary: PgDumpBinary): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(binary.path, ['--version'], {
      env: { ...process.env, ...binary.env },
    });
    return /(\d+(?:\.\d+)+)/.exec(stdout)?.[1] ?? stdout.trim();
  } catch (error) {
    throw new ConfigError(`cannot run ${binary.path} --version: ${(error as Error).message}`);
  }
}

/**
 * The compression Dump Bag asks pg_dump for, by pg_dump's major: zstd level 1 from 16 on (measured
 * on the reference dump with pg_dump 18: 1.8 CPU-seconds and 252 MB, against gzip level 1's 6.3 s
 * and 297 MB), gzip level 1 before (the fastest level that still shrinks well; 15 has no zstd).
 */
export function defaultCompression(pgDumpMajor?: number): string {
  return pgDumpMajor !== undefined && pgDumpMajor >= 16 ? 'zstd:1' : '1';
}

/** How a `--compress` value is recorded: `1` → `gzip:1`, `zstd:1` as given, `0` or `none` → `none`. */
export function describeCompression(value: string): string {
  if (/^\d$/.test(value)) return value === '0' ? 'none' : `gzip:${value}`;
  return /^none(:0)?$/.test(value) ? 'none' : value;
}

/**
 * A libpq connection string naming only the database. pg_dump reads a bare `-d NAME` holding `=`
 * as a connection string; quoting it as a dbname value keeps any name a name.
 */
export function databaseConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export interface PgDumpRun {
  /** The custom-format archive; errors unless it starts with PGDMP and pg_dump exits 0. */
  readonly stdout: Transform;
  readonly pid: number | undefined;
  /** The archive format version from the header (e.g. "1.14.0"), once the first bytes have passed. */
  archiveVersion(): string | undefined;
}

export interface StartPgDumpOptions {
  readonly binary: PgDumpBinary;
  readonly database: string;
  readonly compression: string;
  /** libpq variables for this server (PGHOST…); they override the process's own. */
  readonly connectionEnv?: Record<string, string>;
  /** Secrets to blank out of pg_dump's stderr before it is reported. */
  readonly redact?: readonly string[];
  /** Allow-listed flags choosing what is dumped (validated by dump-options.ts). */
  readonly options?: DumpOptions;
}

/** Starts `pg_dump --format=custom --no-owner` without a shell and returns its checked output. */
export function startPgDump(options: StartPgDumpOptions): PgDumpRun {
  const args = [
    '--format=custom',
    '--no-owner',
    '--no-password',
    `--compress=${options.compression}`,
    ...(options.options ?? []),
    `--dbname=${databaseConninfo(options.database)}`,
  ];
  const child = spawn(options.binary.path, args, {
    env: { ...process.env, ...options.binary.env, ...options.connectionEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let head = Buffer.alloc(0);
  let seen = 0;
  const guard = checkedOutput(child, {
    tool: 'pg_dump',
    binaryPath: options.binary.path,
    redact: options.redact ?? [],
    inspect(chunk) {
      seen += chunk.length;
      if (head.length >= ARCHIVE_HEAD_BYTES) return undefined;
      head = Buffer.concat([head, chunk.subarray(0, ARCHIVE_HEAD_BYTES - head.length)]);
      return head.length >= MAGIC.length && !head.subarray(0, MAGIC.length).equals(MAGIC)
        ? new PgDumpError('pg_dump wrote something that is not a custom-format archive (no PGDMP header)')
        : undefined;
    },
    atEnd: () => (seen < MAGIC.length ? new PgDumpError('pg_dump exited 0 but wrote no archive') : undefined),
  });
  return { stdout: guard, pid: child.pid, archiveVersion: () => parseArchiveVersion(head) };
}
