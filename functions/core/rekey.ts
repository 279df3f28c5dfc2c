/**
 * Re-encrypts stored dumps for today's recipients without dumping again: only the session key
 * packets change; the encrypted body stays byte for byte (S3 copies it server-side).
 *
 * One dump at a time, in this order, each step safe to die after:
 *   1. an intent `rekey/<key>.json` holding the old head (the key packets);
 *   2. the object rebuilt over the same key (new head + old body);
 *   3. read back once: its SHA-256, and the old head + its body must hash to the old signed record's;
 *   4. the new record (recipients, SHA-256, size, rekeyedAt);
 *   5. older versions of the dump and record deleted, then the intent.
 * A second run finding an intent finishes the job: the object is either still the old one (it
 * starts with the intent's head: start again) or the new one (step 3 proves it against the record).
 * Over 300 lines: one dump's resumable steps in order; split, a recovery point would sit apart from the step it recovers.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { type DumpRecord, listObjects, MAX_RECORD_BYTES, readRecord, writeRecord } from './catalog';
import type { Encryption } from './encryption';
import { DumpBagError, errorMessage } from './errors';
import { DUMPS_PREFIX, databasePrefix, parseDumpKey, RECORD_SUFFIX, recordKey } from './naming';
import { HEAD_WINDOW, newKeyPackets, openSessionKey, readOldHead } from './rekey-head';
import {
  bucketKeepsVersions,
  deleteOtherVersions,
  getRange,
  type KeptVersion,
  readBack,
  rebuildObject,
} from './rekey-object';
import type { Secrets } from './seipd-reader';
import { type RecordSigner, signRecord } from './signing';

export class RekeyError extends DumpBagError {
  override name = 'RekeyError';
}

/** Where a dump's rekey intent lives: outside `dumps/`, so listing, retention and cleanup never see it. */
export const INTENT_PREFIX = 'rekey/';

export interface RekeyTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  /** Today's recipients (or passphrase), as `backup` reads them. */
  readonly encryption: Exclude<Encryption, { mode: 'none' }>;
  /** What opens a dump's session key: the reader's secret keys, or the passphrase. */
  readonly secretsFor: (record: DumpRecord) => Promise<Secrets>;
  /** Signs the new records, as `backup` does (the bag's key: local Ed25519 or KMS). */
  readonly signer: RecordSigner;
  readonly dryRun?: boolean;
  /** Server-side copy part size (tests make it small). */
  readonly copyPartBytes?: number;
  /** Called once the new object is stored and checked, before its record: tests die here. */
  readonly afterObject?: (key: string) => Promise<void> | void;
  readonly now?: () => Date;
}

export interface RekeyResult {
  readonly database: string;
  readonly id: string;
  readonly key: string;
  readonly status: 'rekeyed' | 'would-rekey' | 'unchanged' | 'failed';
  readonly removed: readonly string[];
  readonly added: readonly string[];
  readonly bytes?: number;
  /** Bytes sent and received, the read-back included. */
  readonly transferred?: number;
  /** Bytes S3 copied server-side (UploadPartCopy). */
  readonly copied?: number;
  /** Older versions S3 keeps (Object Lock): readable by the old recipients until `retainUntil`. */
  readonly kept?: readonly KeptVersion[];
  readonly error?: string;
}

interface Intent {
  readonly key: string;
  readonly oldSha256: string;
  /** The old key packets, base64. */
  readonly oldHead: string;
  readonly startedAt: string;
  /** Whom the new head is for: a resumed run records these, not whatever today's are by then. */
  readonly encryption: 'gpg' | 'passphrase';
  readonly recipients: readonly Recipient[];
}

type Recipient = DumpRecord['recipients'][number];

function label(r: Recipient): string {
  return r.userId ? `${r.userId} (${r.fingerprint})` : r.fingerprint;
}

/** Who loses and who gains access: fingerprints, or `passphrase` for a symmetric dump. */
function recipientsDiff(record: DumpRecord, today: Encryption): { removed: string[]; added: string[] } {
  const side = (mode: string, recipients: readonly Recipient[]) =>
    mode === 'passphrase'
      ? new Map([['passphrase', 'the passphrase']])
      : new Map(recipients.map((r) => [r.fingerprint.toUpperCase(), label(r)]));
  const before = side(record.encryption, record.recipients);
  const after = side(today.mode, today.mode === 'gpg' ? today.recipients : []);
  return {
    removed: [...before].filter(([f]) => !after.has(f)).map(([, l]) => l),
    added: [...after].filter(([f]) => !before.has(f)).map(([, l]) => l),
  };
}

