// Over 300 lines: one database's dump (pg_dump → OpenPGP → S3 → signed record) and the run around it, kept together because the failure rules span both.
import type { S3Client } from '@aws-sdk/client-s3';
import { majorOf, minimumRestoreMajor } from './archive-version';
import { type DumpRecord, writeRecord } from './catalog';
import { removeOwnDump } from './cleanup';
import type { DumpBagConfig, RetentionPolicy, Trigger } from './config';
import { type BackupPlan, type PgConnection, planBackup, type ServerInfo } from './databases';
import { type DumpOptionsByDatabase, optionsFor } from './dump-options';
import { encryptStream } from './encrypt';
import type { Encryption } from './encryption';
import { DeadlineError, DumpBagError, errorMessage, UploadError } from './errors';
import { dumpGlobals, type GlobalsResult, pruneAfterGlobals } from './globals';
import { checkKeyExpiry, type KeyExpiryWarning } from './key-expiry';
import { loadEncryption } from './keys';
import { connectionSecrets, libpqEnv } from './libpq';
import { dumpKey, uniqueDumpId } from './naming';
import {
  defaultCompression,
  describeCompression,
  fixedPgDump,
  type PgDumpBinary,
  type PgDumpSource,
  pgDumpVersion,
  resolvePgDump,
  startPgDump,
} from './pg-dump';
import { redact } from './redact';
import { pruneDatabase } from './retention';
import type { RecordedRunner } from './runner';
import { SETTINGS } from './settings';
import { type RecordSigner, signRecord } from './signing';
import { uploadStream } from './upload';

/** What every dump of a run shares: where to read from, where to write to, and how. */
export interface BackupTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly connection: PgConnection;
  readonly pgDump: PgDumpSource;
  /** pg_dump's `--compress`; undefined picks the default. */
  readonly compression?: string;
  /** Allow-listed pg_dump flags, for all databases (`*`) or by name. */
  readonly dumpOptions?: DumpOptionsByDatabase;
  readonly retention: RetentionPolicy;
  /** Signs every record: a KMS key in AWS, a local Ed25519 key on the command line. */
  readonly signer: RecordSigner;
  /** Part size and parts in flight for the multipart upload. */
  readonly upload?: { readonly partSize?: number; readonly concurrency?: number };
}

export interface DumpRequest {
  readonly database: string;
  readonly server: ServerInfo;
  readonly encryption: Encryption;
  readonly trigger: Trigger;
  /** The database's size on disk, to size the upload's parts. */
  readonly expectedBytes?: number;
  /** Epoch milliseconds by which the dump must have finished or been aborted. */
  readonly deadline?: number;
  /** Where the dump runs (Lambda, Fargate, the command line), for the record. */
  readonly runner?: RecordedRunner;
}

export interface DumpResult {
  readonly database: string;
  readonly status: 'ok' | 'failed';
  readonly key?: string;
  readonly bytes?: number;
  readonly sha256?: string;
  readonly seconds: number;
  /** Why it failed: the cause, with the tail of pg_dump's stderr; never a password. */
  readonly error?: string;
  /** Keys of older dumps that retention deleted after this one succeeded. */
  readonly pruned?: readonly string[];
  /** Retention could not run; the new dump itself is fine. */
  readonly retentionError?: string;
  /** Where it ran; the state machine retries a Lambda dump that ran out of time on Fargate. */
  readonly runner?: RecordedRunner;
  /** It failed because its deadline came (not because of the database or S3). */
  readonly outOfTime?: boolean;
}

export interface BackupSummary {
  readonly ok: boolean;
  readonly server?: ServerInfo;
  readonly results: DumpResult[];
  /** The run's globals dump (roles, tablespaces); its failure fails the run but not the databases. */
  readonly globals?: GlobalsResult;
  /** A failure that stopped the whole run before any database was dumped (keys, connection). */
  readonly error?: string;
  /** Recipients whose key expires within keyExpiryWarningDays: the run goes on, someone should renew. */
  readonly keyWarnings?: readonly KeyExpiryWarning[];
}

/** What a reader needs to know before downloading: the archive's version and the pg_restore that reads it. */
function archiveFields(
  archiveVersion: string | undefined,
  pgDumpVersionText: string,
): Pick<DumpRecord, 'archiveVersion' | 'restoreMajor'> {
  if (archiveVersion === undefined) return {};
  return { archiveVersion, restoreMajor: minimumRestoreMajor(archiveVersion, majorOf(pgDumpVersionText)) };
}

