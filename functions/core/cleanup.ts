import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { scanDumps } from './catalog';
import { DUMPS_PREFIX, idToDate, parseDumpKey } from './naming';

export interface CleanupResult {
  /** Multipart uploads under `dumps/` that were aborted. */
  readonly abortedUploads: { readonly key: string; readonly uploadId: string }[];
  /** Dump objects without a record (a run died between upload and record) that were deleted. */
  readonly deletedOrphans: string[];
}

/**
 * Removes what runs killed part-way left behind: open multipart uploads and dumps without a record,
 * only under `dumps/` and only when older than `olderThanMs`, so a backup still running is spared.
 */
export async function cleanupIncomplete(
  client: S3Client,
  bucket: string,
  options: { olderThanMs?: number; now?: Date } = {},
): Promise<CleanupResult> {
  const cutoff = (options.now ?? new Date()).getTime() - (options.olderThanMs ?? 0);
  const abortedUploads: CleanupResult['abortedUploads'] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
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
      if (!upload.Key || !upload.UploadId) continue;
      if (upload.Initiated && upload.Initiated.getTime() > cutoff) continue;
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
      );
      abortedUploads.push({ key: upload.Key, uploadId: upload.UploadId });
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
  } while (keyMarker);

  const deletedOrphans: string[] = [];
  for (const orphan of (await scanDumps(client, bucket)).orphans) {
    const started = idToDate(parseDumpKey(orphan.key)?.id ?? '');
    if (!started || started.getTime() > cutoff) continue;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: orphan.key }));
    deletedOrphans.push(orphan.key);
  }
  return { abortedUploads, deletedOrphans };
}
