import { join } from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { startLocalS3 } from '../cli/local/services';
import { startS3Sink } from '../cli/local/start-s3-sink';
import { createS3Client } from '../functions/core/s3';
import { findChild } from './measure';

/** `sink` reads and discards, as AWS S3 costs the client; `local` is the S3 server that hashes and stores. */
export const S3_CHOICES = ['sink', 'local'] as const;
export type S3Choice = (typeof S3_CHOICES)[number];
export const BUCKET = 'dump-bag-bench';

export interface S3Target {
  readonly choice: S3Choice;
  /** AWS_ENDPOINT_URL_S3, credentials and DUMP_BAG_BUCKET for the processes that use it. */
  readonly env: Record<string, string>;
  /** The server's process, to read its CPU time. */
  readonly pid: number | undefined;
  readonly client: S3Client;
  /** Deletes every object a previous run left, so runs do not fill the disk. */
  empty(): Promise<void>;
  stop(): Promise<void>;
}

export function parseS3Choices(values: readonly string[]): S3Choice[] {
  const choices = values.flatMap((v) => v.split(',')).filter((v) => v !== '');
  for (const choice of choices) {
    if (!(S3_CHOICES as readonly string[]).includes(choice)) {
      throw new Error(`--s3 is ${S3_CHOICES.join(' or ')} (repeatable), got "${choice}"`);
    }
  }
  return [...new Set(choices)] as S3Choice[];
}

/** Starts the chosen S3 endpoint in its own process on loopback. */
export async function startS3Target(choice: S3Choice, benchDir: string): Promise<S3Target> {
  const server =
    choice === 'sink'
      ? await startS3Sink(BUCKET)
      : await startLocalS3(join(benchDir, 's3'), BUCKET).then((s) => ({ ...s, pid: findChild('s3-server') }));
  const client = createS3Client(server.env);
  return {
    choice,
    env: server.env,
    pid: server.pid,
    client,
    async empty() {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
      const objects = (listed.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (objects.length > 0) {
        await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: objects } }));
      }
    },
    async stop() {
      client.destroy();
      await server.stop();
    },
  };
}