const versionCache = new Map<string, Promise<string>>();
function cachedVersion(binary: PgDumpBinary): Promise<string> {
  let version = versionCache.get(binary.path);
  if (!version) {
    version = pgDumpVersion(binary);
    version.catch(() => versionCache.delete(binary.path));
    versionCache.set(binary.path, version);
  }
  return version;
}

/** Calls `stop` with a DeadlineError when the deadline (epoch ms) passes; none without a deadline. */
function deadlineTimer(
  deadline: number | undefined,
  database: string,
  stop: (error: DeadlineError) => void,
): NodeJS.Timeout | undefined {
  if (deadline === undefined) return undefined;
  return setTimeout(
    () => stop(new DeadlineError(`time ran out before the dump of ${database} finished`)),
    Math.max(0, deadline - Date.now()),
  );
}

/**
 * Dumps one database: pg_dump → OpenPGP → S3, then its record. Any failure aborts the upload and
 * is returned as a failed result. It deletes nothing old: retention is `pruneAfterDump`, which in
 * AWS runs in its own step and role (the role that reads the database cannot delete dumps).
 */
export async function dumpDatabase(target: BackupTarget, request: DumpRequest): Promise<DumpResult> {
  const started = new Date();
  const seconds = () => (Date.now() - started.getTime()) / 1000;
  const { database, encryption } = request;
  const id = uniqueDumpId(started);
  const key = dumpKey(database, id, encryption.mode !== 'none');
  const secrets = connectionSecrets(target.connection);
  const scrub = (text: string) => redact(text, secrets);
  let firstError: unknown;
  let timer: NodeJS.Timeout | undefined;
  try {
    const binary = resolvePgDump(target.pgDump, request.server.major);
    const pgDumpVersionText = await cachedVersion(binary);
    const compression = target.compression ?? defaultCompression(Number.parseInt(pgDumpVersionText, 10));
    const dumpOptions = optionsFor(target.dumpOptions, database);
    const run = startPgDump({
      binary,
      database,
      compression,
      options: dumpOptions,
      connectionEnv: libpqEnv(target.connection),
      redact: secrets,
    });
    run.stdout.on('error', (error) => {
      // pg_dump's own failures explain the rest; a cancellation caused by an S3 failure does not.
      if (error instanceof DumpBagError) firstError ??= error;
    });
    const body = await encryptStream(run.stdout, encryption);
    timer = deadlineTimer(request.deadline, database, (error) => {
      firstError ??= error;
      body.destroy(error);
      run.stdout.destroy(error);
    });
    let stored: Awaited<ReturnType<typeof uploadStream>>;
    try {
      stored = await uploadStream({
        client: target.s3,
        bucket: target.bucket,
        key,
        body,
        expectedBytes: request.expectedBytes,
        partSize: target.upload?.partSize,
        concurrency: target.upload?.concurrency,
        contentType: encryption.mode === 'none' ? 'application/octet-stream' : 'application/pgp-encrypted',
        metadata: { database: encodeURIComponent(database), trigger: request.trigger },
      });
    } catch (error) {
      // The upload is aborted; make sure pg_dump does not go on writing into a closed pipe.
      run.stdout.destroy();
      throw (
        firstError ??
        (error instanceof DumpBagError
          ? error
          : new UploadError(`upload to S3 failed: ${errorMessage(error)}`))
      );
    } finally {
      clearTimeout(timer);
    }
    const unsigned: DumpRecord = {
      database,
      id,
      key,
      createdAt: started.toISOString(),
      trigger: request.trigger,
      encryption: encryption.mode,
      recipients:
        encryption.mode === 'gpg'
          ? encryption.recipients.map((r) => ({ fingerprint: r.fingerprint, userId: r.userId }))
          : [],
      pgDumpVersion: pgDumpVersionText,
      serverVersion: request.server.version,
      compression: describeCompression(compression),
      sha256: stored.sha256,
      bytes: stored.bytes,
      seconds: Math.round(seconds() * 1000) / 1000,
      ...archiveFields(run.archiveVersion(), pgDumpVersionText),
      dumpOptions,
      ...(request.runner ? { runner: request.runner } : {}),
    };
    let record: DumpRecord;
    try {
      record = await signRecord(unsigned, target.signer);
      await writeRecord(target.s3, target.bucket, record);
    } catch (error) {
      // A dump without its record cannot be verified: take it away, but only the very object this run stored.
      await removeOwnDump(target.s3, target.bucket, key, stored.etag);
      throw new UploadError(`cannot record the dump of ${database}: ${errorMessage(error)}`);
    }
    return {
      database,
      status: 'ok',
      key,
      bytes: stored.bytes,
      sha256: stored.sha256,
      seconds: record.seconds,
      runner: request.runner,
    };
  } catch (error) {
    clearTimeout(timer);
    return {
      database,
      status: 'failed',
      seconds: seconds(),
      error: scrub(errorMessage(firstError ?? error)),
      runner: request.runner,
      ...((firstError ?? error) instanceof DeadlineError ? { outOfTime: true } : {}),
    };
  }
}

