/**
 * The bulk of a Dump Bag message: the SEIPD v1 packet's ciphertext decrypted with node:crypto, its one
 * literal packet's data passed on, and its MDC checked at the end (RFC 9580 §5.13.1, §5.9), with
 * the packet framing rules it shares with the head reader (seipd-reader.ts) and the writer (encrypt.ts).
 * It imports no openpgp.js, so that a worker thread can load it alone (cli/client/mdc-check.ts).
 */
import { createDecipheriv, createHash, type Decipher, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { settle } from './transform';

export const BLOCK = 16;
export const TAG_LITERAL = 11;
export const TAG_SEIPD = 18;
export const TAG_MDC = 19;

export const LITERAL_HEADER = 0xc0 | TAG_LITERAL;
const MDC = Buffer.of(0xc0 | TAG_MDC, 20);
/** The MDC packet: its two header bytes and SHA-1's 20. */
const MDC_BYTES = 22;
/** The random prefix and its two check bytes (RFC 9580 §5.13.1). */
export const PREFIX = BLOCK + 2;
const PIECE = 64 * 1024;

/** The message does not decrypt: a wrong key or passphrase, or damaged bytes. The caller says which dump. */
export class SeipdError extends Error {
  override name = 'SeipdError';
}

/** The size of a new-format length header, from its first byte. */
export function lengthSize(first: number): number {
  return first < 192 ? 1 : first < 224 ? 2 : first < 255 ? 1 : 5;
}

/** A new-format packet length at `at`: the body's length, whether it is partial, and the header's size. */
export function readLength(
  buffer: Buffer,
  at: number,
): { length: number; partial: boolean; size: number } | undefined {
  const first = buffer[at];
  if (first === undefined) return undefined;
  if (first < 192) return { length: first, partial: false, size: 1 };
  if (first < 224) {
    const second = buffer[at + 1];
    return second === undefined
      ? undefined
      : { length: ((first - 192) << 8) + second + 192, partial: false, size: 2 };
  }
  if (first < 255) return { length: 1 << (first & 0x1f), partial: true, size: 1 };
  return at + 5 <= buffer.length
    ? { length: buffer.readUInt32BE(at + 1), partial: false, size: 5 }
    : undefined;
}

/**
 * What decrypts a SEIPD body: node:crypto's cipher name, the session key, and the packet's first part.
 * Plain data, so that a worker thread can be given it.
 */
export interface SeipdKey {
  readonly cipher: string;
  readonly key: Uint8Array;
  /** The first part's ciphertext bytes after the version byte, and whether more parts follow. */
  readonly firstPart: { readonly length: number; readonly partial: boolean };
}

/** The SEIPD body after its version byte in, the literal data out; the stream errors unless the MDC matches. */
export function seipdBodyReader(seipd: SeipdKey): Transform {
  return new SeipdReader(createDecipheriv(seipd.cipher, seipd.key, Buffer.alloc(BLOCK)), seipd.firstPart);
}

/**
 * The SEIPD packet's ciphertext (its body after the version byte) in, the literal packet's data out. The last 22
 * plaintext bytes, the MDC packet, are held back until the end, where they must match the SHA-1 of
 * everything before them.
 */
class SeipdReader extends Transform {
  /** Ciphertext bytes left in the SEIPD part being read, and whether more parts follow it. */
  private outer: { left: number; partial: boolean };
  /** A length header split across input chunks. */
  private pendingHeader = Buffer.alloc(0);
  private readonly mdc: Hash = createHash('sha1');
  /** The last plaintext bytes, which may be the MDC packet. */
  private tail = Buffer.alloc(0);
  /** Plaintext bytes still to be taken before the literal data: the prefix, the packet's header, its own header. */
  private preamble = Buffer.alloc(0);
  private state: 'preamble' | 'data' | 'length' | 'done' = 'preamble';
  /** Literal data bytes left in the inner part being read, and whether more parts follow. */
  private inner = { left: 0, partial: false };

  constructor(
    private readonly decipher: Decipher,
    first: { readonly length: number; readonly partial: boolean },
  ) {
    super();
    this.outer = { left: first.length, partial: first.partial };
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    settle(callback, () => {
      this.outerBytes(chunk);
    });
  }

  override _flush(callback: TransformCallback): void {
    settle(callback, () => {
      if (this.outer.left > 0 || this.outer.partial || this.pendingHeader.length > 0) {
        throw new SeipdError('the encrypted data ends early: a damaged or incomplete dump');
      }
      if (this.state !== 'done' || this.tail.length !== MDC_BYTES || !this.tail.subarray(0, 2).equals(MDC)) {
        throw new SeipdError('the encrypted data is not one literal packet and its MDC: a damaged dump');
      }
      this.mdc.update(this.tail.subarray(0, 2));
      if (!this.mdc.digest().equals(this.tail.subarray(2))) {
        throw new SeipdError('modification detected: the integrity check (MDC) failed');
      }
    });
  }

  /** Strips the SEIPD part headers and decrypts what lies between them. */
  private outerBytes(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.outer.left === 0) {
        if (!this.outer.partial)
          throw new SeipdError('bytes after the encrypted data packet: a damaged dump');
        // A length header is 1 to 5 bytes, and may be split between two chunks.
        const window = Buffer.concat([this.pendingHeader, chunk.subarray(at, at + 5)]);
        const length = readLength(window, 0);
        if (!length) {
          this.pendingHeader = window;
          return;
        }
        at += length.size - this.pendingHeader.length;
        this.pendingHeader = Buffer.alloc(0);
        this.outer = { left: length.length, partial: length.partial };
        continue;
      }
      const take = Math.min(this.outer.left, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.outer.left -= take;
      for (let offset = 0; offset < piece.length; offset += PIECE) {
        this.plain(this.decipher.update(piece.subarray(offset, offset + PIECE)));
      }
    }
  }

  /** Plaintext in order; all but the last 22 bytes seen so far go on to be parsed. */
  private plain(bytes: Buffer): void {
    const total = this.tail.length + bytes.length;
    if (total <= MDC_BYTES) {
      this.tail = Buffer.concat([this.tail, bytes]);
      return;
    }
    const release = total - MDC_BYTES;
    if (release <= this.tail.length) {
      this.settled(this.tail.subarray(0, release));
      this.tail = Buffer.concat([this.tail.subarray(release), bytes]);
    } else {
      if (this.tail.length > 0) this.settled(this.tail);
      const cut = release - this.tail.length;
      this.settled(bytes.subarray(0, cut));
      this.tail = Buffer.from(bytes.subarray(cut));
    }
  }

  /** Plaintext that is not the MDC packet: hashed, then parsed as the prefix and one literal packet. */
  private settled(bytes: Buffer): void {
    this.mdc.update(bytes);
    let at = 0;
    while (at < bytes.length) {
      if (this.state === 'done') throw new SeipdError('more than one packet inside the encrypted data');
      at += this.state === 'data' ? this.literalData(bytes, at) : this.headerBytes(bytes, at);
    }
  }

  /** Gathers the prefix and the literal packet's headers, or a partial length header; returns bytes taken. */
  private headerBytes(bytes: Buffer, at: number): number {
    const preamble = this.state === 'preamble';
    const need = preamble ? this.preambleNeeds() : this.lengthNeeds();
    const take = Math.min(need, bytes.length - at);
    this.preamble = Buffer.concat([this.preamble, bytes.subarray(at, at + take)]);
    if (take === need) {
      if (preamble) this.takePreamble();
      else this.takeLength();
    }
    return take;
  }

  /** Passes on the literal packet's data; returns bytes taken. */
  private literalData(bytes: Buffer, at: number): number {
    const take = Math.min(this.inner.left, bytes.length - at);
    if (take > 0) this.push(bytes.subarray(at, at + take));
    this.inner.left -= take;
    if (this.inner.left === 0) this.state = this.inner.partial ? 'length' : 'done';
    return take;
  }

  /** How many more bytes the prefix, the literal packet's header and its own header need. */
  private preambleNeeds(): number {
    const have = this.preamble;
    if (have.length < PREFIX + 1) return PREFIX + 1 - have.length;
    const length = readLength(have, PREFIX + 1);
    if (!length) return PREFIX + 1 + lengthSize(have[PREFIX + 1] as number) - have.length;
    const bodyStart = PREFIX + 1 + length.size;
    // format, file name length, file name, date
    if (have.length < bodyStart + 2) return bodyStart + 2 - have.length;
    return bodyStart + 2 + (have[bodyStart + 1] as number) + 4 - have.length;
  }

  private takePreamble(): void {
    if (this.preambleNeeds() > 0) return;
    const have = this.preamble;
    if (have[PREFIX] !== LITERAL_HEADER) throw new SeipdError('the encrypted data holds no literal packet');
    const length = readLength(have, PREFIX + 1) as { length: number; partial: boolean; size: number };
    const headerBytes = have.length - (PREFIX + 1 + length.size);
    if (headerBytes > length.length) throw new SeipdError('a literal packet shorter than its own header');
    this.inner = { left: length.length - headerBytes, partial: length.partial };
    this.preamble = Buffer.alloc(0);
    this.state = 'data';
    if (this.inner.left === 0) this.state = this.inner.partial ? 'length' : 'done';
  }

  private lengthNeeds(): number {
    const first = this.preamble[0];
    return first === undefined ? 1 : lengthSize(first) - this.preamble.length;
  }

  private takeLength(): void {
    if (this.lengthNeeds() > 0) return;
    const length = readLength(this.preamble, 0) as { length: number; partial: boolean };
    this.preamble = Buffer.alloc(0);
    this.inner = { left: length.length, partial: length.partial };
    this.state = this.inner.left === 0 ? (this.inner.partial ? 'length' : 'done') : 'data';
  }
}
