import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Transform } from 'node:stream';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type DumpRecord,
  listObjects,
  newestFirst,
  presignExisting,
  readRecord,
  writeRecord,
} from './catalog';
import { checkedOutput } from './child-output';
import type { RetentionPolicy, Trigger } from './config';
import type { PgConnection, ServerInfo } from './databases';
import { encryptStream } from './encrypt';
import type { Encryption } from './encryption';
import { DumpBagError, errorMessage, NotFoundError, PgDumpError } from './errors';
import { connectionSecrets, libpqEnv } from './libpq';
import { isDumpId, RECORD_SUFFIX, recordKey, uniqueDumpId } from './naming';
import { type PgDumpBinary, type PgDumpSource, pgDumpVersion, resolvePgDump } from './pg-dump';
import { redact } from './redact';
import { planRetention, RetentionError } from './retention';
import { type RecordSigner, signRecord } from './signing';
import { uploadStream } from './upload';

/**
 * The run's globals dump: roles and tablespaces (`pg_dumpall --globals-only --no-role-passwords`,
 * as managed services refuse to hand out password hashes), encrypted and recorded like a dump, at
 * `globals/globals-<id>.sql.gpg`. Its record is a DumpRecord whose database is GLOBALS_NAME.
 */
export const GLOBALS_PREFIX = 'globals/';
/** The `database` of a globals record: no database can be called this way by the bag (it is not one). */
export const GLOBALS_NAME = '(globals)';
const KEY_PATTERN = /^globals\/globals-([0-9A-Za-z-]{15,64})\.sql(\.gpg)?$/;
/** Roles and tablespaces of even a large server fit in this; more is not a globals dump. */
const MAX_GLOBALS_BYTES = 256 * 1024 * 1024;

export function globalsKey(id: string, encrypted: boolean): string {
  return `${GLOBALS_PREFIX}globals-${id}.sql${encrypted ? '.gpg' : ''}`;
}

/** The id of a globals key, or undefined for anything the bag does not write. */
export function parseGlobalsKey(key: string): { id: string; encrypted: boolean } | undefined {
  const m = KEY_PATTERN.exec(key);
  if (!m || !isDumpId(m[1] as string)) return undefined;
  return { id: m[1] as string, encrypted: m[2] !== undefined };
}

/** pg_dumpall beside the pg_dump chosen for the server's major (the layer ships them together). */
export function resolvePgDumpall(source: PgDumpSource, serverMajor: number): PgDumpBinary {
  const pgDump = resolvePgDump(source, serverMajor);
  if (pgDump.path === 'pg_dump') return { path: 'pg_dumpall', env: {} };
  const beside = join(dirname(pgDump.path), 'pg_dumpall');
  return { path: existsSync(beside) ? beside : 'pg_dumpall', env: pgDump.env };
}

/** Starts pg_dumpall and returns its output, which errors unless it exits 0 and stays bounded. */
function startPgDumpall(binary: PgDumpBinary, connection: PgConnection): Transform {
  const child = spawn(binary.path, ['--globals-only', '--no-role-passwords', '--no-password'], {
    env: { ...process.env, ...binary.env, ...libpqEnv(connection) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let seen = 0;
  return checkedOutput(child, {
    tool: 'pg_dumpall',
    binaryPath: binary.path,
    redact: connectionSecrets(connection),
    inspect(chunk) {
      seen += chunk.length;
      return seen > MAX_GLOBALS_BYTES
        ? new PgDumpError(`pg_dumpall wrote more than ${MAX_GLOBALS_BYTES} bytes of globals`)
        : undefined;
    },
  });
}

export interface GlobalsTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly connection: PgConnection;
  readonly pgDump: PgDumpSource;
  readonly retention: RetentionPolicy;
  /** Signs the record as the dumps' are (the same record writer). */
  readonly signer?: RecordSigner;
}

export interface GlobalsResult {
  readonly status: 'ok' | 'failed';
  readonly key?: string;
  readonly bytes?: number;
  readonly sha256?: string;
  readonly seconds?: number;
  readonly error?: string;
  readonly pruned?: readonly string[];
  /** Retention could not run; the new globals dump itself is fine. */
  readonly retentionError?: string;
}

/**
 * Dumps the globals, stores and records them. Never throws. It deletes nothing: retention is
 * `pruneAfterGlobals`, which in AWS runs in the prune step's role (the dump role cannot delete).
 */
export async function dumpGlobals(
  target: Omit<GlobalsTarget, 'retention'>,
  request: { server: ServerInfo; encryption: Encryption; trigger: Trigger },
): Promise<GlobalsResult> {
  const started = new Date();
  // Unique like a dump's id: two runs in one second (a schedule and the command) both survive.
  const id = uniqueDumpId(started);
  const key = globalsKey(id, request.encryption.mode !== 'none');
  const scrub = (text: string) => redact(text, connectionSecrets(target.connection));
  let firstError: unknown;
  try {
    const binary = resolvePgDumpall(target.pgDump, request.server.major);
    const version = await pgDumpVersion(binary);
    const output = startPgDumpall(binary, target.connection);
    // pg_dumpall may fail before encryption is set up and listening: an unheard 'error' would crash the process.
    output.on('error', (error) => {
      firstError ??= error;
    });
    const body = await encryptStream(output, request.encryption);
    const stored = await uploadStream({
      client: target.s3,
      bucket: target.bucket,
      key,
      body,
      contentType: request.encryption.mode === 'none' ? 'application/sql' : 'application/pgp-encrypted',
      metadata: { trigger: request.trigger },
    });
    const unsigned: DumpRecord = {
      database: GLOBALS_NAME,
      id,
      key,
      createdAt: started.toISOString(),
      trigger: request.trigger,
      encryption: request.encryption.mode,
      recipients:
        request.encryption.mode === 'gpg'
          ? request.encryption.recipients.map((r) => ({ fingerprint: r.fingerprint, userId: r.userId }))
          : [],
      pgDumpVersion: version,
      serverVersion: request.server.version,
      compression: 'none',
      sha256: stored.sha256,
      bytes: stored.bytes,
      seconds: Math.round(Date.now() - started.getTime()) / 1000,
    };
    const record = target.signer ? await signRecord(unsigned, target.signer) : unsigned;
    try {
      await writeRecord(target.s3, target.bucket, record);
    } catch (error: unknown) {
      await target.s3.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: key })).catch(() => {});
      throw new DumpBagError(`cannot record the globals dump: ${errorMessage(error)}`);
    }
    return { status: 'ok', key, bytes: stored.bytes, sha256: stored.sha256, seconds: unsigned.seconds };
  } catch (error: unknown) {
    return {
      status: 'failed',
      error: scrub(`globals: ${errorMessage(firstError ?? error)}`),
      seconds: (Date.now() - started.getTime()) / 1000,
    };
  }
}

