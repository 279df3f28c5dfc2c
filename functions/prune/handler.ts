import type { Context } from 'aws-lambda';
import { type DumpResult, pruneAfterDump } from '../core/backup';
import { readBucket, readRetentionPolicy } from '../core/config';
import { errorMessage, ValidationError } from '../core/errors';
import { assertDatabaseName, parseDumpKey } from '../core/naming';
import { createS3Client } from '../core/s3';
import type { PruneEvent } from '../shared/events';
import { logger } from '../shared/lambda';

// Built once per container and reused by every invocation it serves.
const s3 = createS3Client();

/** What the prune step adds to the dump's result. */
export interface PruneResult {
  readonly pruned: readonly string[];
  readonly retentionError?: string;
}

function parseEvent(event: unknown): PruneEvent {
  const e = (event ?? {}) as Partial<PruneEvent>;
  if (typeof e.database !== 'string') throw new ValidationError('the event has no database name');
  assertDatabaseName(e.database);
  const parsed = typeof e.key === 'string' ? parseDumpKey(e.key) : undefined;
  if (!parsed || parsed.database !== e.database) {
    throw new ValidationError(
      `the event's key is not a dump key of ${e.database}: it comes from the dump step`,
    );
  }
  return { database: e.database, key: e.key as string };
}

/**
 * The state machine's prune step, run after one database's dump succeeded: retention of that
 * database through the core. Its role lists, reads records and deletes under dumps/ only; it has
 * no database access, no secret and no signing key. A failure is a result, never an exception:
 * the new dump is fine, and retention runs again after the next one.
 */
export const handler = async (event: PruneEvent, context?: Context): Promise<PruneResult> => {
  if (context) logger.addContext(context);
  let result: PruneResult;
  try {
    const request = parseEvent(event);
    const target = { s3, bucket: readBucket(), retention: readRetentionPolicy() };
    const ok: DumpResult = { database: request.database, status: 'ok', key: request.key, seconds: 0 };
    const pruned = await pruneAfterDump(target, ok);
    result = { pruned: pruned.pruned ?? [], retentionError: pruned.retentionError };
  } catch (error: unknown) {
    result = { pruned: [], retentionError: errorMessage(error) };
  }
  if (result.retentionError) {
    logger.error('retention failed', { database: event?.database, error: result.retentionError });
  } else {
    logger.info('retention applied', { database: event?.database, pruned: result.pruned });
  }
  return result;
};
