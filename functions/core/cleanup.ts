import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { scanDumps } from './catalog';
import { ValidationError } from './errors';
import { DUMPS_PREFIX, parseDumpKey } from './naming';

/** What `cleanup` leaves alone by default: a backup running for a day is long past any Lambda or Fargate limit. */
export const DEFAULT_CLEANUP_AGE_MS = 24 * 60 * 60 * 1000;
/** Pages of open uploads read at most (1,000 each): a bucket with more is not one this cleanup can judge. */
const MAX_UPLOAD_PAGES = 100;

const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30m`, `24h`, `7d` (or `90s`) in milliseconds; a bare number is refused, as its unit would be a guess. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text.trim());
  if (!m) {
    throw new ValidationError(
      `"${text.slice(0, 40)}" is no duration: give a whole number and a unit, e.g. 30m, 24h or 7d`,
    );
  }
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

export interface CleanupResult {
  /** Multipart uploads under `dumps/` that were aborted. */
  readonly abortedUploads: { readonly key: string; readonly uploadId: string }[];
  /** Dump objects without a record (a run died between upload and record) that were deleted. */
  readonly deletedOrphans: string[];
}

/** Aborts the open multipart uploads under `dumps/` that `old` finds old enough, by their `Initiated`. */
async function abortOldUploads(
  client: S3Client,
  bucket: string,
  old: (time: Date | undefined) => boolean,
): Promise<CleanupResult['abortedUploads']> {
  const aborted: { key: string; uploadId: string }[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  let pages = 0;
  do {
    const page = await client.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        Prefix: DUMPS_PREFIX,
        KeyMarker: keyMarker,
        UploadIdMarker: uploadIdMarker,
      }),
    );
    for (const upload of page.Uploads ?? []) {
      if (!upload.Key?.startsWith(DUMPS_PREFIX) || !upload.UploadId || !old(upload.Initiated)) continue;
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
      );
      aborted.push({ key: upload.Key, uploadId: upload.UploadId });
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
  } while (keyMarker && ++pages < MAX_UPLOAD_PAGES);
  return aborted;
}

/**
 * Removes what runs killed part-way left behind: open multipart uploads and dumps without a record,
 * only under `dumps/` and only when older than `olderThanMs` (24 hours unless given), measured from
 * the upload's `Initiated` and the object's `LastModified`, never from the time in its key: a backup
 * still running, however early its id, is spared. What carries no time is left alone.
 */
export async function cleanupIncomplete(
  client: S3Client,
  bucket: string,
  options: { olderThanMs?: number; now?: Date } = {},
): Promise<CleanupResult> {
  const cutoff = (options.now ?? new Date()).getTime() - (options.olderThanMs ?? DEFAULT_CLEANUP_AGE_MS);
  const old = (time: Date | undefined) => time !== undefined && time.getTime() <= cutoff;
  const abortedUploads = await abortOldUploads(client, bucket, old);

  const deletedOrphans: string[] = [];
  for (const orphan of (await scanDumps(client, bucket)).orphans) {
    // A dump whose record is being written right now is an orphan too, for a moment: its age tells.
    if (!parseDumpKey(orphan.key) || !old(orphan.lastModified)) continue;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: orphan.key }));
    deletedOrphans.push(orphan.key);
  }
  return { abortedUploads, deletedOrphans };
}

/**
 * Deletes a dump this run stored and could not record, only while it is still the object this run
 * wrote (`If-Match` its ETag): whatever else sits at the key is never touched. Without an ETag it
 * stays, for `cleanup` to remove a day later.
 */
export async function removeOwnDump(
  client: S3Client,
  bucket: string,
  key: string,
  etag: string | undefined,
): Promise<boolean> {
  if (!etag || !parseDumpKey(key)) return false;
  try {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: etag }));
    return true;
  } catch {
    // Refused (not ours any more) or S3 failed: the record is missing either way, so nobody can trust it.
    return false;
  }
}
