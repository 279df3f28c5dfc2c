import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import type { DumpRecord } from '../../functions/core/catalog';
import { DumpBagError, errorMessage } from '../../functions/core/errors';
import type { SeipdKey } from '../../functions/core/seipd-body';
import { openSeipd, SeipdShapeError } from '../../functions/core/seipd-reader';
import type { Decryption } from './decryption';

/** The downloaded bytes are not the ones recorded: the stored object changed, or the download broke. */
export class IntegrityError extends DumpBagError {
  override name = 'IntegrityError';
}

/** The dump could not be decrypted: wrong passphrase, or bytes damaged in a way OpenPGP noticed first. */
export class DecryptError extends DumpBagError {
  override name = 'DecryptError';
}

/**
 * Plaintext bytes held back until the whole download is proven good. A consumer (a file, pg_restore)
 * never sees the end of the archive before the SHA-256 and OpenPGP's integrity check have passed, so
 * pg_restore cannot finish, and commit, a tampered dump.
 */
const HOLD_BACK_BYTES = 256 * 1024;

/** Counts and hashes the stored bytes as they pass; at the end they must match the record. */
export class RecordCheck extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  readonly verified: Promise<void>;
  private settle!: { resolve: () => void; reject: (error: unknown) => void };

  constructor(
    private readonly record: DumpRecord,
    private readonly onBytes?: (bytes: number) => void,
  ) {
    super();
    this.verified = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Someone always awaits `verified` eventually; this keeps an early failure from being "unhandled" meanwhile.
    this.verified.catch(() => {});
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.bytes > this.record.bytes) {
      callback(new IntegrityError(`the download is larger than the recorded ${this.record.bytes} bytes`));
      return;
    }
    this.onBytes?.(this.bytes);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const sha256 = this.hash.digest('hex');
    if (this.bytes !== this.record.bytes) {
      callback(
        new IntegrityError(`the download has ${this.bytes} bytes, the record says ${this.record.bytes}`),
      );
    } else if (sha256 !== this.record.sha256) {
      callback(
        new IntegrityError(
          'the downloaded bytes do not match the recorded SHA-256: the stored dump was changed or damaged',
        ),
      );
    } else {
      this.settle.resolve();
      callback();
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.settle.reject(error ?? new IntegrityError('the download stopped before its end'));
    callback(error);
  }
}

/** Passes bytes on but keeps the last `size` of them until `ready` resolves; fails if it rejects. */
class HoldBack extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(
    private readonly size: number,
    private readonly ready: () => Promise<void>,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    while (this.held.length > 0 && this.heldBytes - (this.held[0] as Buffer).length >= this.size) {
      const first = this.held.shift() as Buffer;
      this.heldBytes -= first.length;
      this.push(first);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.ready().then(() => {
      for (const chunk of this.held) this.push(chunk);
      this.held = [];
      callback();
    }, callback);
  }
}

function toBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** A message Dump Bag does not write (compressed, old-format, oversized key packets), refused unless --foreign. */
export class RefusedMessageError extends DumpBagError {
  override name = 'RefusedMessageError';
}

/** A --foreign message may hold compressed data: its plaintext may not outgrow the stored bytes more than this. */
export const FOREIGN_EXPANSION = 16;
const FOREIGN_FLOOR_BYTES = 64 * 1024 * 1024;

/** Fails the stream once more than `limit` bytes passed: a decompression bomb stops there. */
class OutputLimit extends Transform {
  private bytes = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      callback(
        new RefusedMessageError(
          `the foreign message decrypts to more than ${this.limit} bytes (${FOREIGN_EXPANSION} × its stored size): refused as a likely decompression bomb`,
        ),
      );
      return;
    }
    callback(null, chunk);
  }
}

export interface DecryptOptions {
  readonly record: DumpRecord;
  readonly decryption: Decryption;
  /** Read messages of another shape than Dump Bag's with openpgp.js, under an output limit. */
  readonly foreign?: boolean;
  /** What decrypts Dump Bag's own shape's SEIPD body: by default this thread (openSeipd). */
  readonly readBody?: (seipd: SeipdKey, body: Readable) => Readable;
}

function decryptFailure(error: unknown, decryption: Decryption): Error {
  if (error instanceof DumpBagError) return error;
  if (error instanceof SeipdShapeError)
    return new RefusedMessageError(`the dump is refused: ${error.message}`);
  return new DecryptError(
    decryption.mode === 'passphrase'
      ? `cannot decrypt the dump: wrong passphrase? (${errorMessage(error)})`
      : `cannot decrypt the dump with the given key: ${errorMessage(error)}`,
  );
}

/**
 * The plaintext of the stored bytes `input`: Dump Bag's own shape natively, another only with
 * `foreign`, through openpgp.js and an output limit. The stream errors unless the MDC matches.
 */
