import { errorMessage, ValidationError } from '../core/errors';
import { dumpGlobals, type GlobalsResult } from '../core/globals';
import { type DumpClients, dumpOrFailed, parseServer } from '../shared/dump-one';
import type { GlobalsEvent } from '../shared/events';
import { logger } from '../shared/lambda';
import { emitGlobalsMetric } from '../shared/metrics';

/** Whether the state machine asks for the globals rather than a database (`globals` is exactly true). */
export function isGlobalsEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && (event as { globals?: unknown }).globals === true;
}

/** The globals item as the state machine hands it; a database name beside it is refused, not guessed at. */
export function parseGlobalsEvent(event: unknown): GlobalsEvent {
  const e = (event ?? {}) as Partial<GlobalsEvent> & { database?: unknown };
  if (e.globals !== true) throw new ValidationError('the event does not ask for the globals');
  if (e.database !== undefined) {
    throw new ValidationError('the event asks for the globals and a database: one item is one or the other');
  }
  if (e.trigger !== undefined && e.trigger !== 'schedule' && e.trigger !== 'manual') {
    throw new ValidationError('the event\'s trigger must be "schedule" or "manual"');
  }
  return { globals: true, server: parseServer(e.server), trigger: e.trigger ?? 'schedule' };
}

/**
 * The run's globals dump (pg_dumpall beside the pg_dump the server's major picks), signed like a
 * dump. A failure is a result with status "failed", never an exception: the report step fails the
 * run for it, and the databases' dumps, already done, stay.
 */
export async function dumpGlobalsOnce(event: unknown, clients: DumpClients): Promise<GlobalsResult> {
  const started = Date.now();
  const result = await dumpOrFailed<GlobalsEvent, GlobalsResult>(clients, {
    parse: () => parseGlobalsEvent(event),
    dump: (request, { target, encryption }) =>
      dumpGlobals(target, { server: request.server, encryption, trigger: request.trigger }),
    failed: (error, scrub) => ({
      status: 'failed',
      error: scrub(`globals: ${errorMessage(error)}`),
      seconds: (Date.now() - started) / 1000,
    }),
  });
  emitGlobalsMetric(result.status === 'ok');
  if (result.status === 'ok') {
    logger.info('globals dump stored', { key: result.key, bytes: result.bytes, seconds: result.seconds });
  } else {
    logger.error('globals dump failed', { error: result.error, seconds: result.seconds });
  }
  return result;
}
