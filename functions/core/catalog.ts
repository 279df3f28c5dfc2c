/**
 * The bucket as a catalog of dumps: each dump's record (what it holds, who can read it, its signature),
 * written next to it and read back as hostile input; listing, lookup, deletion and presigned downloads.
 * Over 300 lines: every reader (API, command line, retention, rekey) goes through these few S3 calls,
 * so the record's shape and its checks stay in one place.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { EncryptionMode, Trigger } from './config';
import { NotFoundError, ValidationError } from './errors';
import { DUMPS_PREFIX, databasePrefixes, parseDumpKey, RECORD_SUFFIX, recordKey } from './naming';
import type { RecordedRunner } from './runner';

/** The signature a record carries next to its fields. */
export interface RecordSignature {
  /** `ed25519` (the command line's key) or `ecdsa-p256-sha256` (a KMS key), for people; verification goes by the key. */
  readonly algorithm: string;
  /** Which key signed it, for people: `sha256:<SPKI fingerprint>` for a local key, the key's ARN or id for KMS. */
  readonly key: string;
  /** The signature, base64 (ECDSA in DER, as KMS returns it). */
  readonly value: string;
}

/** What Dump Bag records of every dump, next to it, so it can be listed and verified without downloading it. */
export interface DumpRecord {
  readonly database: string;
  /** The start time in UTC, `YYYYMMDD-HHMMSS` then `-mmm-<8 hex>` (naming.ts); older dumps have the seconds only. */
  readonly id: string;
  readonly key: string;
  /** ISO time the dump started. */
  readonly createdAt: string;
  readonly trigger: Trigger;
  readonly encryption: EncryptionMode;
  /** Who can decrypt it: the recipients' keys. */
  readonly recipients: readonly { readonly fingerprint: string; readonly userId: string }[];
  readonly pgDumpVersion: string;
  readonly serverVersion: string;
  /** pg_dump's compression, e.g. `gzip:1`. */
  readonly compression: string;
  /** SHA-256 (hex) and size of the stored bytes. */
  readonly sha256: string;
  readonly bytes: number;
  /** How long the dump took, from pg_dump's start to the stored object (the record is written after). */
  readonly seconds: number;
  /** The bag's signature over the canonical fields (functions/core/signing.ts); absent on older dumps. */
  readonly signature?: RecordSignature;
  /** The custom-format archive's version from its header, e.g. "1.16.0" (absent in older records). */
  readonly archiveVersion?: string;
  /** The oldest pg_restore major that reads this archive. */
  readonly restoreMajor?: number;
  /** The allow-listed pg_dump flags it was made with. */
  readonly dumpOptions?: readonly string[];
  /** Where the dump ran: `lambda` or `fargate` in AWS, `local` from the command line; absent in older records. */
  readonly runner?: RecordedRunner;
}

export interface StoredObject {
  readonly key: string;
  readonly size: number;
  readonly lastModified?: Date;
}

/** Every object under a prefix, all pages. */
export async function listObjects(client: S3Client, bucket: string, prefix: string): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) {
      if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/**
 * Writes a dump's record. A new dump's record never replaces another (`If-None-Match: *`, S3 answers
 * 412); `replace` is for rekey, which rewrites the record of the dump it has just re-encrypted.
 */
export async function writeRecord(
  client: S3Client,
  bucket: string,
  record: DumpRecord,
  options: { replace?: boolean } = {},
): Promise<void> {
  await client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: recordKey(record.key),
      Body: JSON.stringify(record, null, 2),
      ContentType: 'application/json',
      IfNoneMatch: options.replace ? undefined : '*',
    }),
  );
}

/** The most a record may weigh when read back; a real one is about a kilobyte. */
export const MAX_RECORD_BYTES = 64 * 1024;

/** Whose record it must be: the database and id its object's key names. */
export interface RecordOwner {
  readonly database: string;
  readonly id: string;
}

/** A record read back, checked before any field is used; undefined when malformed or naming another object. */
export function checkedRecord(
  value: unknown,
  key: string,
  owner: RecordOwner | undefined,
): DumpRecord | undefined {
  const r = value as Partial<DumpRecord> | null;
  const ok =
    owner !== undefined &&
    r !== null &&
    typeof r === 'object' &&
    r.key === key &&
    r.database === owner.database &&
    r.id === owner.id &&
    (r.encryption === 'gpg' || r.encryption === 'passphrase' || r.encryption === 'none') &&
    Array.isArray(r.recipients) &&
    r.recipients.every((x) => typeof x?.fingerprint === 'string' && typeof x.userId === 'string') &&
    typeof r.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(r.sha256) &&
    Number.isSafeInteger(r.bytes) &&
    (r.bytes as number) >= 0;
  return ok ? (r as DumpRecord) : undefined;
}

/**
 * The record beside the object at `key`, bounded in size and checked to belong to `owner`; throws when
 * it is missing, too large, not JSON or not the object's record.
 */
export async function readRecord(
  client: S3Client,
  bucket: string,
  key: string,
  owner: RecordOwner | undefined,
): Promise<DumpRecord> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: recordKey(key) }));
  if ((response.ContentLength ?? 0) > MAX_RECORD_BYTES) {
    throw new ValidationError(`the record of ${key} is over ${MAX_RECORD_BYTES} bytes`);
  }
  const text = await (response.Body as { transformToString(): Promise<string> }).transformToString();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError(`the record of ${key} is not JSON`);
  }
  const record = checkedRecord(value, key, owner);
  if (!record) throw new ValidationError(`the record of ${key} is malformed or names another dump`);
  return record;
}