export async function decryptStream(input: Readable, options: DecryptOptions): Promise<Readable> {
  const { decryption, record } = options;
  if (decryption.mode === 'none') return input;
  try {
    const secrets =
      decryption.mode === 'gpg'
        ? { decryptionKeys: [...decryption.keys] }
        : { passwords: [decryption.passphrase] };
    const opened = await openSeipd(input, secrets, options.readBody);
    if (opened.plaintext) return opened.plaintext;
    if (!options.foreign) {
      opened.replay.destroy();
      input.destroy();
      throw new RefusedMessageError(
        `the dump is not in the shape Dump Bag writes (${opened.shape}): refused; if you trust where it came from, read it with --foreign`,
      );
    }
    const message = await openpgp.readMessage({
      binaryMessage: Readable.toWeb(opened.replay) as unknown as ReadableStream<Uint8Array>,
    });
    const { data } = await openpgp.decrypt({
      message,
      format: 'binary',
      // Streams instead of buffering the whole dump; the caller releases nothing before the stream's end.
      config: { allowUnauthenticatedStream: true },
      ...secrets,
    });
    const plain = Readable.fromWeb(data as unknown as NodeWebReadableStream<Uint8Array>);
    const limited = new OutputLimit(Math.max(record.bytes * FOREIGN_EXPANSION, FOREIGN_FLOOR_BYTES));
    plain.once('error', (error) => limited.destroy(error));
    limited.once('close', () => {
      if (!plain.destroyed) plain.destroy();
    });
    return plain.pipe(limited);
  } catch (error: unknown) {
    input.destroy();
    throw decryptFailure(error, decryption);
  }
}

/** An error from the plaintext stream, as the user should read it. */
export function plaintextFailure(error: unknown, decryption: Decryption): Error {
  if (error instanceof DumpBagError) return error;
  if (error instanceof SeipdShapeError)
    return new RefusedMessageError(`the dump is refused: ${error.message}`);
  return decryption.mode === 'none'
    ? new IntegrityError(`the download broke off: ${errorMessage(error)}`)
    : new DecryptError(
        `the dump does not decrypt cleanly: ${errorMessage(error)}${
          decryption.mode === 'passphrase' ? ' (wrong passphrase, or a damaged dump)' : ' (a damaged dump)'
        }`,
      );
}

/** How long a download may send nothing before it fails (what fetch's undici allows a body). */
const DOWNLOAD_IDLE_MS = 300_000;

function downloadFailed(why: string): DumpBagError {
  // The URL itself is a bearer credential: it never goes into a message.
  return new DumpBagError(`the download failed: ${why}`);
}

/**
 * A GET of the presigned URL, as a stream of the stored bytes. node:http(s) rather than fetch: a web
 * stream turned into a Node one costs twice the CPU per byte (bench/README.md). No redirect is followed.
 */
export function fetchStored(url: string): Promise<Readable> {
  const target = URL.canParse(url) ? new URL(url) : undefined;
  const get = { 'https:': https.get, 'http:': http.get }[target?.protocol ?? ''];
  if (!target || !get) return Promise.reject(downloadFailed('the API answered no http(s) URL'));
  return new Promise((resolve, reject) => {
    const request = get(target, (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        resolve(response);
        return;
      }
      response.resume();
      reject(downloadFailed(`the storage answered HTTP ${status}`));
    });
    request.setTimeout(DOWNLOAD_IDLE_MS, () =>
      request.destroy(new Error(`no data for ${DOWNLOAD_IDLE_MS / 1000} s`)),
    );
    request.once('error', (error: NodeJS.ErrnoException) =>
      reject(downloadFailed(error.code ?? error.message)),
    );
  });
}

export interface OpenDumpOptions extends DecryptOptions {
  /** A presigned GET for the record's key. */
  readonly url: string;
  /** Called with the count of stored bytes downloaded so far. */
  readonly onBytes?: (bytes: number) => void;
}

/**
 * `--stream`: downloads one dump and yields its plaintext as it arrives. The stream fails instead of
 * ending when the stored bytes differ from the record or do not decrypt, and withholds its last bytes
 * until both checks have passed; everything before them is released unchecked.
 */
export async function openDump(options: OpenDumpOptions): Promise<Readable> {
  const { record, decryption } = options;
  const stored = await fetchStored(options.url);
  const check = new RecordCheck(record, options.onBytes);
  const checked = stored.pipe(check);
  stored.once('error', (error) =>
    check.destroy(new IntegrityError(`the download broke off: ${errorMessage(error)}`)),
  );
  let plain: Readable;
  try {
    plain = await decryptStream(checked, options);
  } catch (error: unknown) {
    check.destroy();
    stored.destroy();
    throw error;
  }
  const hold = new HoldBack(HOLD_BACK_BYTES, () => check.verified);
  const fail = (error: unknown) => {
    if (hold.destroyed) return;
    hold.destroy(plaintextFailure(error, decryption));
    check.destroy();
    stored.destroy();
  };
  // The record check's verdict is the clearer one when the bytes are wrong. It settles when the download
  // ends, before OpenPGP can report a bad MDC, so a plaintext error after it is taken as its consequence.
  let checkFailure: unknown;
  check.verified.catch((error: unknown) => {
    checkFailure = error;
    fail(error);
  });
  plain.once('error', (error) => fail(checkFailure ?? error));
  plain.on('data', (chunk: Uint8Array) => {
    if (!hold.write(toBuffer(chunk))) {
      plain.pause();
      hold.once('drain', () => plain.resume());
    }
  });
  plain.once('end', () => hold.end());
  hold.once('close', () => {
    if (!plain.destroyed) plain.destroy();
  });
  return hold;
}
