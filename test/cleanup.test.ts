import { CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { type DumpRecord, listDumps, writeRecord } from '../functions/core/catalog';
import { cleanupIncomplete } from '../functions/core/cleanup';
import { dumpId, dumpKey } from '../functions/core/naming';
import { allKeys, freshBucket, openUploads, s3Client } from './support/env';

describe('cleanup', () => {
  it('aborts uploads and removes unrecorded dumps under dumps/, leaving complete dumps and everything else', async () => {
    const client = s3Client();
    const bucket = await freshBucket();
    const id = dumpId(new Date(Date.now() - 3_600_000));
    const complete = dumpKey('db one', id, true);
    const orphan = dumpKey('db two', id, true);
    const record: DumpRecord = {
      database: 'db one',
      id,
      key: complete,
      createdAt: new Date().toISOString(),
      trigger: 'schedule',
      encryption: 'gpg',
      recipients: [],
      pgDumpVersion: '15',
      serverVersion: '15',
      compression: 'gzip:1',
      sha256: '0'.repeat(64),
      bytes: 1,
      seconds: 1,
    };
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: complete, Body: 'x' }));
    await writeRecord(client, bucket, record);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: orphan, Body: 'x' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'elsewhere/file', Body: 'x' }));
    const killed = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: dumpKey('db three', id, true) }),
    );
    await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: dumpKey('db three', id, true),
        UploadId: killed.UploadId,
        PartNumber: 1,
        Body: Buffer.alloc(1024),
      }),
    );
    expect(await openUploads(client, bucket)).toHaveLength(1);

    // A run still under way (younger than the threshold) is spared.
    const spared = await cleanupIncomplete(client, bucket, { olderThanMs: 2 * 3_600_000 });
    expect(spared.deletedOrphans).toEqual([]);
    expect(spared.abortedUploads).toEqual([]);

    const result = await cleanupIncomplete(client, bucket);
    expect(result.abortedUploads.map((u) => u.key)).toEqual([dumpKey('db three', id, true)]);
    expect(result.deletedOrphans).toEqual([orphan]);
    expect(await openUploads(client, bucket)).toEqual([]);
    expect(await allKeys(client, bucket)).toEqual([complete, `${complete}.json`, 'elsewhere/file'].sort());
    expect((await listDumps(client, bucket)).map((d) => d.key)).toEqual([complete]);
  });
});
