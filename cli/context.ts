import type { BackupTarget } from '../functions/core/backup';
import type { DumpBagConfig } from '../functions/core/config';
import { connectionFromEnv } from '../functions/core/libpq';
import { createS3Client } from '../functions/core/s3';
import { setting } from '../functions/core/settings';
import { createdKeyNotice, localSignerFromEnv } from '../functions/core/signing';

/** A backup target from the environment: libpq's PG* variables and the AWS SDK's own. */
export function targetFromEnv(config: DumpBagConfig, env: NodeJS.ProcessEnv = process.env): BackupTarget {
  const partMiB = setting('partSizeMiB', env);
  const concurrency = setting('uploadConcurrency', env);
  return {
    s3: createS3Client(env),
    bucket: config.bucket,
    // libpq's PG* variables from `env`, so a caller's environment applies to pg and pg_dump alike.
    connection: connectionFromEnv(env),
    pgDump: { pgDumpPath: config.pgDumpPath, pgRoot: config.pgRoot },
    compression: config.compression,
    dumpOptions: config.dumpOptions,
    retention: config.retention,
    // Made in the user's config directory on first use, and said so: readers pin its public half.
    signer: localSignerFromEnv(env, {
      create: true,
      onCreated: (file) => console.error(createdKeyNotice(file)),
    }),
    upload: { partSize: partMiB * 1024 * 1024, concurrency },
  };
}
