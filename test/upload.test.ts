import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { initialPartSize, partSizeFor, uploadStream } from '../functions/core/upload';
import { freshBucket, getObjectBytes, openUploads, s3Client } from './support/env';

const MiB = 1024 * 1024;
const TB = 1e12;

/** What 10,000 parts carry when the first one has this size. */
function capacity(first: number): number {
  let total = 0;
  for (let n = 1; n <= 10_000; n++) total += partSizeFor(n, first);
  return total;
}

describe('part sizes', () => {
  it('start at 6 MiB, never below S3’s 5 MiB, and double every 1,000 parts up to 5 GiB', () => {
    const first = initialPartSize();
    expect(first).toBe(6 * MiB);
    expect(initialPartSize(0, 1 * MiB)).toBe(5 * MiB);
    expect(partSizeFor(1, first)).toBe(first);
    expect(partSizeFor(1000, first)).toBe(first);
    expect(partSizeFor(1001, first)).toBe(2 * first);
    expect(partSizeFor(2001, first)).toBe(4 * first);
    expect(partSizeFor(10_000, 1024 * MiB)).toBe(5 * 1024 * MiB);
  });

  it('let a 1 TB dump fit in 10,000 parts even when nothing was expected', () => {
    expect(capacity(initialPartSize(0))).toBeGreaterThan(6 * TB);
  });

  it('grow with the expected size so that twice the database fits in the first 10,000 parts', () => {
    for (const expected of [1e9, 100e9, TB, 10 * TB]) {
      const first = initialPartSize(expected);
      expect(first * 10_000).toBeGreaterThanOrEqual(2 * expected);
      expect(capacity(first)).toBeGreaterThan(2 * expected);
    }
  });
});

describe('uploadStream against the S3 API server', () => {
  it('stores a multipart body byte for byte, reporting its size, SHA-256 and parts', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const data = randomBytes(13 * MiB + 3);
    const pieces: Buffer[] = [];
    for (let offset = 0, i = 0; offset < data.length; i++) {
      const size = [65_536, 4096, 1, 1_000_003][i % 4] as number;
      pieces.push(data.subarray(offset, offset + size));
      offset += size;
    }
    const result = await uploadStream({
      client,
      bucket,
      key: 'dumps/x/multi.pg',
      body: Readable.from(pieces),
      partSize: 5 * MiB,
      concurrency: 2,
    });
    expect(result).toEqual({
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      parts: 3,
      // The stored object's ETag (MD5 of the parts' MD5s, -3), for deleting only this very object later.
      etag: expect.stringMatching(/^"[0-9a-f]{32}-3"$/),
    });
    expect((await getObjectBytes(client, bucket, 'dumps/x/multi.pg')).equals(data)).toBe(true);
    expect(await openUploads(client, bucket)).toEqual([]);
  });

  it('stores a body of exactly one part, and a small one with a single PutObject', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    for (const [key, size, parts] of [
      ['dumps/x/one.pg', 5 * MiB, 1],
      ['dumps/x/small.pg', 1000, 1],
      ['dumps/x/empty.pg', 0, 1],
    ] as const) {
      const data = randomBytes(size);
      const result = await uploadStream({
        client,
        bucket,
        key,
        body: Readable.from([data]),
        partSize: 5 * MiB,
      });
      expect(result.parts).toBe(parts);
      expect(result.bytes).toBe(size);
      expect((await getObjectBytes(client, bucket, key)).equals(data)).toBe(true);
    }
  });
});
