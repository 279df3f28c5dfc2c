import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
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
   * The record's own check (its signature, DESIGN.md "Trust model" (1)): runs after the SHA-256 and
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

/**
 * Passes the download on to the work file and hands each chunk to `copy` as well, waiting while the
 * copy's reader is behind. A copy whose reader stopped (it failed) is dropped: the download goes on,
 * and its own checks decide which error the user reads first.
 */
class Tap extends Transform {
  private dropped = false;

  constructor(private readonly copy: PassThrough) {
    super();
    copy.once('close', () => {
      this.dropped = true;
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.dropped || this.copy.write(chunk)) {
      done(null, chunk);
      return;
    }
    const resume = () => {
      this.copy.off('drain', resume);
      this.copy.off('close', resume);
      done(null, chunk);
    };
    this.copy.once('drain', resume);
    this.copy.once('close', resume);
  }

  override _flush(done: TransformCallback): void {
    if (!this.dropped) this.copy.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // Only a failed download ends the copy early; a finished one has ended it and its reader may still be behind.
    if (error) this.copy.destroy(error);
    done(error);
  }
}

/** Downloads the stored bytes into `path` (created 0600), failing unless their size and SHA-256 are the record's. */
async function download(options: VerifiedDumpOptions, path: string, tap?: Tap): Promise<void> {
  const stored = await fetchStored(options.url);
  const check = new RecordCheck(options.record, options.onBytes);
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  let failedOnDisk = false;
  file.once('error', () => {
    failedOnDisk = true;
  });
  try {
    if (tap) await pipeline(stored, check, tap, file);
    else await pipeline(stored, check, file);
  } catch (error: unknown) {
    if (failedOnDisk) throw workFileFailure(error, options.workDir);
    if (error instanceof DumpBagError) throw error;
    throw new IntegrityError(`the download broke off: ${errorMessage(error)}`);
  }
}

/**
 * The download, with the MDC checked by decrypting a copy of the bytes as they arrive (the
 * plaintext is thrown away): a second pass over the work file afterwards would add its whole time
 * to every restore. The download's own checks (size, SHA-256, the disk) are reported before the MDC's.
 */
async function downloadChecked(options: VerifiedDumpOptions, path: string): Promise<void> {
  if (options.decryption.mode === 'none') {
    await download(options, path);
    return;
  }
  const copy = new PassThrough({ highWaterMark: 1024 * 1024 });
  const plaintextChecked = (async () => drain(await decryptStream(copy, options)))();
  const [stored, checked] = await Promise.allSettled([
    download(options, path, new Tap(copy)),
    plaintextChecked,
  ]);
  if (stored.status === 'rejected') throw stored.reason;
  if (checked.status === 'rejected') throw plaintextFailure(checked.reason, options.decryption);
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
    // Decrypting twice (check, then release) costs one more AES pass, cheaper than a plaintext work file's disk and writes.
    await downloadChecked(options, work.path);
    await options.checkRecord?.(options.record);
    return await use(await plaintextOf(work.path, options));
  } finally {
    await work.remove();
  }
}
