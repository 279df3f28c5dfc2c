import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ValidationError } from '../../functions/core/errors';
import { createWorkFile } from './work-file';

/** What `get --restore` passes through to pg_restore to restore a part, or in parallel. */
export interface RestoreOptions {
  /** The checked part and mode flags (`--table=…`, `--schema=…`, `--data-only`, `--clean`, `--if-exists`), an argv. */
  readonly args: readonly string[];
  /** Parallel jobs: pg_restore needs a file for this (it seeks), so the archive is written to one first. */
  readonly jobs?: number;
}

const MAX_NAME = 300;
const MAX_JOBS = 64;

function checkName(flag: string, value: string): string {
  if (value.length === 0 || value.length > MAX_NAME || /\p{Cc}/u.test(value) || value.startsWith('-')) {
    throw new ValidationError(
      `${flag} needs a name of 1 to ${MAX_NAME} characters, without control characters, not starting with "-"`,
    );
  }
  return value;
}

/** Reads and checks the pass-through options from parseArgs' values. */
export function readRestoreOptions(values: {
  table?: string[];
  schema?: string[];
  'data-only'?: boolean;
  clean?: boolean;
  'if-exists'?: boolean;
  jobs?: string;
}): RestoreOptions {
  let jobs: number | undefined;
  if (values.jobs !== undefined) {
    jobs = /^\d{1,3}$/.test(values.jobs) ? Number(values.jobs) : Number.NaN;
    if (!(jobs >= 1 && jobs <= MAX_JOBS)) {
      throw new ValidationError(`--jobs must be a whole number from 1 to ${MAX_JOBS}, got "${values.jobs}"`);
    }
  }
  if (values['if-exists'] && !values.clean) throw new ValidationError('--if-exists goes with --clean');
  const args = [
    ...(values.table ?? []).map((t) => `--table=${checkName('--table', t)}`),
    ...(values.schema ?? []).map((s) => `--schema=${checkName('--schema', s)}`),
    ...(values['data-only'] ? ['--data-only'] : []),
    ...(values.clean ? ['--clean'] : []),
    ...(values['if-exists'] ? ['--if-exists'] : []),
  ];
  return { args, jobs };
}

/** Whether any option was given (the help says which need --restore). */
export function anyRestoreOption(options: RestoreOptions): boolean {
  return options.args.length > 0 || options.jobs !== undefined;
}

/** pg_restore's arguments for the options, as an argv (never a shell string). */
export function restoreArgs(options: RestoreOptions): string[] {
  return [...options.args, ...(options.jobs !== undefined ? [`--jobs=${options.jobs}`] : [])];
}

/**
 * Writes the (already checked) archive to a 0600 work file in `dir`, runs `use` on its path, and
 * removes the file on every exit path.
 */
export async function withArchiveFile<T>(
  source: Readable,
  dir: string,
  bytes: number,
  use: (path: string) => Promise<T>,
): Promise<T> {
  const file = await createWorkFile(dir, bytes);
  try {
    await pipeline(source, createWriteStream(file.path, { flags: 'wx', mode: 0o600 }));
    return await use(file.path);
  } finally {
    await file.remove();
  }
}
