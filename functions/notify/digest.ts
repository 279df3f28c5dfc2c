import type { S3Client } from '@aws-sdk/client-s3';
import { scanDumps } from '../core/catalog';
import { idToDate, parseDumpKey } from '../core/naming';
import type { Notice } from '../core/notify';

const DAY_MS = 86_400_000;

/**
 * The daily digest from the bucket itself: every database with a complete dump (object and record)
 * whose id is of the last day. A listing needs s3:ListBucket only, and counts what is really stored,
 * where counting events would need a store of its own. Undefined when nothing succeeded.
 */
export async function digestNotice(
  client: S3Client,
  bucket: string,
  now = new Date(),
): Promise<Extract<Notice, { kind: 'digest' }> | undefined> {
  const { complete } = await scanDumps(client, bucket);
  const since = now.getTime() - DAY_MS;
  const newest = new Map<string, { id: string; bytes: number }>();
  for (const object of complete) {
    const parsed = parseDumpKey(object.key);
    const at = parsed ? idToDate(parsed.id)?.getTime() : undefined;
    if (!parsed || at === undefined || at < since || at > now.getTime()) continue;
    const seen = newest.get(parsed.database);
    if (!seen || seen.id < parsed.id) newest.set(parsed.database, { id: parsed.id, bytes: object.size });
  }
  if (newest.size === 0) return undefined;
  const databases = [...newest.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([database, { bytes }]) => ({ database, bytes }));
  return { kind: 'digest', databases };
}
