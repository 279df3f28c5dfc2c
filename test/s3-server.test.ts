import { createHash, randomBytes } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { freshBucket, getObjectBytes, openUploads, s3Client } from './support/env';

const MiB = 1024 * 1024;
const md5 = (data: Buffer) => createHash('md5').update(data).digest();

/** An upload of these parts (numbered from 1), returning its id and the ETags S3 answered. */
async function uploadParts(client: S3Client, bucket: string, key: string, parts: Buffer[]) {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const etags: string[] = [];
  for (const [index, body] of parts.entries()) {
    const { ETag } = await client.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: index + 1, Body: body }),
    );
    etags.push(ETag as string);
  }
  return { uploadId: UploadId as string, etags };
}

function complete(client: S3Client, bucket: string, key: string, uploadId: string, etags: string[]) {
  return client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
    }),
  );
}

describe('the S3 API server completes multipart uploads as S3 does', () => {
  it('joins the parts in order, with the ETag S3 gives (MD5 of the parts’ MD5s, then -N)', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 17), randomBytes(1234)];
    const { uploadId, etags } = await uploadParts(client, bucket, 'joined', parts);
    expect(etags).toEqual(parts.map((p) => `"${md5(p).toString('hex')}"`));

    const done = await complete(client, bucket, 'joined', uploadId, etags);
    const expected = `"${createHash('md5')
      .update(Buffer.concat(parts.map(md5)))
      .digest('hex')}-3"`;
    expect(done.ETag).toBe(expected);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'joined' }));
    expect(head.ETag).toBe(expected);
    expect(head.ContentLength).toBe(10 * MiB + 17 + 1234);
    expect((await getObjectBytes(client, bucket, 'joined')).equals(Buffer.concat(parts))).toBe(true);
    expect(await openUploads(client, bucket)).toEqual([]);
  });

  it('refuses a wrong ETag, parts out of order and a small part before the last, storing nothing', async () => {
    const client = s3Client();
    const bucket = await freshBucket(client);
    const big = [randomBytes(5 * MiB), randomBytes(5 * MiB)];
    const { uploadId, etags } = await uploadParts(client, bucket, 'refused', big);

    await expect(
      complete(client, bucket, 'refused', uploadId, [etags[0] as string, `"${'0'.repeat(32)}"`]),
    ).rejects.toMatchObject({ name: 'InvalidPart' });
    await expect(
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'refused',
          UploadId: uploadId,
          MultipartUpload: {
            Parts: [
              { ETag: etags[1], PartNumber: 2 },
              { ETag: etags[0], PartNumber: 1 },
            ],
          },
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidPartOrder' });
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'refused' }))).rejects.toThrow();
    // The upload is still open after a refusal, as on S3, and can then be completed.
    expect(await openUploads(client, bucket)).toHaveLength(1);
    await complete(client, bucket, 'refused', uploadId, etags);
    expect((await getObjectBytes(client, bucket, 'refused')).equals(Buffer.concat(big))).toBe(true);

    const small = [randomBytes(MiB), randomBytes(MiB)];
    const second = await uploadParts(client, bucket, 'small', small);
    await expect(complete(client, bucket, 'small', second.uploadId, second.etags)).rejects.toMatchObject({
      name: 'EntityTooSmall',
    });
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small' }))).rejects.toThrow();
  });
});
