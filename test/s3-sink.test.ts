import { rmSync } from 'node:fs';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type S3Sink, startS3Sink } from '../cli/local/start-s3-sink';
import { runBackup } from '../functions/core/backup';
import { getDump, listDumps } from '../functions/core/catalog';
import { encryptStream } from '../functions/core/encrypt';
import { loadKeys } from '../functions/core/keys';
import { libpqEnv } from '../functions/core/libpq';
import { resolvePgDump, startPgDump } from '../functions/core/pg-dump';
import { createS3Client } from '../functions/core/s3';
import { keyFolder, keyPair, RETENTION, uniqueSuffix } from './support/bag';
import { createDatabase, pgConnection } from './support/env';
import { testSigner } from './support/signing';

/** Bytes a stream yields, counted without keeping them. */
async function countBytes(stream: AsyncIterable<Buffer>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.length;
  return bytes;
}

describe('the bench S3 sink', () => {
  let sink: S3Sink;
  let client: S3Client;
  let keys: string;
  const database = `sink ${uniqueSuffix()}`;

  beforeAll(async () => {
    sink = await startS3Sink('bench-sink');
    client = createS3Client(sink.env);
    keys = keyFolder([await keyPair('Sink reader', 'sink@example.com')]);
    await createDatabase(
      database,
      `CREATE TABLE items (id int PRIMARY KEY, note text);
       INSERT INTO items SELECT i, md5(i::text) || md5((i * 7919)::text) FROM generate_series(1, 200000) i;`,
    );
  });

  afterAll(async () => {
    client?.destroy();
    await sink?.stop();
    if (keys) rmSync(keys, { recursive: true, force: true });
  });

  it('takes a whole backup: the record comes back and the stored size is what pg_dump and encryption made', async () => {
    const connection = pgConnection();
    const summary = await runBackup(
      { s3: client, bucket: sink.bucket, connection, pgDump: {}, retention: RETENTION, signer: testSigner() },
      {
        config: { exclude: [], encryption: 'gpg', databases: [database], publicKeys: keys },
        trigger: 'manual',
      },
    );
    expect(summary.results.map((r) => [r.database, r.status, r.error])).toEqual([
      [database, 'ok', undefined],
    ]);

    // The record was put, listed and read back through the sink, as the API and retention read it.
    const record = await getDump(client, sink.bucket, database, 'latest');
    expect(record).toMatchObject({ database, trigger: 'manual', encryption: 'gpg', compression: 'gzip:1' });
    expect((await listDumps(client, sink.bucket)).map((d) => d.key)).toEqual([record.key]);
    const head = await client.send(new HeadObjectCommand({ Bucket: sink.bucket, Key: record.key }));
    expect(head.ContentLength).toBe(record.bytes);

    // The same dump made again here, encrypted the same way, counted: the sink read every byte.
    const again = startPgDump({
      binary: resolvePgDump({}, Number.parseInt(record.serverVersion, 10)),
      database,
      compression: '1',
      connectionEnv: libpqEnv(connection),
    });
    const encrypted = await encryptStream(again.stdout, { mode: 'gpg', recipients: await loadKeys(keys) });
    // More than one 5 MiB part: the multipart calls were taken, not a single PutObject.
    expect(record.bytes).toBeGreaterThan(6 * 1024 * 1024);
    expect(await countBytes(encrypted)).toBe(record.bytes);

    // A large body was only counted, never kept: reading it back is refused by name.
    await expect(client.send(new GetObjectCommand({ Bucket: sink.bucket, Key: record.key }))).rejects.toThrow(
      /NotImplemented|sink keeps no body/,
    );
  });
});