async function readJson(s3: S3Client, bucket: string, key: string): Promise<unknown> {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if ((response.ContentLength ?? 0) > MAX_RECORD_BYTES)
    throw new RekeyError(`${key} is over ${MAX_RECORD_BYTES} bytes`);
  const text = await (response.Body as { transformToString(): Promise<string> }).transformToString();
  try {
    return JSON.parse(text);
  } catch {
    throw new RekeyError(`${key} is not JSON`);
  }
}

async function readIntent(s3: S3Client, bucket: string, key: string): Promise<Intent | undefined> {
  let value: unknown;
  try {
    value = await readJson(s3, bucket, `${INTENT_PREFIX}${key}${RECORD_SUFFIX}`);
  } catch (error: unknown) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw error;
  }
  const i = value as Partial<Intent> | null;
  if (
    !i ||
    i.key !== key ||
    typeof i.oldHead !== 'string' ||
    !/^[0-9a-f]{64}$/.test(String(i.oldSha256)) ||
    (i.encryption !== 'gpg' && i.encryption !== 'passphrase') ||
    !Array.isArray(i.recipients) ||
    !i.recipients.every((x) => typeof x?.fingerprint === 'string' && typeof x.userId === 'string')
  ) {
    throw new RekeyError(
      `the rekey intent of ${key} is malformed: delete ${INTENT_PREFIX}${key}${RECORD_SUFFIX} if no rekey runs`,
    );
  }
  return i as Intent;
}

/** Re-keys every dump (of one database, or all) whose recipients differ from today's. */
export async function rekeyDumps(
  target: RekeyTarget,
  options: { database?: string; onResult?: (result: RekeyResult) => void } = {},
): Promise<RekeyResult[]> {
  const prefix = options.database === undefined ? DUMPS_PREFIX : databasePrefix(options.database);
  const objects = await listObjects(target.s3, target.bucket, prefix);
  const records = new Set(objects.filter((o) => o.key.endsWith(RECORD_SUFFIX)).map((o) => o.key));
  const dumps = objects.filter((o) => parseDumpKey(o.key)?.encrypted && records.has(recordKey(o.key)));
  const versioned = target.dryRun
    ? false
    : await bucketKeepsVersions(target.s3, target.bucket).catch(() => false);
  const results: RekeyResult[] = [];
  for (const dump of dumps) {
    const parsed = parseDumpKey(dump.key) as { database: string; id: string };
    let result: RekeyResult;
    try {
      result = await rekeyOne(target, dump.key, versioned);
    } catch (error: unknown) {
      result = {
        ...parsed,
        key: dump.key,
        status: 'failed',
        removed: [],
        added: [],
        error: errorMessage(error),
      };
    }
    results.push(result);
    options.onResult?.(result);
  }
  return results;
}