/** Retention of the database of a successful dump, its outcome added to the result; a failed result is returned as it is. */
export async function pruneAfterDump(
  target: Pick<BackupTarget, 's3' | 'bucket' | 'retention'>,
  result: DumpResult,
): Promise<DumpResult> {
  if (result.status !== 'ok' || result.key === undefined) return result;
  try {
    const removed = await pruneDatabase(
      target.s3,
      target.bucket,
      result.database,
      result.key,
      target.retention,
    );
    return { ...result, pruned: removed.map((d) => d.key) };
  } catch (error) {
    return { ...result, pruned: [], retentionError: errorMessage(error) };
  }
}

/** The command line's step for one database: the dump, then (after success only) its retention. */
export async function dumpAndPrune(target: BackupTarget, request: DumpRequest): Promise<DumpResult> {
  return pruneAfterDump(target, await dumpDatabase(target, request));
}

export interface BackupRequest {
  readonly config: Pick<
    DumpBagConfig,
    | 'databases'
    | 'exclude'
    | 'encryption'
    | 'publicKeys'
    | 'recipients'
    | 'passphraseFile'
    | 'keyExpiryWarningDays'
  >;
  readonly trigger: Trigger;
  /** Called as each database finishes, for progress output. */
  readonly onResult?: (result: DumpResult) => void;
  /** Called for each key about to expire, before any database is dumped. */
  readonly onKeyWarning?: (warning: KeyExpiryWarning) => void;
}

/**
 * One backup of every selected database, one after the other. Keys are read and checked first:
 * if encryption cannot be set up, nothing is dumped. A failing database does not stop the others.
 */
export async function runBackup(target: BackupTarget, request: BackupRequest): Promise<BackupSummary> {
  let encryption: Encryption;
  let plan: BackupPlan;
  let keyWarnings: KeyExpiryWarning[];
  // pg_dump --version (a Perl wrapper and pg_dump on Debian, 0.1 s) runs while keys are read and
  // the server is asked, when the binary does not depend on the server's major; a failure is
  // reported by the dump that needs it.
  const fixed = fixedPgDump(target.pgDump);
  if (fixed) cachedVersion(fixed).catch(() => {});
  try {
    // Both are read-only; the keys' error, if any, is the one reported.
    const [keys, planned] = await Promise.allSettled([
      loadEncryption(request.config),
      planBackup(target.connection, request.config),
    ]);
    if (keys.status === 'rejected') throw keys.reason;
    if (planned.status === 'rejected') throw planned.reason;
    encryption = keys.value;
    plan = planned.value;
    const warningDays = request.config.keyExpiryWarningDays ?? SETTINGS.keyExpiryWarningDays.default;
    keyWarnings = (await checkKeyExpiry(encryption, warningDays)).warnings;
  } catch (error) {
    const message = redact(errorMessage(error), connectionSecrets(target.connection));
    return { ok: false, results: [], error: message };
  }
  for (const warning of keyWarnings) request.onKeyWarning?.(warning);
  const results: DumpResult[] = [];
  for (const db of plan.databases) {
    const result = await dumpAndPrune(target, {
      database: db.name,
      server: plan.server,
      encryption,
      trigger: request.trigger,
      expectedBytes: db.sizeBytes,
      runner: 'local',
    });
    results.push(result);
    request.onResult?.(result);
  }
  // After the databases: a failing pg_dumpall must never hold their dumps back.
  const globals = await pruneAfterGlobals(
    target,
    await dumpGlobals(target, { server: plan.server, encryption, trigger: request.trigger }),
  );
  return {
    ok: results.every((r) => r.status === 'ok') && globals.status === 'ok',
    server: plan.server,
    results,
    globals,
    keyWarnings,
  };
}
