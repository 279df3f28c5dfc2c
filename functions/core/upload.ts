import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { errorMessage, UploadError } from './errors';

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB at least (but the last), 10,000 parts at most. */
const MIN_PART = 5 * MiB;
const MAX_PARTS = 10_000;
const DEFAULT_PART = 16 * MiB;

export interface UploadOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly body: Readable;
  readonly metadata?: Record<string, string>;
  readonly contentType?: string;
  /** The expected size, used to pick a part size that keeps a dump under the 10,000-part limit. */
  readonly expectedBytes?: number;
  /** Parts in flight at once. @default 4 */
  readonly concurrency?: number;
  /** The first part's size. @default 16 MiB, more when expectedBytes asks for it */
  readonly partSize?: number;
}

export interface UploadResult {
  readonly bytes: number;
  /** SHA-256 of the stored bytes, hex. */
  readonly sha256: string;
  readonly parts: number;
}

/** The first part's size: large enough that a dump of twice the expected size still fits in 10,000 parts. */
export function initialPartSize(expectedBytes = 0, requested = DEFAULT_PART): number {
  const needed = Math.ceil((expectedBytes * 2) / MAX_PARTS);
  return Math.max(MIN_PART, requested, Math.ceil(needed / MiB) * MiB);
}

/**
 * The size of part `n` (1-based): it doubles every 1,000 parts, so even a dump far larger than
 * expected never reaches the 10,000-part limit (16 MiB parts would carry more than 16 PiB).
 */
export function partSizeFor(partNumber: number, first: number): number {
  return first * 2 ** Math.floor((partNumber - 1) / 1000);
}

/**
 * Streams a body into one S3 object. Small bodies go in one PutObject; larger ones in a multipart
 * upload that is completed only after the body ended without error, and aborted on any failure,
 * so the object is either whole or absent.
 */
export async function uploadStream(options: UploadOptions): Promise<UploadResult> {
  const { client, bucket, key } = options;
  const concurrency = options.concurrency ?? 4;
  const first = initialPartSize(options.expectedBytes, options.partSize);
  const hash = createHash('sha256');
  let bytes = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let uploadId: string | undefined;
  let partNumber = 0;
  const done: { PartNumber: number; ETag: string }[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  const take = (size: number): Buffer => {
    const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    const part = all.subarray(0, size);
    const rest = all.subarray(size);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return part;
  };

  const sendPart = async (body: Buffer): Promise<void> => {
    if (!uploadId) {
      const created = await client.send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          Metadata: options.metadata,
          ContentType: options.contentType,
        }),
      );
      if (!created.UploadId) throw new UploadError('S3 returned no upload id');
      uploadId = created.UploadId;
    }
    const number = ++partNumber;
    const task = client
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: number,
          Body: body,
        }),
      )
      .then((result) => {
        if (!result.ETag) throw new UploadError(`S3 returned no ETag for part ${number}`);
        done.push({ PartNumber: number, ETag: result.ETag });
      })
      .catch((error: unknown) => {
        failure ??= error;
      });
    const tracked = task.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failure) throw failure;
  };

  try {
    for await (const chunk of options.body as AsyncIterable<Buffer | Uint8Array>) {
      const buffer = Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      hash.update(buffer);
      bytes += buffer.length;
      pending.push(buffer);
      pendingBytes += buffer.length;
      while (pendingBytes >= partSizeFor(partNumber + 1, first)) {
        await sendPart(take(partSizeFor(partNumber + 1, first)));
      }
      if (failure) throw failure;
    }
    if (!uploadId) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: take(pendingBytes),
          ContentLength: bytes,
          Metadata: options.metadata,
          ContentType: options.contentType,
        }),
      );
      return { bytes, sha256: hash.digest('hex'), parts: 1 };
    }
    if (pendingBytes > 0) await sendPart(take(pendingBytes));
    await Promise.all(inFlight);
    if (failure) throw failure;
    done.sort((a, b) => a.PartNumber - b.PartNumber);
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: done },
      }),
    );
    return { bytes, sha256: hash.digest('hex'), parts: done.length };
  } catch (error) {
    await Promise.allSettled(inFlight);
    if (uploadId) {
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
        .catch(() => {
          // The bucket's lifecycle rule and `dump-bag cleanup` remove what an abort could not.
        });
    }
    options.body.destroy();
    throw error;
  }
}

/** Wraps an S3 SDK failure so reports say which side failed. */
export function asUploadError(error: unknown, key: string): Error {
  if (error instanceof UploadError) return error;
  return new UploadError(`upload of ${key} failed: ${errorMessage(error)}`);
}
