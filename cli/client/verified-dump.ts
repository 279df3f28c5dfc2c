import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
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
import { checkedInWorker } from './mdc-check';
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

/** A failure of the download or of the work file, worded for the user. */
function downloadFailure(error: unknown, failedOnDisk: boolean, workDir: string): Error {
  if (error instanceof DumpBagError) return error;
  if (failedOnDisk) return workFileFailure(error, workDir);
  return new IntegrityError(`the download broke off: ${errorMessage(error)}`);
}

/** Said of a dump refused at its first bytes, where the SHA-256 of the whole could not speak yet. */
const STOPPED_EARLY =
  '; the download stopped there, before the SHA-256 could tell whether the stored dump was changed' +
  ' (dump-bag verify --checksum-only tells)';

/**
 * Decrypts `copy` into nothing, Dump Bag's own shape in a worker thread (mdc-check.ts), a --foreign
 * message here with openpgp.js: fails unless the MDC holds. A dump that cannot be opened (wrong
 * passphrase, not Dump Bag's shape) stops the download at once through `abort` (false if it had
 * already ended), rather than after gigabytes; a failure later on waits for the download's end, whose
 * verdict on the bytes comes first.
 * `stopCopy` stops feeding the copy, so that the file alone goes on.
 */
async function checkMdc(
  copy: Readable,
  options: VerifiedDumpOptions,
  abort: (error: Error) => boolean,
  stopCopy: () => void,
): Promise<void> {
  let plaintext: Readable;
  try {
    plaintext = await decryptStream(copy, { ...options, readBody: checkedInWorker });
  } catch (error: unknown) {
    const failure = plaintextFailure(error, options.decryption);
    if (abort(failure)) failure.message += STOPPED_EARLY;
    throw failure;
  }
  try {
    await drain(plaintext);
  } catch (error: unknown) {
    stopCopy();
    throw plaintextFailure(error, options.decryption);
  }
}

/**
 * Downloads the stored bytes into `path` (created 0600), failing unless their size and SHA-256 are the
 * record's. An encrypted dump is decrypted as it arrives, into nothing, and fails unless its MDC holds:
 * the check runs while the bytes come in instead of after them (bench/README.md, restore).
 */
async function downloadAndCheck(options: VerifiedDumpOptions, path: string): Promise<void> {
  const stored = await fetchStored(options.url);
  const check = new RecordCheck(options.record, options.onBytes);
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  let failedOnDisk = false;
  file.once('error', () => {
    // The pipeline also destroys the file with an error from upstream; only one of its own is the disk's.
    failedOnDisk = !stored.errored && !check.errored;
  });
  const encrypted = options.decryption.mode !== 'none';
  // The same bytes as the file gets, for the MDC check; piping waits for the slower of the two.
  const copy = new PassThrough();
  if (encrypted) check.pipe(copy);
  const stopCopy = () => {
    check.unpipe(copy);
    copy.destroy();
  };
  const written = pipeline(stored, check, file).catch((error: unknown) => {
    // A download that stopped never ends the copy: the check would wait for it forever.
    stopCopy();
    throw downloadFailure(error, failedOnDisk, options.workDir);
  });
  const stopDownload = (error: Error): boolean => {
    // A download already at its end still gets its SHA-256 verdict.
    if (stored.readableEnded) return false;
    stored.destroy(error);
    return true;
  };
  const decrypted = encrypted ? checkMdc(copy, options, stopDownload, stopCopy) : Promise.resolve();
  const [download, mdc] = await Promise.allSettled([written, decrypted]);
  // Bytes that are not the recorded ones explain whatever the decryption said of them.
  if (download.status === 'rejected') throw download.reason;
  if (mdc.status === 'rejected') throw mdc.reason;
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
    // Decrypting twice (check, then release) costs one more AES pass, cheaper than a plaintext work
    // file's disk and writes.
    await downloadAndCheck(options, work.path);
    await options.checkRecord?.(options.record);
    return await use(await plaintextOf(work.path, options));
  } finally {
    await work.remove();
  }
}
