import type { BackupTarget } from '../functions/core/backup';
import type { DumpBagConfig } from '../functions/core/config';
import { createS3Client } from '../functions/core/s3';

/** A backup target from the environment: libpq's PG* variables and the AWS SDK's own. */
export function targetFromEnv(config: DumpBagConfig, env: NodeJS.ProcessEnv = process.env): BackupTarget {
  const partMiB = env.DUMP_BAG_PART_SIZE_MIB ? Number(env.DUMP_BAG_PART_SIZE_MIB) : undefined;
  const concurrency = env.DUMP_BAG_UPLOAD_CONCURRENCY ? Number(env.DUMP_BAG_UPLOAD_CONCURRENCY) : undefined;
  return {
    s3: createS3Client(env),
    bucket: config.bucket,
    // Empty: pg and pg_dump read PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE themselves.
    connection: {},
    pgDump: { pgDumpPath: config.pgDumpPath, pgRoot: config.pgRoot },
    compression: config.compression,
    retention: config.retention,
    upload: { partSize: partMiB ? partMiB * 1024 * 1024 : undefined, concurrency },
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
