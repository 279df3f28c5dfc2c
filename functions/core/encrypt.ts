import { type Cipher, createCipheriv, createHash, type Hash, randomBytes } from 'node:crypto';
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import * as openpgp from 'openpgp';
import type { Encryption } from './encryption';
import { BLOCK, TAG_LITERAL, TAG_MDC, TAG_SEIPD } from './seipd-body';
import { settle } from './transform';

/**
 * OpenPGP settings every reader's tools understand: session keys for SEIPD v1 with MDC (GnuPG 2.2
 * reads it; v6 keys and AEAD it does not), iterated-and-salted S2K for passphrases.
 */
const CONFIG: openpgp.PartialConfig = {
  aeadProtect: false,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
};

/** OpenSSL's name of the CFB-128 mode of each AES, by openpgp.js's name of the algorithm. */
export const OPENPGP_CFB: Readonly<Record<string, string>> = {
  aes128: 'aes-128-cfb',
  aes192: 'aes-192-cfb',
  aes256: 'aes-256-cfb',
};

/** The ciphers Dump Bag writes: AES-256 unless a recipient's key does not list it, then AES-128. */
const CIPHERS = {
  aes256: { id: openpgp.enums.symmetric.aes256, keyBytes: 32 },
  aes128: { id: openpgp.enums.symmetric.aes128, keyBytes: 16 },
} as const;
type CipherName = keyof typeof CIPHERS;

/** Sizes of the stream's pieces, powers of two for the partial lengths; tests make them small. */
export interface EncryptorLayout {
  /** log2 of a literal data packet's partial body. @default 16 */
  readonly literalBits?: number;
  /** log2 of the encrypted packet's partial body. @default 18 */
  readonly packetBits?: number;
  /** The most plaintext bytes encrypted in one call. @default 64 KiB */
  readonly pieceBytes?: number;
  /** Bytes the writable side may hold before it pushes back on pg_dump's pipe. @default 1 MiB */
  readonly bufferBytes?: number;
  /** Milliseconds to let a trickling input gather before taking more (0: take each piece at once). @default 1 */
  readonly coalesceMs?: number;
}

/** Input pieces smaller than this mean the writer is slower than we are. */
const SMALL_PIECE = 16 * 1024;

/** Wraps a byte stream in an OpenPGP message for the recipients (or the passphrase); `none` passes it through. */
export async function encryptStream(input: Readable, encryption: Encryption): Promise<Readable> {
  if (encryption.mode === 'none') return input;
  const encryptor = await createEncryptor(encryption);
  // Errors travel both ways: a failing pg_dump fails the upload, an aborted upload stops pg_dump.
  return pipeline(input, encryptor, () => {});
}

/**
 * An OpenPGP message writer (RFC 4880 SEIPD v1 with MDC, the newest packet GnuPG 2.2 decrypts).
 * openpgp.js encrypts the session key for each recipient (or the passphrase); the bulk data is
 * written here with node:crypto, at a fraction of the CPU of openpgp.js's Web Streams (bench/README.md).
 */
export async function createEncryptor(
  encryption: Exclude<Encryption, { mode: 'none' }>,
  layout: EncryptorLayout = {},
): Promise<Transform> {
  const cipher = encryption.mode === 'gpg' ? await cipherFor(encryption.recipients) : 'aes256';
  const sessionKey = randomBytes(CIPHERS[cipher].keyBytes);
  const keyPackets = await openpgp.encryptSessionKey({
    data: sessionKey,
    algorithm: cipher,
    format: 'binary',
    config: CONFIG,
    ...(encryption.mode === 'gpg'
      ? { encryptionKeys: encryption.recipients.map((r) => r.key) }
      : { passwords: [encryption.passphrase] }),
  });
  // OpenPGP's CFB for SEIPD starts from a zero IV and never resynchronises: that is CFB-128.
  const cipherStream = createCipheriv(OPENPGP_CFB[cipher] as string, sessionKey, Buffer.alloc(BLOCK));
  return new SeipdEncryptor(Buffer.from(keyPackets), cipherStream, layout);
}

