import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { RekeyResult } from '../../functions/core/rekey';
import { uploadStream } from '../../functions/core/upload';
import { measure, round } from '../measure';
import { BUCKET } from '../s3-targets';
import { backupOnce } from './backup';
import type { KeptDumpScenario } from './kept-dump';

export interface RekeyComparison {
  readonly command: string;
  readonly storedBytes: number;
  /** `dump-bag rekey` after one of two readers left: new head, the body copied by S3 (UploadPartCopy), one read-back. */
  readonly rekey: {
    readonly wallSeconds: number;
    readonly cpuSeconds?: number;
    readonly transferredBytes: number;
    readonly copiedBytes: number;
  };
  /** The object downloaded and uploaded again whole, without any cryptography: the least a rekey by download costs. */
  readonly wholeCopy: { readonly wallSeconds: number; readonly transferredBytes: number };
}

/**
 * The rekey of one dump against downloading and uploading it again. Needs an S3 that keeps the dump
 * (the local S3 server). The dump is made for two readers, the bench's key and a leaver's; the rekey
 * runs as the bench's reader with the leaver removed (`DUMP_BAG_RECIPIENTS`), as the README's
 * "When someone leaves" says.
 */
export async function rekeyComparison(
  options: KeptDumpScenario & { readonly leaverPublicFile: string },
): Promise<RekeyComparison> {
  const { s3, keys, scratch } = options;
  const readers = join(scratch, 'rekey-readers');
  rmSync(readers, { recursive: true, force: true });
  mkdirSync(readers, { recursive: true });
  copyFileSync(keys.publicFile, join(readers, 'bench.asc'));
  copyFileSync(options.leaverPublicFile, join(readers, 'leaver.asc'));

  await s3.empty();
  const stored = await backupOnce({ ...options, publicFile: readers });
  options.log(`rekey: a dump for two readers, ${(stored.storedBytes / 1e6).toFixed(0)} MB`);

  const command = 'dump-bag rekey --json  (DUMP_BAG_RECIPIENTS: the remaining reader)';
  const rekeyed = await measure(
    [process.execPath, join(options.root, 'bin', 'dump-bag.js'), 'rekey', '--json'],
    {
      env: {
        ...options.env,
        ...s3.env,
        DUMP_BAG_ENCRYPTION: 'gpg',
        DUMP_BAG_PUBLIC_KEYS: readers,
        DUMP_BAG_RECIPIENTS: keys.fingerprint,
        DUMP_BAG_SECRET_KEY: keys.secretFile,
      },
      scratch,
    },
  );
  if (rekeyed.code !== 0)
    throw new Error(`dump-bag rekey exited ${rekeyed.code}: ${rekeyed.stdout}${rekeyed.stderr}`);
  const results = JSON.parse(rekeyed.stdout) as RekeyResult[];
  const done = results.find((r) => r.key === stored.key);
  if (done?.status !== 'rekeyed' || done.transferred === undefined || done.copied === undefined) {
    throw new Error(`dump-bag rekey did not rekey ${stored.key}: ${rekeyed.stdout}`);
  }
  options.log(
    `rekey: ${rekeyed.wallSeconds.toFixed(2)} s, ${(done.transferred / 1e6).toFixed(1)} MB transferred`,
  );

  const started = performance.now();
  const got = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: stored.key }));
  const copy = await uploadStream({
    client: s3.client,
    bucket: BUCKET,
    key: `${stored.key}.whole-copy`,
    body: got.Body as Readable,
    expectedBytes: done.bytes,
  });
  const wholeSeconds = (performance.now() - started) / 1000;
  // The rekeyed object: one reader fewer, so its head is shorter than the stored dump's.
  if (copy.bytes !== done.bytes) throw new Error(`the whole copy moved ${copy.bytes} bytes of ${done.bytes}`);
  options.log(`rekey: download and upload whole ${wholeSeconds.toFixed(2)} s`);
  return {
    command,
    storedBytes: stored.storedBytes,
    rekey: {
      wallSeconds: round(rekeyed.wallSeconds, 3),
      cpuSeconds:
        rekeyed.cpuSecondsWithChildren === undefined ? undefined : round(rekeyed.cpuSecondsWithChildren, 3),
      transferredBytes: done.transferred,
      copiedBytes: done.copied,
    },
    wholeCopy: { wallSeconds: round(wholeSeconds, 3), transferredBytes: 2 * copy.bytes },
  };
}
