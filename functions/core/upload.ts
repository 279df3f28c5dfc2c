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
import { chunksOf } from './chunks';
import { errorMessage, UploadError } from './errors';
import { SETTINGS } from './settings';

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB at least (but the last) and 5 GiB at most, 10,000 parts at most. */
const MIN_PART = 5 * MiB;
const MAX_PART = 5 * 1024 * MiB;
const MAX_PARTS = 10_000;
/**
 * 6 MiB parts, 3 in flight: the reference dump's peak RSS was 158–160 MiB with 8 MiB parts and 153 MiB
 * with 6 (at 3 or 4 in flight alike); on S3 three parts in flight carry far more than pg_dump writes.
 */
const DEFAULT_PART = SETTINGS.partSizeMiB.default * MiB;
const DEFAULT_CONCURRENCY = SETTINGS.uploadConcurrency.default;

export interface UploadOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly body: Readable;
  readonly metadata?: Record<string, string>;
  readonly contentType?: string;
  /** The expected size, used to pick a part size that keeps a dump under the 10,000-part limit. */
  readonly expectedBytes?: number;
  /** Parts in flight at once. @default 3 */
  readonly concurrency?: number;
  /** The first part's size. @default 6 MiB, more when expectedBytes asks for it */
  readonly partSize?: number;
}

export interface UploadResult {
  readonly bytes: number;
  /** SHA-256 of the stored bytes, hex. */
  readonly sha256: string;
  readonly parts: number;
  /** The stored object's ETag, so that only this very object is ever deleted on a later failure. */
  readonly etag?: string;
}

/** The first part's size: large enough that a dump of twice the expected size still fits in 10,000 parts. */
export function initialPartSize(expectedBytes = 0, requested = DEFAULT_PART): number {
  const needed = Math.ceil((expectedBytes * 2) / MAX_PARTS);
  return Math.min(MAX_PART, Math.max(MIN_PART, requested, Math.ceil(needed / MiB) * MiB));
}

/**
 * The size of part `n` (1-based): it doubles every 1,000 parts (up to S3's 5 GiB), so even a dump
 * far larger than expected never reaches the 10,000-part limit: from 6 MiB, 10,000 parts carry 5.8 TiB.
 */
export function partSizeFor(partNumber: number, first: number): number {
  return Math.min(MAX_PART, first * 2 ** Math.floor((partNumber - 1) / 1000));
}

/**
 * Signs a part's headers but not its bytes, as the AWS CLI does over HTTPS. The SDK would otherwise
 * hash every part with SHA-256 only to sign it, on top of the SHA-256 of the whole object that is
 * recorded and, with the OpenPGP integrity check, is what proves a dump intact.
 */
function signHeadersOnly(command: UploadPartCommand): UploadPartCommand {
  command.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'dumpBagUnsignedPayload' },
  );
  return command;
}

/**
 * Part buffers, reused once their part is stored: memory stays at (concurrency + 1) parts however
 * long the dump, and the garbage collector is not handed a fresh part every few megabytes.
 */
class PartBuffers {
  private free: Buffer[] = [];

  take(size: number): Buffer {
    const reused = this.free.pop();
    if (reused && reused.length === size) return reused;
    // Part sizes only grow: a smaller free buffer is of no more use.
    this.free = [];
    return Buffer.allocUnsafeSlow(size);
  }

  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}

/**
 * Streams a body into one S3 object. Small bodies go in one PutObject; larger ones in a multipart
 * upload that is completed only after the body ended without error, and aborted on any failure,
 * so the object is either whole or absent. Both writes carry `If-None-Match: *`: an existing
 * object at the key is never replaced.
 */
// biome-ignore lint/complexity/noExcessiveCognitiveComplexity: one streaming state (part buffers, parts in flight, first failure) shared by the closures that fill, send and abort; split up, each part would pass all of it around
export async function uploadStream(options: UploadOptions): Promise<UploadResult> {
  const { client, bucket, key } = options;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const first = initialPartSize(options.expectedBytes, options.partSize);
  const hash = createHash('sha256');
  const buffers = new PartBuffers();
  let bytes = 0;
  let part = buffers.take(partSizeFor(1, first));
  let filled = 0;
  let uploadId: string | undefined;
  let partNumber = 0;
  const done: { PartNumber: number; ETag: string }[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  const sendPart = async (buffer: Buffer, length: number): Promise<void> => {
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
    const command = signHeadersOnly(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: number,
        Body: buffer.subarray(0, length),
        ContentLength: length,
      }),
    );
    const task = client
      .send(command)
      .then((result) => {
        if (!result.ETag) throw new UploadError(`S3 returned no ETag for part ${number}`);
        done.push({ PartNumber: number, ETag: result.ETag });
        buffers.give(buffer);
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
    for await (const buffer of chunksOf(options.body)) {
      hash.update(buffer);
      bytes += buffer.length;
      let offset = 0;
      while (offset < buffer.length) {
        const copied = buffer.copy(part, filled, offset);
        offset += copied;
        filled += copied;
        if (filled === part.length) {
          await sendPart(part, filled);
          part = buffers.take(partSizeFor(partNumber + 1, first));
          filled = 0;
        }
      }
      if (failure) throw failure;
    }
    if (!uploadId) {
      const put = await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: part.subarray(0, filled),
          ContentLength: filled,
          Metadata: options.metadata,
          ContentType: options.contentType,
          IfNoneMatch: '*',
        }),
      );
      return { bytes, sha256: hash.digest('hex'), parts: 1, etag: put.ETag };
    }
    if (filled > 0) await sendPart(part, filled);
    await Promise.all(inFlight);
    if (failure) throw failure;
    done.sort((a, b) => a.PartNumber - b.PartNumber);
    const completed = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: done },
        // Never over another run's dump: S3 answers 412 when the key exists, and the upload is aborted below.
        IfNoneMatch: '*',
      }),
    );
    return { bytes, sha256: hash.digest('hex'), parts: done.length, etag: completed.ETag };
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
    if (isPreconditionFailed(error)) {
      throw new UploadError(
        `another dump already holds ${key}: it was left as it is, and this dump was not stored`,
      );
    }
    throw error;
  }
}

/** S3's answer to a conditional write whose condition did not hold (412, or 409 for a concurrent one). */
export function isPreconditionFailed(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata
    ?.httpStatusCode;
  const name = (error as { name?: unknown } | undefined)?.name;
  return status === 412 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict';
}

/** Wraps an S3 SDK failure so reports say which side failed. */
export function asUploadError(error: unknown, key: string): Error {
  if (error instanceof UploadError) return error;
  return new UploadError(`upload of ${key} failed: ${errorMessage(error)}`);
}