/** AES-256 when every recipient's key lists it among its preferred ciphers, else AES-128 (as openpgp.js and GnuPG choose). */
async function cipherFor(recipients: readonly { readonly key: openpgp.PublicKey }[]): Promise<CipherName> {
  for (const { key } of recipients) {
    try {
      const { selfCertification } = await key.getPrimaryUser();
      if (!selfCertification.preferredSymmetricAlgorithms?.includes(CIPHERS.aes256.id)) return 'aes128';
    } catch {
      return 'aes128';
    }
  }
  return 'aes256';
}

/** A new-format packet length (with the tag byte first when given). */
export function definiteLength(length: number, tag?: number): Buffer {
  const out = tag === undefined ? [] : [0xc0 | tag];
  if (length < 192) {
    out.push(length);
  } else if (length < 8384) {
    out.push(((length - 192) >> 8) + 192, (length - 192) & 0xff);
  } else {
    out.push(0xff, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  return Buffer.from(out);
}

/** A packet body written as partial bodies of 2^bits bytes to `emit`, then a last part of definite length. */
abstract class PartialBodies {
  private started = false;

  constructor(
    private readonly tag: number,
    protected readonly bits: number,
    protected readonly emit: (chunk: Buffer) => void,
  ) {
    // RFC 4880 4.2.2.4: the first partial length must be at least 512 bytes; lengths are 2^0..2^30.
    if (bits < 9 || bits > 30) throw new RangeError(`partial body size 2^${bits} is outside 2^9..2^30`);
  }

  /** The header of the next full part: with the packet's tag byte for the first one. */
  protected partHeader(): Buffer {
    const first = !this.started;
    this.started = true;
    return first ? Buffer.of(0xc0 | this.tag, 0xe0 | this.bits) : Buffer.of(0xe0 | this.bits);
  }

  /** The header of the last part, of `length` bytes. */
  protected lastHeader(length: number): Buffer {
    return definiteLength(length, this.started ? undefined : this.tag);
  }
}

/**
 * A packet body of unknown length, written as partial bodies of 2^bits bytes and a last part of
 * definite length. A part is only sent once more bytes follow it, so the last part is never empty.
 * Holds on to the chunks it is given (no copy): for bodies whose chunks are fresh memory.
 */
class PartialBody extends PartialBodies {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  write(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const size = 2 ** this.bits;
    while (this.pendingBytes > size) {
      this.emit(this.partHeader());
      this.take(size);
    }
  }

  end(): void {
    this.emit(this.lastHeader(this.pendingBytes));
    this.take(this.pendingBytes);
  }

  private take(bytes: number): void {
    let left = bytes;
    while (left > 0) {
      const head = this.pending[0] as Buffer;
      if (head.length <= left) {
        this.pending.shift();
        this.emit(head);
        left -= head.length;
      } else {
        this.emit(head.subarray(0, left));
        this.pending[0] = head.subarray(left);
        left = 0;
      }
    }
    this.pendingBytes -= bytes;
  }
}

/**
 * The same partial bodies, gathered into one reused buffer of 2^bits bytes: a pg_dump other than the
 * layer's writes 4 KiB at a time, and hashing and encrypting each piece alone costs more than copying it
 * (bench/README.md). A part goes out whole, in one call, and `emit` must be done with it when it returns.
 */
class GatheredBody extends PartialBodies {
  private readonly part = Buffer.allocUnsafe(2 ** this.bits);
  private filled = 0;

  write(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.filled === this.part.length) {
        this.emit(this.partHeader());
        this.emit(this.part);
        this.filled = 0;
      }
      const copied = chunk.copy(this.part, this.filled, offset);
      this.filled += copied;
      offset += copied;
    }
  }

  end(): void {
    this.emit(this.lastHeader(this.filled));
    this.emit(this.part.subarray(0, this.filled));
    this.filled = 0;
  }
}

