import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DumpBagError, errorMessage } from '../../functions/core/errors';

/** The folder for the downloaded ciphertext is missing or too small. */
export class WorkSpaceError extends DumpBagError {
  override name = 'WorkSpaceError';
}

/** Room left over beyond the bytes asked for: file system metadata, other writers meanwhile. */
const SLACK_BYTES = 16 * 1024 * 1024;

const HOW_TO_CHOOSE = 'set DUMP_BAG_WORK_DIR to a folder with more room';

/** Work files alive in this process: removed on exit and on SIGINT/SIGTERM, whatever else is running. */
const live = new Set<string>();

function removeAll(): void {
  for (const path of live) rmSync(path, { force: true });
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  removeAll();
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

function track(path: string): void {
  if (live.size === 0) {
    process.on('exit', removeAll);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.add(path);
}

function untrack(path: string): void {
  live.delete(path);
  if (live.size === 0) {
    process.off('exit', removeAll);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export interface WorkFile {
  /** Not created yet: the writer creates it with `wx` and mode 0600. */
  readonly path: string;
  remove(): Promise<void>;
}

/**
 * Reserves a work file name in `dir` after checking that `bytes` fit there. The file is removed by
 * `remove()`, and by this module on exit or SIGINT/SIGTERM if the caller never got there.
 */
export async function createWorkFile(dir: string, bytes: number): Promise<WorkFile> {
  const folder = resolve(dir);
  let free: number;
  try {
    const stats = await statfs(folder);
    free = stats.bavail * stats.bsize;
  } catch (error: unknown) {
    throw new WorkSpaceError(
      `cannot use ${folder} for the downloaded dump: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)} (${HOW_TO_CHOOSE})`,
    );
  }
  if (free < bytes + SLACK_BYTES) {
    throw new WorkSpaceError(
      `checking the dump before release needs ${bytes} bytes (plus ${SLACK_BYTES} spare) in ${folder}, which has ${free} free: ${HOW_TO_CHOOSE}`,
    );
  }
  const path = join(folder, `.dump-bag-${randomBytes(6).toString('hex')}.download`);
  track(path);
  return {
    path,
    async remove() {
      await rm(path, { force: true });
      untrack(path);
    },
  };
}

/** What an ENOSPC or other write failure of a work file means to the user. */
export function workFileFailure(error: unknown, dir: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new WorkSpaceError(`${resolve(dir)} ran out of space for the downloaded dump: ${HOW_TO_CHOOSE}`);
  }
  return new WorkSpaceError(
    `cannot write the downloaded dump into ${resolve(dir)}: ${code ?? errorMessage(error)} (${HOW_TO_CHOOSE})`,
  );
}
