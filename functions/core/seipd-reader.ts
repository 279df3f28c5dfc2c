/**
 * Opens OpenPGP messages of the shape encrypt.ts writes (RFC 9580 §5.1, §5.3, §5.13.1), with every
 * length bounded: the head parser and the session-key opener. The bulk, the SEIPD body, is
 * seipd-body.ts's, which loads without openpgp.js.
 */
import { createDecipheriv } from 'node:crypto';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { chunksOf } from './chunks';
import { OPENPGP_CFB } from './encrypt';
import {
  BLOCK,
  LITERAL_HEADER,
  lengthSize,
  PREFIX,
  readLength,
  SeipdError,
  type SeipdKey,
  seipdBodyReader,
  TAG_SEIPD,
} from './seipd-body';

export { SeipdError } from './seipd-body';

const TAG_PKESK = 1;
const TAG_SKESK = 3;

export interface Secrets {
  readonly decryptionKeys?: openpgp.PrivateKey[];
  readonly passwords?: string[];
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
  /** What reads the SEIPD body after its version byte: by default in this thread. */
  readBody: (seipd: SeipdKey, body: Readable) => Readable = readBodyHere,
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
      shape: otherCipher(sessionKey?.algorithm, secrets),
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

  const seipd: SeipdKey = {
    cipher,
    key: sessionKey.data,
    // The version byte (1, checked above) is no ciphertext.
    firstPart: { length: head.firstPart.length - 1, partial: head.firstPart.partial },
  };
  const body = head.body.subarray(1);
  const rest = Readable.from(
    (async function* () {
      // The SEIPD body as it followed its first length header and version byte.
      yield body;
      yield* chunks;
    })(),
  );
  return { plaintext: readBody(seipd, rest) };
}

/** The shape named for a session key of a cipher Dump Bag does not write. */
function otherCipher(algorithm: string | undefined | null, secrets: Secrets): string {
  // A wrong passphrase gives a random algorithm, now and then one that openpgp.js takes.
  const orPassphrase = secrets.passwords ? ', or a wrong passphrase' : '';
  return `a cipher Dump Bag does not write (${algorithm})${orPassphrase}`;
}

/** The SEIPD body decrypted in this thread. */
function readBodyHere(seipd: SeipdKey, body: Readable): Readable {
  const reader = seipdBodyReader(seipd);
  body.once('error', (error) => reader.destroy(error));
  // A reader given up on (pg_restore failed) stops reading its input, the work file, too.
  reader.once('close', () => body.destroy());
  return body.pipe(reader);
}
