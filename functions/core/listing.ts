import type { KeyObject } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { type DumpRecord, listDumps } from './catalog';
import type { RetentionPolicy } from './config';
import { NotFoundError } from './errors';
import { withExpiry } from './retention';
import { RECORDED_RUNNERS, type RecordedRunner } from './runner';
import { checkRecordSignature } from './signing';

/** The record's signature as the lister saw it against its own public key; `unchecked` when it has none at hand. */
export type SignatureState = 'valid' | 'unsigned' | 'invalid' | 'unchecked';

/**
 * A dump as the API and the command list it: its record, when retention will delete it (null: kept
 * for now), and its signature state (for display: a reader checks the signature against its own pin).
 */
export type ListedDump = DumpRecord & {
  readonly expiresAt: string | null;
  readonly signatureState?: SignatureState;
};

/** The complete dumps (of one database, or all), newest first, each with its expiry and signature state. */
export async function listWithExpiry(
  client: S3Client,
  bucket: string,
  retention: RetentionPolicy,
  database?: string,
  signingKey?: KeyObject,
): Promise<ListedDump[]> {
  return withExpiry(await listDumps(client, bucket, database), retention).map((d) => ({
    ...d,
    signatureState: signingKey ? checkRecordSignature(d, signingKey).state : 'unchecked',
  }));
}

/** One dump of a database by id, or its newest with `latest`. */
export async function findListed(
  client: S3Client,
  bucket: string,
  retention: RetentionPolicy,
  database: string,
  id: string,
  signingKey?: KeyObject,
): Promise<ListedDump> {
  const dumps = await listWithExpiry(client, bucket, retention, database, signingKey);
  const found = id === 'latest' ? dumps[0] : dumps.find((d) => d.id === id);
  if (!found) throw new NotFoundError(id === 'latest' ? 'this database has no dump' : 'no dump with this id');
  return found;
}

/** A size the way people read it, in powers of 1000: 512 B, 1.5 MB. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A duration the way people say it: 40 s, 12 min, 5 h, 3 d. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** A dump's run time, short: 0.4s, 45s, 3m12s, 2h05m. */
export function formatRunTime(seconds: number): string {
  if (seconds < 10) return `${(Math.round(seconds * 10) / 10).toString()}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The longest run a record may claim: a Fargate dump stops within 7 days (infra/constructs/fargate-dump.ts). */
const MAX_RUN_SECONDS = 7 * 86400;

/**
 * Where a dump ran and how long it took, from its record read back (hostile: both fields are
 * unsigned and absent in older records): `lambda 3m12s`, `local 4.2s`; `?` for what is missing or invalid.
 */
export function ranOn(record: { readonly runner?: unknown; readonly seconds?: unknown }): string {
  const runner = RECORDED_RUNNERS.includes(record.runner as RecordedRunner) ? String(record.runner) : '?';
  const seconds = record.seconds;
  const time =
    typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0 && seconds <= MAX_RUN_SECONDS
      ? formatRunTime(seconds)
      : '?';
  return runner === '?' && time === '?' ? '?' : `${runner} ${time}`;
}