/** Retention of the globals after a good globals dump, its outcome added to the result; a failed result is returned as it is. */
export async function pruneAfterGlobals(
  target: Pick<GlobalsTarget, 's3' | 'bucket' | 'retention'>,
  result: GlobalsResult,
  now = new Date(),
): Promise<GlobalsResult> {
  if (result.status !== 'ok' || result.key === undefined) return result;
  try {
    return {
      ...result,
      pruned: await pruneGlobals(target.s3, target.bucket, target.retention, now, result.key),
    };
  } catch (error: unknown) {
    return { ...result, pruned: [], retentionError: errorMessage(error) };
  }
}

/** The recorded globals dumps, newest first; a bad or oversized record is skipped. */
export async function listGlobals(client: S3Client, bucket: string): Promise<DumpRecord[]> {
  const objects = await listObjects(client, bucket, GLOBALS_PREFIX);
  const records = new Set(objects.filter((o) => o.key.endsWith(RECORD_SUFFIX)).map((o) => o.key));
  const out: DumpRecord[] = [];
  for (const o of objects) {
    const parsed = parseGlobalsKey(o.key);
    if (!parsed || !records.has(recordKey(o.key))) continue;
    try {
      out.push(await readRecord(client, bucket, o.key, { database: GLOBALS_NAME, id: parsed.id }));
    } catch {
      // An unreadable record is skipped, never allowed to break the listing.
    }
  }
  return out.sort(newestFirst);
}

/** One globals dump by id, or the newest with `latest`. */
export async function findGlobals(client: S3Client, bucket: string, id: string): Promise<DumpRecord> {
  const all = await listGlobals(client, bucket);
  const found = id === 'latest' ? all[0] : all.find((g) => g.id === id);
  if (!found)
    throw new NotFoundError(
      id === 'latest' ? 'this bag has no globals dump' : 'no globals dump with this id',
    );
  return found;
}

/**
 * Retention of globals dumps: the same policy as a database's (keep-min newest always). With
 * `newKey` (the globals dump that just succeeded) it runs only when that one is listed with its
 * record, as a database's retention does: a failed or forged "ok" never costs an older dump.
 */
export async function pruneGlobals(
  client: S3Client,
  bucket: string,
  policy: RetentionPolicy,
  now = new Date(),
  newKey?: string,
): Promise<string[]> {
  const all = await listGlobals(client, bucket);
  if (newKey !== undefined && !all.some((g) => g.key === newKey)) {
    throw new RetentionError(
      `retention of the globals skipped: the new globals dump ${newKey} is not listed with its record; nothing was deleted (retention runs again after the next good one)`,
    );
  }
  const { remove } = planRetention(all, policy, now);
  for (const g of remove) {
    if (!parseGlobalsKey(g.key)) continue;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: g.key }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: recordKey(g.key) }));
  }
  return remove.map((g) => g.key);
}

/** A presigned GET of a listed globals dump (checked to exist). The URL is a credential: never log it. */
export async function presignGlobals(
  client: S3Client,
  bucket: string,
  record: DumpRecord,
  expirySeconds: number,
  now = new Date(),
): Promise<{ url: string; expiresAt: string }> {
  if (!parseGlobalsKey(record.key))
    throw new Error('a globals record names a key that is not a globals dump');
  const name = record.key.slice(GLOBALS_PREFIX.length);
  return await presignExisting(client, bucket, record.key, name, expirySeconds, now, 'globals dump');
}
