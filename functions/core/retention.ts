import type { S3Client } from '@aws-sdk/client-s3';
import { type DumpRecord, deleteDump, listDumps, newestFirst } from './catalog';
import type { RetentionPolicy } from './config';
import { DumpBagError } from './errors';
import { idToDate } from './naming';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionPlan {
  readonly keep: DumpRecord[];
  readonly remove: DumpRecord[];
}

function retentionDays(record: DumpRecord, policy: RetentionPolicy): number {
  return record.trigger === 'manual' ? policy.manualRetentionDays : policy.retentionDays;
}

/** When retention may delete a dump by age alone (the key's time plus its trigger's retention). */
export function ageLimit(record: DumpRecord, policy: RetentionPolicy): Date {
  const created = idToDate(record.id) ?? new Date(record.createdAt);
  return new Date(created.getTime() + retentionDays(record, policy) * DAY_MS);
}

/**
 * Which of one database's dumps to keep: the newest `keepMin` always, the rest while younger than
 * their retention.
 */
export function planRetention(
  dumps: readonly DumpRecord[],
  policy: RetentionPolicy,
  now: Date,
): RetentionPlan {
  const sorted = [...dumps].sort(newestFirst);
  const keep: DumpRecord[] = [];
  const remove: DumpRecord[] = [];
  sorted.forEach((dump, rank) => {
    if (rank < policy.keepMin || ageLimit(dump, policy) > now) keep.push(dump);
    else remove.push(dump);
  });
  return { keep, remove };
}

/**
 * When a dump will be deleted, as far as can be told now: null while it is among the newest
 * `keepMin` (it stays until newer ones push it out).
 */
export function expiresAt(dump: DumpRecord, newerCount: number, policy: RetentionPolicy): string | null {
  return newerCount < policy.keepMin ? null : ageLimit(dump, policy).toISOString();
}

/** Adds `expiresAt` to each dump of a newest-first list (which may mix databases). */
export function withExpiry<T extends DumpRecord>(
  dumps: readonly T[],
  policy: RetentionPolicy,
): (T & { expiresAt: string | null })[] {
  const seen = new Map<string, number>();
  return dumps.map((dump) => {
    const rank = seen.get(dump.database) ?? 0;
    seen.set(dump.database, rank + 1);
    return { ...dump, expiresAt: expiresAt(dump, rank, policy) };
  });
}

/** Retention was asked to run without the new dump that allows it; nothing was deleted. */
export class RetentionError extends DumpBagError {
  override name = 'RetentionError';
}

/**
 * Applies retention to one database's complete dumps, only when `newKey` (the dump that just
 * succeeded) is listed with its record: a failed or forged "ok" never costs an older dump.
 */
export async function pruneDatabase(
  client: S3Client,
  bucket: string,
  database: string,
  newKey: string,
  policy: RetentionPolicy,
  now = new Date(),
): Promise<DumpRecord[]> {
  const dumps = await listDumps(client, bucket, database);
  if (!dumps.some((d) => d.key === newKey && d.database === database)) {
    throw new RetentionError(
      `retention of ${database} skipped: the new dump ${newKey} is not listed with its record; nothing was deleted (retention runs again after the next good dump)`,
    );
  }
  const { remove } = planRetention(dumps, policy, now);
  for (const dump of remove) await deleteDump(client, bucket, dump.key);
  return remove;
}
