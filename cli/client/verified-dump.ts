import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DumpRecord } from '../../functions/core/catalog';
import { DumpBagError, errorMessage } from '../../functions/core/errors';
import {
  decryptStream,
  fetchStored,
  IntegrityError,
  type OpenDumpOptions,
  plaintextFailure,
  RecordCheck,
} from './dump-stream';
import { createWorkFile, workFileFailure } from './work-file';

export interface VerifiedDumpOptions extends OpenDumpOptions {
  /** Where the ciphertext waits while it is checked: DUMP_BAG_WORK_DIR, beside -o FILE, or TMPDIR. */
  readonly workDir: string;
  /** Bytes the caller will write into the same folder afterwards (the plaintext of -o FILE). @default 0 */
  readonly alsoNeeded?: number;
  /**
   * The record's own check (its signature: README, Security): runs after the SHA-256 and
   * the MDC held, before any plaintext is released; throwing stops the release.
   * @default none yet
   */
  readonly checkRecord?: (record: DumpRecord) => Promise<void>;
}

async function drain(stream: Readable): Promise<void> {
  for await (const _ of stream) {
    // Only the MDC check at the stream's end matters here.
  }
}

/** Downloads the stored bytes into `path` (created 0600), failing unless their size and SHA-256 are the record's. */
async function download(options: VerifiedDumpOptions, path: string): Promise<void> {
  const stored = await fetchStored(options.url);
  const check = new RecordCheck(options.record, options.onBytes);
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  let failedOnDisk = false;
  file.once('error', () => {
    failedOnDisk = true;
  });
  try {
    await pipeline(stored, check, file);
  } catch (error: unknown) {
    if (failedOnDisk) throw workFileFailure(error, options.workDir);
    if (error instanceof DumpBagError) throw error;
    throw new IntegrityError(`the download broke off: ${errorMessage(error)}`);
  }
}

/** The plaintext of the checked work file, errors worded for the user. */
function plaintextOf(path: string, options: VerifiedDumpOptions): Promise<Readable> {
  return decryptStream(createReadStream(path), options);
}

/**
 * Runs `use` on the dump's plaintext only after every check held: the stored bytes' size and SHA-256
 * against the record, the OpenPGP MDC, and `checkRecord`. The ciphertext is downloaded into a work
 * file (free space checked first) that is removed on every exit path.
 */
export async function withVerifiedDump<T>(
  options: VerifiedDumpOptions,
  use: (archive: Readable) => Promise<T>,
): Promise<T> {
  const work = await createWorkFile(options.workDir, options.record.bytes + (options.alsoNeeded ?? 0));
  try {
    await download(options, work.path);
    if (options.decryption.mode !== 'none') {
      // Decrypting twice (check, then release) costs one more AES pass, cheaper than a plaintext work file's disk and writes.
      try {
        await drain(await plaintextOf(work.path, options));
      } catch (error: unknown) {
        throw plaintextFailure(error, options.decryption);
      }
    }
    await options.checkRecord?.(options.record);
    return await use(await plaintextOf(work.path, options));
  } finally {
    await work.remove();
  }
}
