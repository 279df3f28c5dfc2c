import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { installHint, majorOf } from '../../functions/core/archive-version';
import type { DumpRecord } from '../../functions/core/catalog';
import { DumpBagError, errorMessage } from '../../functions/core/errors';

/** The local pg_restore is older than the archive's format: nothing was downloaded. */
export class RestoreVersionError extends DumpBagError {
  override name = 'RestoreVersionError';
  constructor(
    message: string,
    /** The pg_restore major the archive needs. */
    readonly needed: number,
  ) {
    super(message);
  }
}

/** Each binary's answer (by name and PATH), asked once: `get --restore` needs it twice (the check, then the way to restore). */
const majors = new Map<string, Promise<number | undefined>>();

/** The major of `pg_restore --version` on the PATH (or the binary given), or undefined if it cannot run. */
export function localPgRestoreMajor(binary = 'pg_restore'): Promise<number | undefined> {
  const asked = `${binary}\0${process.env.PATH ?? ''}`;
  let answer = majors.get(asked);
  if (!answer) {
    answer = askMajor(binary);
    majors.set(asked, answer);
  }
  return answer;
}

async function askMajor(binary: string): Promise<number | undefined> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['--version'], { timeout: 10_000 });
    return majorOf(/\)\s*(\d+(?:\.\d+)*)/.exec(stdout)?.[1] ?? stdout);
  } catch (error: unknown) {
    throw new DumpBagError(
      `cannot run ${binary} --version: ${errorMessage(error)} (install the PostgreSQL client tools)`,
    );
  }
}

/** The pg_restore major a record says its archive needs; records are untrusted, so a silly value counts as none. */
export function neededMajor(record: Pick<DumpRecord, 'restoreMajor'>): number | undefined {
  const value = record.restoreMajor;
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value < 1000
    ? value
    : undefined;
}

/**
 * Throws a RestoreVersionError when the local pg_restore is older than the archive needs, so the
 * reader learns it before a byte is downloaded. A record without the field (older dumps) passes.
 */
export async function assertRestorable(
  record: Pick<DumpRecord, 'restoreMajor' | 'archiveVersion' | 'database' | 'id'>,
  binary = 'pg_restore',
): Promise<void> {
  const needed = neededMajor(record);
  if (needed === undefined) return;
  const local = await localPgRestoreMajor(binary);
  if (local === undefined || local >= needed) return;
  const version =
    typeof record.archiveVersion === 'string'
      ? ` (archive format ${record.archiveVersion.slice(0, 20)})`
      : '';
  throw new RestoreVersionError(
    `this dump${version} needs pg_restore ${needed} or newer, and the local pg_restore is ${local}: nothing was downloaded; ${installHint(needed)}`,
    needed,
  );
}