// biome-ignore lint/complexity/noExcessiveCognitiveComplexity: the resumable steps of one dump in their order (intent, rebuilt object, read-back, record, old copies); each branch is where a killed run picks up
async function rekeyOne(target: RekeyTarget, key: string, versioned: boolean): Promise<RekeyResult> {
  const { s3, bucket } = target;
  const record = await readRecord(s3, bucket, key, parseDumpKey(key)).catch((error: unknown) => {
    throw new RekeyError(`${errorMessage(error)}: left alone`);
  });
  const base = { database: record.database, id: record.id, key };
  const intent = await readIntent(s3, bucket, key);
  const { removed, added } = recipientsDiff(record, target.encryption);
  if (!intent && removed.length === 0 && added.length === 0)
    return { ...base, status: 'unchanged', removed, added };
  if (target.dryRun) return { ...base, status: 'would-rekey', removed, added };
  if (record.encryption === 'none') throw new RekeyError('an unencrypted dump: nothing to re-key');

  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const size = head.ContentLength ?? -1;
  const window = await getRange(s3, bucket, key, 0, Math.min(size, HEAD_WINDOW), head.VersionId);
  let transferred = window.length;
  let oldHead: Buffer;
  let rebuilt = false;
  let copied = 0;
  let wrote: Pick<Intent, 'encryption' | 'recipients'> = intent ?? {
    encryption: target.encryption.mode,
    recipients:
      target.encryption.mode === 'gpg'
        ? target.encryption.recipients.map((r) => ({ fingerprint: r.fingerprint, userId: r.userId }))
        : [],
  };
  if (
    intent &&
    !window
      .subarray(0, Buffer.from(intent.oldHead, 'base64').length)
      .equals(Buffer.from(intent.oldHead, 'base64'))
  ) {
    // A run died after rebuilding the object: the read-back below proves it against the old record.
    if (intent.oldSha256 !== record.sha256)
      return finishRecorded(target, record, intent, versioned, removed, added);
    oldHead = Buffer.from(intent.oldHead, 'base64');
  } else {
    if (size !== record.bytes)
      throw new RekeyError(`the object is ${size} bytes, its record says ${record.bytes}: left alone`);
    oldHead = readOldHead(window, size).keyPackets;
    const sessionKey = await openSessionKey(
      { keyPackets: oldHead },
      window.subarray(oldHead.length),
      await target.secretsFor(record),
    );
    const newHead = await newKeyPackets(sessionKey, target.encryption);
    wrote = {
      encryption: target.encryption.mode,
      recipients:
        target.encryption.mode === 'gpg'
          ? target.encryption.recipients.map((r) => ({ fingerprint: r.fingerprint, userId: r.userId }))
          : [],
    };
    const fresh: Intent = {
      key,
      oldSha256: record.sha256,
      oldHead: oldHead.toString('base64'),
      startedAt: new Date().toISOString(),
      ...wrote,
    };
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${INTENT_PREFIX}${key}${RECORD_SUFFIX}`,
        Body: JSON.stringify(fresh),
        ContentType: 'application/json',
      }),
    );
    const done = await rebuildObject(
      s3,
      bucket,
      key,
      { size, bodyStart: oldHead.length, versionId: head.VersionId },
      newHead,
      target.copyPartBytes,
    );
    transferred += done.transferred;
    copied = done.copied;
    rebuilt = true;
  }
  const current = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const newHeadBytes = await newHeadLength(s3, bucket, key, current.VersionId, current.ContentLength ?? 0);
  const check = await readBack(s3, bucket, key, { newHeadBytes, oldHead }, current.VersionId);
  transferred += check.bytes + newHeadBytes;
  if (check.oldSha256 !== record.sha256) {
    throw new RekeyError(
      rebuilt
        ? 'the rebuilt object does not carry the body the signed record describes: the old versions are kept, run rekey again'
        : 'the object is neither the recorded dump nor a rekey of it: left alone, compare it with the record (dump-bag verify)',
    );
  }
  await target.afterObject?.(key);
  const now = (target.now ?? (() => new Date()))();
  const next = {
    ...record,
    ...wrote,
    sha256: check.sha256,
    bytes: check.bytes,
    rekeyedAt: now.toISOString(),
  };
  await writeRecord(s3, bucket, await signRecord(next, target.signer), { replace: true });
  const kept = await dropOldCopies(target, key, versioned, current.VersionId);
  return { ...base, status: 'rekeyed', removed, added, bytes: check.bytes, transferred, copied, kept };
}

/** The new head's length: its key packets, read with the same bounded parser as the old. */
async function newHeadLength(
  s3: S3Client,
  bucket: string,
  key: string,
  versionId: string | undefined,
  size: number,
): Promise<number> {
  const window = await getRange(s3, bucket, key, 0, Math.min(size, HEAD_WINDOW), versionId);
  return readOldHead(window, size).keyPackets.length;
}

/** The record was written by a run that died before deleting the old copies: delete them now. */
async function finishRecorded(
  target: RekeyTarget,
  record: DumpRecord,
  _intent: Intent,
  versioned: boolean,
  removed: string[],
  added: string[],
): Promise<RekeyResult> {
  const current = await target.s3.send(new HeadObjectCommand({ Bucket: target.bucket, Key: record.key }));
  const kept = await dropOldCopies(target, record.key, versioned, current.VersionId);
  return {
    database: record.database,
    id: record.id,
    key: record.key,
    status: 'rekeyed',
    removed,
    added,
    bytes: record.bytes,
    kept,
  };
}

/** With versioning, every older version of the dump and its record goes (the leaver's copies); then the intent. */
async function dropOldCopies(
  target: RekeyTarget,
  key: string,
  versioned: boolean,
  keep: string | undefined,
): Promise<KeptVersion[]> {
  const { s3, bucket } = target;
  const kept: KeptVersion[] = [];
  const intentKey = `${INTENT_PREFIX}${key}${RECORD_SUFFIX}`;
  if (versioned) {
    kept.push(...(await deleteOtherVersions(s3, bucket, key, keep)));
    const recordHead = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: recordKey(key) }));
    kept.push(...(await deleteOtherVersions(s3, bucket, recordKey(key), recordHead.VersionId)));
    await deleteOtherVersions(s3, bucket, intentKey, undefined);
  } else {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: intentKey }));
  }
  return kept;
}
