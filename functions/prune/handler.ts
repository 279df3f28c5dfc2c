import type { Context } from 'aws-lambda';
import { pruneAfterDump } from '../core/backup';
import { readBucket, readRetentionPolicy } from '../core/config';
import { errorMessage, ValidationError } from '../core/errors';
import { GLOBALS_NAME, parseGlobalsKey, pruneAfterGlobals } from '../core/globals';
import { assertDatabaseName, parseDumpKey } from '../core/naming';
import { createS3Client } from '../core/s3';
import type { PruneEvent, PruneGlobalsEvent } from '../shared/events';
import { logger } from '../shared/lambda';

// Built once per container and reused by every invocation it serves.
const s3 = createS3Client();

/** What the prune step adds to the dump's result. */
export interface PruneResult {
  readonly pruned: readonly string[];
  readonly retentionError?: string;
}

function parseEvent(event: unknown): PruneEvent | PruneGlobalsEvent {
  const g = (event ?? {}) as Partial<PruneGlobalsEvent> & { database?: unknown };
  if (g.globals !== undefined) {
    if (g.globals !== true || g.database !== undefined) {
      throw new ValidationError(
        'the event must ask for the globals (globals: true) or one database, not both',
      );
    }
    if (typeof g.key !== 'string' || !parseGlobalsKey(g.key)) {
      throw new ValidationError("the event's key is not a globals key: it comes from the globals dump step");
    }
    return { globals: true, key: g.key };
  }
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

/** Retention of the database (or the globals) the event names, through the core's one function for each. */
async function prune(request: PruneEvent | PruneGlobalsEvent): Promise<PruneResult> {
  const target = { s3, bucket: readBucket(), retention: readRetentionPolicy() };
  const done =
    'globals' in request
      ? await pruneAfterGlobals(target, { status: 'ok', key: request.key })
      : await pruneAfterDump(target, {
          database: request.database,
          status: 'ok',
          key: request.key,
          seconds: 0,
        });
  return { pruned: done.pruned ?? [], retentionError: done.retentionError };
}

/**
 * The state machine's prune step, run after one database's dump (or the run's globals dump)
 * succeeded: retention of that database (or of the globals) through the core. Its role lists,
 * reads records and deletes under dumps/ and globals/ only; it has no database access, no secret
 * and no signing key. A failure is a result, never an exception: the new dump is fine, and
 * retention runs again after the next one.
 */
export const handler = async (
  event: PruneEvent | PruneGlobalsEvent,
  context?: Context,
): Promise<PruneResult> => {
  if (context) logger.addContext(context);
  let result: PruneResult;
  try {
    result = await prune(parseEvent(event));
  } catch (error: unknown) {
    result = { pruned: [], retentionError: errorMessage(error) };
  }
  const database = isGlobals(event) ? GLOBALS_NAME : (event as Partial<PruneEvent> | undefined)?.database;
  if (result.retentionError) {
    logger.error('retention failed', { database, error: result.retentionError });
  } else {
    logger.info('retention applied', { database, pruned: result.pruned });
  }
  return result;
};

function isGlobals(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'globals' in event;
}