/** Runs `fn` over items with at most `limit` at once, keeping order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Newest first by the time in the key (the bucket's LastModified is no order of dumps), then by database. */
export function newestFirst(
  a: { id: string; database: string },
  b: { id: string; database: string },
): number {
  return a.id === b.id ? a.database.localeCompare(b.database) : a.id < b.id ? 1 : -1;
}

export interface DumpObjects {
  /** Dumps with their record: complete and verifiable. */
  readonly complete: StoredObject[];
  /** Dump objects without a record: left by a run that died between upload and record. */
  readonly orphans: StoredObject[];
}

/** The dump objects under `dumps/` (or one database's folder), split by whether their record exists. */
export async function scanDumps(client: S3Client, bucket: string, database?: string): Promise<DumpObjects> {
  const prefixes = database === undefined ? [DUMPS_PREFIX] : databasePrefixes(database);
  const objects = (await Promise.all(prefixes.map((p) => listObjects(client, bucket, p)))).flat();
  const records = new Set(objects.filter((o) => o.key.endsWith(RECORD_SUFFIX)).map((o) => o.key));
  // Only this database's dumps, whatever a server makes of a `..` in the prefix.
  const dumps = objects.filter((o) => {
    const parsed = parseDumpKey(o.key);
    return parsed !== undefined && (database === undefined || parsed.database === database);
  });
  return {
    complete: dumps.filter((o) => records.has(recordKey(o.key))),
    orphans: dumps.filter((o) => !records.has(recordKey(o.key))),
  };
}

/** The complete dumps, newest first, with their records. */
export async function listDumps(client: S3Client, bucket: string, database?: string): Promise<DumpRecord[]> {
  const { complete } = await scanDumps(client, bucket, database);
  // A record that cannot be read or parsed is skipped, never allowed to break the listing.
  const records = await mapLimit(complete, 8, (o) =>
    readRecord(client, bucket, o.key, parseDumpKey(o.key)).catch(() => undefined),
  );
  return records.filter((r): r is DumpRecord => typeof r === 'object' && r !== null).sort(newestFirst);
}

/** One dump by id, or the newest with `latest`. */
export async function getDump(
  client: S3Client,
  bucket: string,
  database: string,
  id: string,
): Promise<DumpRecord> {
  const dumps = await listDumps(client, bucket, database);
  const found = id === 'latest' ? dumps[0] : dumps.find((d) => d.id === id);
  if (!found)
    throw new NotFoundError(id === 'latest' ? `no dump of ${database}` : `no dump ${id} of ${database}`);
  return found;
}

/** Deletes a dump and its record, the dump first so that a half-done delete leaves an orphan, never a lie. */
export async function deleteDump(client: S3Client, bucket: string, key: string): Promise<void> {
  if (!parseDumpKey(key)) throw new Error(`refusing to delete ${key}: not a dump key`);
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: recordKey(key) }));
}

/** A download file name that every browser and shell takes as is. */
function downloadName(record: DumpRecord): string {
  const base = record.key.slice(record.key.lastIndexOf('/') + 1);
  return decodeURIComponent(base).replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** A download URL for one dump and when it stops working. */
export interface PresignedDump {
  readonly url: string;
  readonly expiresAt: string;
}

/**
 * A presigned GET of a listed dump, after checking that the record names its own dump key and the
 * object still exists. The URL is a bearer credential: return it, never log it.
 */
export async function presignDump(
  client: S3Client,
  bucket: string,
  record: DumpRecord,
  expirySeconds: number,
  now = new Date(),
): Promise<PresignedDump> {
  // The key comes from the bucket's listing; the record's copy of it must agree before it is signed.
  const parsed = parseDumpKey(record.key);
  if (
    !record.key.startsWith(DUMPS_PREFIX) ||
    !parsed ||
    parsed.database !== record.database ||
    parsed.id !== record.id
  ) {
    throw new Error('a catalog record names a key that is not its dump');
  }
  return await presignExisting(client, bucket, record.key, downloadName(record), expirySeconds, now, 'dump');
}

/**
 * A presigned GET of an object checked to exist, downloaded as `filename`; `what` names it when it is
 * gone. The URL is a credential: never log it.
 */
export async function presignExisting(
  client: S3Client,
  bucket: string,
  key: string,
  filename: string,
  expirySeconds: number,
  now: Date,
  what: string,
): Promise<PresignedDump> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error: unknown) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      throw new NotFoundError(`this ${what} was deleted a moment ago`);
    }
    throw error;
  }
  const url = await getSignedUrl(
    client,
    new GetObjectCommand({
      Bucket: bucket,
      Key: key,
      ResponseContentDisposition: `attachment; filename="${filename}"`,
    }),
    { expiresIn: expirySeconds },
  );
  let expires = now.getTime() + expirySeconds * 1000;
  // A URL signed with temporary credentials dies with them; say so rather than promise longer.
  const credentials = await client.config.credentials();
  if (credentials.expiration) expires = Math.min(expires, credentials.expiration.getTime());
  return { url, expiresAt: new Date(expires).toISOString() };
}
