import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { writeRecord } from '../functions/core/catalog';
import { removeOwnDump } from '../functions/core/cleanup';
import { dumpKey, uniqueDumpId } from '../functions/core/naming';
import { uploadStream } from '../functions/core/upload';
import { freshBucket, getObjectBytes, openUploads, s3Client } from './support/env';
import { placeholderRecord } from './support/records';

const MiB = 1024 * 1024;

describe('the local S3 API server answers conditional writes as S3 does', () => {
  it('If-None-Match: * on PutObject stores a new key and refuses an existing one with 412', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const put = (body: string) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: body, IfNoneMatch: '*' }));
    await put('first');
    await expect(put('second')).rejects.toMatchObject({
      name: 'PreconditionFailed',
      $metadata: { httpStatusCode: 412 },
    });
    expect((await getObjectBytes(client, bucket, 'k')).toString()).toBe('first');
    // Without the condition, S3 (and this server) overwrite as before.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'third' }));
    expect((await getObjectBytes(client, bucket, 'k')).toString()).toBe('third');
  });

  it('of two conditional writes of one key at once, exactly one is stored', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const bodies = Array.from({ length: 6 }, (_, i) => `writer ${i} ${randomBytes(4).toString('hex')}`);
    const outcomes = await Promise.allSettled(
      bodies.map((Body) =>
        client.send(new PutObjectCommand({ Bucket: bucket, Key: 'race', Body, IfNoneMatch: '*' })),
      ),
    );
    const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [bodies[i]] : []));
    expect(won).toHaveLength(1);
    for (const o of outcomes.filter((x) => x.status === 'rejected')) {
      expect([409, 412]).toContain(
        (o.reason as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode,
      );
    }
    expect((await getObjectBytes(client, bucket, 'race')).toString()).toBe(won[0]);
  });

  it('If-None-Match: * on CompleteMultipartUpload refuses an existing key; the upload stays open to abort', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'multi', Body: 'theirs' }));
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'multi' }),
    );
    const { ETag } = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: 'multi',
        UploadId,
        PartNumber: 1,
        Body: randomBytes(MiB),
      }),
    );
    await expect(
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'multi',
          UploadId,
          MultipartUpload: { Parts: [{ ETag, PartNumber: 1 }] },
          IfNoneMatch: '*',
        }),
      ),
    ).rejects.toMatchObject({ name: 'PreconditionFailed' });
    expect((await getObjectBytes(client, bucket, 'multi')).toString()).toBe('theirs');
    expect(await openUploads(client, bucket)).toEqual(['multi']);
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'multi', UploadId }));
    expect(await openUploads(client, bucket)).toEqual([]);
  });

  it('If-Match on DeleteObject deletes only the object with that ETag', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const first = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'd', Body: 'one' }));
    const second = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'd', Body: 'two' }));
    await expect(
      client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'd', IfMatch: first.ETag })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    expect((await getObjectBytes(client, bucket, 'd')).toString()).toBe('two');
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'd', IfMatch: second.ETag }));
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'd' }))).rejects.toThrow();
  });
});

const record = (key: string, id: string) =>
  placeholderRecord({ database: 'db', id, key, encryption: 'none' });

describe('Dump Bag never writes over, nor deletes, another run’s object', () => {
  it('a second upload to a taken key fails, small or multipart, and leaves the first whole', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    for (const size of [1000, 11 * MiB]) {
      const key = dumpKey('db', uniqueDumpId(new Date()), false);
      const first = randomBytes(size);
      const stored = await uploadStream({ client, bucket, key, body: Readable.from([first]) });
      expect(stored.etag).toMatch(/^"[0-9a-f]{32}(-\d+)?"$/);
      await expect(
        uploadStream({ client, bucket, key, body: Readable.from([randomBytes(size)]) }),
      ).rejects.toThrow(`another dump already holds ${key}`);
      expect((await getObjectBytes(client, bucket, key)).equals(first)).toBe(true);
      expect(await openUploads(client, bucket)).toEqual([]);
    }
  });

  it('a record is never written over another', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const id = uniqueDumpId(new Date());
    const key = dumpKey('db', id, false);
    await writeRecord(client, bucket, record(key, id));
    await expect(
      writeRecord(client, bucket, { ...record(key, id), sha256: 'f'.repeat(64) }),
    ).rejects.toMatchObject({
      $metadata: { httpStatusCode: 412 },
    });
    expect(JSON.parse((await getObjectBytes(client, bucket, `${key}.json`)).toString()).sha256).toBe(
      '0'.repeat(64),
    );
  });

  it('the cleanup of a failed record deletes the dump only while it is the object this run stored', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const key = dumpKey('db', uniqueDumpId(new Date()), false);
    const ours = await uploadStream({ client, bucket, key, body: Readable.from([Buffer.from('ours')]) });
    // Something else now sits at the key: the ETag this run holds no longer matches, so it stays.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'someone else' }));
    expect(await removeOwnDump(client, bucket, key, ours.etag)).toBe(false);
    expect((await getObjectBytes(client, bucket, key)).toString()).toBe('someone else');
    // Without an ETag nothing is deleted either; with the object's own, it is.
    expect(await removeOwnDump(client, bucket, key, undefined)).toBe(false);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(await removeOwnDump(client, bucket, key, head.ETag)).toBe(true);
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).rejects.toThrow();
  });
});
