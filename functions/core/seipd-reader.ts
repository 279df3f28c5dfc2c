/**
 * Reads OpenPGP messages of the shape encrypt.ts writes (RFC 9580 §5.1, §5.3, §5.9, §5.13.1), with every
 * length bounded: one file, over 300 lines, because the head parser, the session-key opener and the
 * SEIPD decrypter share the packet framing rules and their limits.
 */
import { createDecipheriv, createHash, type Decipher, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import * as openpgp from 'openpgp';
import { chunksOf } from './chunks';
import { BLOCK, OPENPGP_CFB, TAG_LITERAL, TAG_MDC, TAG_SEIPD } from './encrypt';
import { settle } from './transform';

/** The message does not decrypt: a wrong key or passphrase, or damaged bytes. The caller says which dump. */
export class SeipdError extends Error {
  override name = 'SeipdError';
}

const TAG_PKESK = 1;
const TAG_SKESK = 3;
const LITERAL_HEADER = 0xc0 | TAG_LITERAL;
const MDC = Buffer.of(0xc0 | TAG_MDC, 20);
/** The MDC packet: its two header bytes and SHA-1's 20. */
const MDC_BYTES = 22;
const PREFIX = BLOCK + 2;
const PIECE = 64 * 1024;

export interface Secrets {
  readonly decryptionKeys?: openpgp.PrivateKey[];
  readonly passwords?: string[];
}

/** The size of a new-format length header, from its first byte. */
function lengthSize(first: number): number {
  return first < 192 ? 1 : first < 224 ? 2 : first < 255 ? 1 : 5;
}

/** A new-format packet length at `at`: the body's length, whether it is partial, and the header's size. */
function readLength(
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

export interface Head {
  /** The session key packets. */
  readonly keyPackets: Buffer;
  /** The SEIPD packet's body from its version byte on, as far as it was read, and its first part's length. */
  readonly body: Buffer;
  readonly firstPart: { readonly length: number; readonly partial: boolean };
}

/** Bounds on what a hostile head can make the reader hold (a real PKESK is under 1 KiB). */
export const MAX_KEY_PACKET_BYTES = 64 * 1024;
export const MAX_KEY_PACKETS_BYTES = 1024 * 1024;

/** The message is refused before decryption: a bound was crossed. Not a key or passphrase problem. */
export class SeipdShapeError extends SeipdError {
  override name = 'SeipdShapeError';
}

/**
 * Splits off the session key packets and the start of the SEIPD packet, chunk by chunk. Chunks are
 * only joined once they hold all the bytes the next step needs, so each byte is copied a bounded
 * number of times: linear in the head's size, which the bounds above cap.
 */
export class HeadReader {
  private readonly packets: Buffer[] = [];
  private packetBytes = 0;
  private chunks: Buffer[] = [];
  private have = 0;
  /** Bytes the next step needs before it is worth joining the chunks. */
  private need = 1;

  /** The head, 'more' to be fed on, or undefined if the message is shaped otherwise. */
  add(chunk: Buffer): Head | 'more' | undefined {
    this.chunks.push(chunk);
    this.have += chunk.length;
    if (this.have < this.need) return 'more';
    let bytes = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    for (;;) {
      const step = this.step(bytes);
      if (typeof step === 'number') {
        if (step === 0) return undefined;
        this.packets.push(bytes.subarray(0, step));
        bytes = bytes.subarray(step);
        continue;
      }
      if (step === 'more') {
        this.chunks = [bytes];
        this.have = bytes.length;
        return 'more';
      }
      return step;
    }
  }

  /** One key packet's size to split off, 0 for another shape, 'more' (with `need` set), or the head. */
  private step(bytes: Buffer): number | Head | 'more' {
    const tagByte = bytes[0];
    const more = (need: number) => {
      this.need = need;
      return 'more' as const;
    };
    if (tagByte === undefined) return more(1);
    // Old-format packets, or anything but session keys then SEIPD, are another shape (RFC 9580 §4.2).
    if ((tagByte & 0xc0) !== 0xc0) return 0;
    const tag = tagByte & 0x3f;
    const length = readLength(bytes, 1);
    if (!length) return more(1 + lengthSize(bytes[1] ?? 0));
    if (tag === TAG_SEIPD) {
      const start = 1 + length.size;
      // The version byte, the prefix and the inner packet's first byte, all inside the first part (≥ 512 bytes).
      if (bytes.length < start + 1 + PREFIX + 1) return more(start + 1 + PREFIX + 1);
      if (length.length < 1 + PREFIX + 1) return 0;
      return { keyPackets: Buffer.concat(this.packets), body: bytes.subarray(start), firstPart: length };
    }
    if ((tag !== TAG_PKESK && tag !== TAG_SKESK) || length.partial) return 0;
    // Checked on the declared length, before waiting for its bytes: a 1 GiB claim fails at once.
    if (length.length > MAX_KEY_PACKET_BYTES) {
      throw new SeipdShapeError(
        `a session key packet declares ${length.length} bytes, over the ${MAX_KEY_PACKET_BYTES} allowed: not a message Dump Bag wrote`,
      );
    }
    const size = 1 + length.size + length.length;
    if (this.packetBytes + size > MAX_KEY_PACKETS_BYTES) {
      throw new SeipdShapeError(
        `the session key packets exceed ${MAX_KEY_PACKETS_BYTES} bytes in all: not a message Dump Bag wrote`,
      );
    }
    if (bytes.length < size) return more(size);
    this.packetBytes += size;
    return size;
  }
}

/**
 * Decrypts what Dump Bag writes (encrypt.ts), and what openpgp.js wrote for it before: session key
 * packets, one SEIPD v1 packet (CFB, MDC) holding one binary literal packet. openpgp.js decrypts the
 * session key; the bulk is decrypted with node:crypto, several times faster than openpgp.js's
 * streams. Returns undefined, with the bytes read so far given back and the shape named, for any other
 * shape of message, which openpgp.js may then read. The plaintext stream errors unless the MDC matches.
 * Throws SeipdShapeError when the session key packets cross their bounds.
 */
export async function openSeipd(
  input: Readable,
  secrets: Secrets,
): Promise<
  | { readonly plaintext: Readable }
  | { readonly plaintext: undefined; readonly replay: Readable; readonly shape: string }
> {
  const chunks = chunksOf(input);
  const read: Buffer[] = [];
  const headReader = new HeadReader();
  let head: Head | 'more' | undefined = 'more';
  while (head === 'more') {
    const next = await chunks.next();
    if (next.done) break;
    read.push(next.value);
    try {
      head = headReader.add(next.value);
    } catch (error: unknown) {
      input.destroy();
      throw error;
    }
  }
  const replay = () =>
    Readable.from(
      (async function* () {
        yield* read;
        yield* chunks;
      })(),
    );
  if (head === 'more' || head === undefined || head.body[0] !== 1)
    return { plaintext: undefined, replay: replay(), shape: 'not session keys then one SEIPD v1 packet' };

  const message = await openpgp.readMessage({ binaryMessage: new Uint8Array(head.keyPackets) });
  let sessionKey: openpgp.DecryptedSessionKey | undefined;
  try {
    [sessionKey] = await openpgp.decryptSessionKeys({ message, ...secrets });
  } catch (error: unknown) {
    input.destroy();
    throw new SeipdError(`cannot decrypt the session key: ${(error as Error).message}`);
  }
  const cipher = sessionKey?.algorithm ? OPENPGP_CFB[sessionKey.algorithm] : undefined;
  if (!sessionKey || !cipher) {
    return {
      plaintext: undefined,
      replay: replay(),
      shape: `a cipher Dump Bag does not write (${sessionKey?.algorithm})`,
    };
  }
  const trial = createDecipheriv(cipher, sessionKey.data, Buffer.alloc(BLOCK)).update(
    head.body.subarray(1, 1 + PREFIX + 1),
  );
  if (trial[PREFIX - 2] !== trial[PREFIX - 4] || trial[PREFIX - 1] !== trial[PREFIX - 3]) {
    input.destroy();
    throw new SeipdError(
      'the session key does not decrypt the data (its check bytes differ): a damaged dump',
    );
  }
  // A compressed or otherwise packed message is openpgp.js's to read.
  if (trial[PREFIX] !== LITERAL_HEADER) {
    return {
      plaintext: undefined,
      replay: replay(),
      shape: 'a compressed or packed message, which may expand without bound',
    };
  }

  // The version byte (1, checked above) is no ciphertext.
  const reader = new SeipdReader(createDecipheriv(cipher, sessionKey.data, Buffer.alloc(BLOCK)), {
    length: head.firstPart.length - 1,
    partial: head.firstPart.partial,
  });
  const body = head.body.subarray(1);
  const rest = Readable.from(
    (async function* () {
      // The SEIPD body as it followed its first length header and version byte.
      yield body;
      yield* chunks;
    })(),
  );
  rest.once('error', (error) => reader.destroy(error));
  return { plaintext: rest.pipe(reader) };
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
