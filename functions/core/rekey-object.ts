import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { errorMessage } from './errors';

/** S3's smallest part but the last (and so the body bytes the first part carries besides the head). */
export const MIN_PART = 5 * 1024 * 1024;
/** Server-side copy parts: S3 allows up to 5 GiB; 512 MiB keeps 10,000 parts above 5 TiB. */
export const COPY_PART = 512 * 1024 * 1024;

/** Bytes [start, end) of an object (of one version when given). */
export async function getRange(
  s3: S3Client,
  bucket: string,
  key: string,
  start: number,
  end: number,
  versionId?: string,
): Promise<Buffer> {
  if (end <= start) return Buffer.alloc(0);
  const response = await s3.send(
    new GetObjectCommand({
      Bucket: bucket,
      Key: key,
      Range: `bytes=${start}-${end - 1}`,
      VersionId: versionId,
    }),
  );
  const bytes = Buffer.from(
    await (response.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
  if (bytes.length !== end - start)
    throw new Error(`${key}: asked for ${end - start} bytes, got ${bytes.length}`);
  return bytes;
}

export interface Rebuilt {
  readonly versionId?: string;
  /** Bytes the client sent and received building it (the head and the first part's body bytes). */
  readonly transferred: number;
  /** Bytes S3 copied from the old object to the new one itself (UploadPartCopy). */
  readonly copied: number;
}

/**
 * Writes `newHead` + the source's bytes from `bodyStart` on over the same key. A body under one
 * part is fetched and put whole; else the first part carries the head and 5 MiB of the body, and
 * the rest is copied by S3 itself (UploadPartCopy), never passing through here.
 */
export async function rebuildObject(
  s3: S3Client,
  bucket: string,
  key: string,
  source: { readonly size: number; readonly bodyStart: number; readonly versionId?: string },
  newHead: Buffer,
  copyPartBytes = COPY_PART,
): Promise<Rebuilt> {
  const bodyBytes = source.size - source.bodyStart;
  const contentType = 'application/pgp-encrypted';
  if (bodyBytes <= MIN_PART) {
    const body = await getRange(s3, bucket, key, source.bodyStart, source.size, source.versionId);
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: Buffer.concat([newHead, body]),
        ContentType: contentType,
      }),
    );
    return { versionId: put.VersionId, transferred: 2 * body.length + newHead.length, copied: 0 };
  }
  const first = await getRange(
    s3,
    bucket,
    key,
    source.bodyStart,
    source.bodyStart + MIN_PART,
    source.versionId,
  );
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType }),
  );
  try {
    const parts = [
      {
        PartNumber: 1,
        ETag: (
          await s3.send(
            new UploadPartCommand({
              Bucket: bucket,
              Key: key,
              UploadId,
              PartNumber: 1,
              Body: Buffer.concat([newHead, first]),
            }),
          )
        ).ETag,
      },
    ];
    const copySource = `${bucket}/${encodeURIComponent(key)}${source.versionId ? `?versionId=${source.versionId}` : ''}`;
    for (let at = source.bodyStart + MIN_PART; at < source.size; at += copyPartBytes) {
      const end = Math.min(source.size, at + copyPartBytes) - 1;
      const PartNumber = parts.length + 1;
      const copied = await s3.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber,
          CopySource: copySource,
          CopySourceRange: `bytes=${at}-${end}`,
        }),
      );
      parts.push({ PartNumber, ETag: copied.CopyPartResult?.ETag });
    }
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    return {
      versionId: done.VersionId,
      transferred: 2 * first.length + newHead.length,
      copied: source.size - source.bodyStart - MIN_PART,
    };
  } catch (error: unknown) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => {});
    throw error;
  }
}

export interface ReadBack {
  readonly sha256: string;
  readonly bytes: number;
  /** The SHA-256 the old object had: the old head, then these bytes after the new head. */
  readonly oldSha256: string;
}

/**
 * Reads the object once, streaming: its SHA-256 and size, and the SHA-256 of the old head followed
 * by its body, which must equal the old signed record's, proving the body is the one that was signed.
 */
export async function readBack(
  s3: S3Client,
  bucket: string,
  key: string,
  heads: { readonly newHeadBytes: number; readonly oldHead: Buffer },
  versionId?: string,
): Promise<ReadBack> {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  const whole = createHash('sha256');
  const old = createHash('sha256').update(heads.oldHead);
  let bytes = 0;
  for await (const chunk of response.Body as Readable) {
    const piece = chunk as Buffer;
    whole.update(piece);
    const skip = Math.max(0, Math.min(piece.length, heads.newHeadBytes - bytes));
    old.update(piece.subarray(skip));
    bytes += piece.length;
  }
  return { sha256: whole.digest('hex'), bytes, oldSha256: old.digest('hex') };
}

/** Whether the bucket keeps versions (Enabled, or Suspended with old ones kept). */
export async function bucketKeepsVersions(s3: S3Client, bucket: string): Promise<boolean> {
  const { Status } = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
  return Status === 'Enabled' || Status === 'Suspended';
}

/** A version that could not be deleted, and until when it stays (Object Lock). */
export interface KeptVersion {
  readonly key: string;
  readonly versionId: string;
  readonly retainUntil?: string;
  readonly why: string;
}

/** Deletes every version of `key` (and delete marker) but `keep`; returns the versions S3 refused to delete. */
export async function deleteOtherVersions(
  s3: S3Client,
  bucket: string,
  key: string,
  keep: string | undefined,
): Promise<KeptVersion[]> {
  const kept: KeptVersion[] = [];
  let KeyMarker: string | undefined;
  let VersionIdMarker: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key, KeyMarker, VersionIdMarker }),
    );
    // The prefix also matches the record (`<key>.json`) and longer keys: only this key's versions go.
    const doomed = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]
      .filter((v) => v.Key === key && v.VersionId && v.VersionId !== keep)
      .map((v) => v.VersionId as string);
    for (const versionId of doomed) {
      try {
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
      } catch (error: unknown) {
        kept.push(await whyKept(s3, bucket, key, versionId, error));
      }
    }
    KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    VersionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (KeyMarker);
  return kept;
}

async function whyKept(
  s3: S3Client,
  bucket: string,
  key: string,
  versionId: string,
  error: unknown,
): Promise<KeptVersion> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    if (head.ObjectLockLegalHoldStatus === 'ON') {
      return { key, versionId, why: 'an Object Lock legal hold is on it (until someone lifts it)' };
    }
    if (head.ObjectLockRetainUntilDate) {
      return {
        key,
        versionId,
        retainUntil: head.ObjectLockRetainUntilDate.toISOString(),
        why: `Object Lock (${head.ObjectLockMode ?? 'retention'}) keeps it until then`,
      };
    }
  } catch {
    // The delete's own error says more.
  }
  return { key, versionId, why: `S3 refused to delete it: ${errorMessage(error)}` };
}