/**
 * Writes: the session key packets, then one SEIPD v1 packet holding, encrypted in OpenPGP's CFB
 * mode (zero IV, no resynchronisation: plain CFB-128), a random 18-byte prefix, a binary literal
 * data packet with the input, and an MDC packet (SHA-1 of all that came before it, its own two
 * header bytes included).
 *
 * The input is gathered into literal parts of 64 KiB, each hashed and encrypted in one call: OpenSSL's
 * CFB is a stream mode, so pieces of any length chain. Larger outputs would be fresh memory every
 * time (above glibc's mmap threshold), and the page faults of fresh memory cost more than the
 * cipher on these machines (bench/README.md).
 */
class SeipdEncryptor extends Transform {
  private readonly literal: GatheredBody;
  private readonly packet: PartialBody;
  private readonly mdc: Hash = createHash('sha1');
  private readonly pieceBytes: number;
  private readonly coalesceMs: number;
  private gathering: NodeJS.Timeout | undefined;

  constructor(
    keyPackets: Buffer,
    private readonly cipher: Cipher,
    layout: EncryptorLayout,
  ) {
    super({ writableHighWaterMark: layout.bufferBytes ?? 1024 * 1024 });
    this.coalesceMs = layout.coalesceMs ?? 1;
    this.pieceBytes = layout.pieceBytes ?? 64 * 1024;
    if (!Number.isInteger(this.pieceBytes) || this.pieceBytes < 1) {
      throw new RangeError('pieceBytes must be a positive integer');
    }
    this.packet = new PartialBody(TAG_SEIPD, layout.packetBits ?? 18, (chunk) => this.push(chunk));
    this.literal = new GatheredBody(TAG_LITERAL, layout.literalBits ?? 16, (chunk) => this.plain(chunk));

    this.push(keyPackets);
    this.packet.write(Buffer.of(1));
    const prefix = randomBytes(BLOCK + 2);
    prefix.copy(prefix, BLOCK, BLOCK - 2, BLOCK);
    this.plain(prefix);
    // Literal data: binary, no file name, the time of writing.
    const header = Buffer.alloc(6);
    header[0] = 0x62;
    header.writeUInt32BE(Math.floor(Date.now() / 1000), 2);
    this.literal.write(header);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // A pg_dump other than the layer's (layers/pg-dump/stdout-buffer.c) writes 4 KiB at a time; taking
    // each alone costs more CPU than encrypting it. When a piece comes small and nothing else waits, its
    // callback is held on a timer (the event loop stays free), so the writes that arrive meanwhile are
    // taken together when it fires.
    const trickling =
      this.coalesceMs > 0 && chunk.length < SMALL_PIECE && this.writableLength <= chunk.length;
    if (!trickling) {
      settle(callback, () => this.literal.write(chunk));
      return;
    }
    this.gathering = setTimeout(() => {
      this.gathering = undefined;
      settle(callback, () => this.literal.write(chunk));
    }, this.coalesceMs);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.gathering);
    callback(error);
  }

  override _flush(callback: TransformCallback): void {
    settle(callback, () => {
      this.literal.end();
      this.plain(Buffer.of(0xc0 | TAG_MDC, 20));
      // The MDC covers everything up to its own header; its SHA-1 value is encrypted, not hashed.
      this.encrypt(this.mdc.digest());
      const rest = this.cipher.final();
      if (rest.length > 0) this.packet.write(rest);
      this.packet.end();
    });
  }

  /** Plaintext inside the encrypted packet: hashed for the MDC, then encrypted. */
  private plain(chunk: Buffer): void {
    this.mdc.update(chunk);
    this.encrypt(chunk);
  }

  private encrypt(chunk: Buffer): void {
    for (let offset = 0; offset < chunk.length; offset += this.pieceBytes) {
      this.packet.write(this.cipher.update(chunk.subarray(offset, offset + this.pieceBytes)));
    }
  }
}
