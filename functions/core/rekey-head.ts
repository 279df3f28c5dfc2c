import { createDecipheriv } from 'node:crypto';
import * as openpgp from 'openpgp';
import { OPENPGP_CFB } from './encrypt';
import type { Encryption } from './encryption';
import { DumpBagError, errorMessage } from './errors';
import { BLOCK } from './seipd-body';
import { HeadReader, MAX_KEY_PACKETS_BYTES, type Secrets } from './seipd-reader';

/** A dump's head cannot be re-keyed: another shape, a key that does not open it, or damaged bytes. */
export class RekeyHeadError extends DumpBagError {
  override name = 'RekeyHeadError';
}

/** Bytes read from the start of an object to find its head: every key packet allowed, then the SEIPD header. */
export const HEAD_WINDOW = MAX_KEY_PACKETS_BYTES + 64;
/** The SEIPD version byte, the 18-byte prefix and one byte more (RFC 4880 §5.13). */
const PREFIX_CHECK = 1 + BLOCK + 2 + 1;

export interface OldHead {
  /** The session key packets, the bytes the new head replaces; the SEIPD packet starts right after them. */
  readonly keyPackets: Buffer;
}

/** Splits the session key packets off the first bytes of a stored dump (the bounded reader of `get`). */
export function readOldHead(window: Buffer, objectBytes: number): OldHead {
  let head: ReturnType<HeadReader['add']>;
  try {
    head = new HeadReader().add(window);
  } catch (error: unknown) {
    throw new RekeyHeadError(errorMessage(error));
  }
  if (head === 'more' || head === undefined || head.body[0] !== 1) {
    const why =
      head === 'more' && window.length >= objectBytes ? 'ends inside its head' : 'is shaped otherwise';
    throw new RekeyHeadError(
      `the object ${why}: not session key packets then one SEIPD v1 packet, as Dump Bag writes (rekey only re-wraps those)`,
    );
  }
  return { keyPackets: head.keyPackets };
}

/**
 * The session key under the old head, checked against the SEIPD prefix's repeated bytes (RFC 4880
 * §5.13), so a head that opens but does not belong to the body is refused before anything is written.
 */
export async function openSessionKey(
  head: OldHead,
  seipdStart: Buffer,
  secrets: Secrets,
): Promise<openpgp.DecryptedSessionKey> {
  let sessionKey: openpgp.DecryptedSessionKey | undefined;
  try {
    const message = await openpgp.readMessage({ binaryMessage: new Uint8Array(head.keyPackets) });
    [sessionKey] = await openpgp.decryptSessionKeys({ message, ...secrets });
  } catch (error: unknown) {
    throw new RekeyHeadError(`cannot decrypt the session key with your key: ${errorMessage(error)}`);
  }
  const cipher = sessionKey?.algorithm ? OPENPGP_CFB[sessionKey.algorithm] : undefined;
  if (!sessionKey || !cipher)
    throw new RekeyHeadError(`a cipher Dump Bag does not write (${sessionKey?.algorithm})`);
  // seipdStart: tag, length header, version, prefix; the length header is 1 to 5 bytes.
  const first = seipdStart[1] ?? 0;
  const headerBytes = 1 + (first < 192 ? 1 : first < 224 ? 2 : first < 255 ? 1 : 5);
  const prefix = seipdStart.subarray(headerBytes + 1, headerBytes + PREFIX_CHECK);
  const trial = createDecipheriv(cipher, sessionKey.data, Buffer.alloc(BLOCK)).update(prefix);
  if (
    prefix.length < PREFIX_CHECK - 1 ||
    trial[BLOCK] !== trial[BLOCK - 2] ||
    trial[BLOCK + 1] !== trial[BLOCK - 1]
  ) {
    throw new RekeyHeadError(
      'the session key does not decrypt the data (its check bytes differ): a damaged dump',
    );
  }
  return sessionKey;
}

/** New session key packets for today's recipients (PKESK) or passphrase (SKESK), as encrypt.ts writes them. */
export async function newKeyPackets(
  sessionKey: openpgp.DecryptedSessionKey,
  encryption: Exclude<Encryption, { mode: 'none' }>,
): Promise<Buffer> {
  const packets = await openpgp.encryptSessionKey({
    data: sessionKey.data,
    algorithm: sessionKey.algorithm as openpgp.enums.symmetricNames,
    format: 'binary',
    config: { aeadProtect: false },
    ...(encryption.mode === 'gpg'
      ? { encryptionKeys: encryption.recipients.map((r) => r.key) }
      : { passwords: [encryption.passphrase] }),
  });
  return Buffer.from(packets);
}
