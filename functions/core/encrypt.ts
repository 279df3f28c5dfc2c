import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import type { Encryption } from './keys';

/**
 * OpenPGP settings every reader's tools understand: SEIPD v1 with MDC (GnuPG 2.2 reads it), no
 * compression (pg_dump already compressed the archive).
 */
const CONFIG: openpgp.PartialConfig = {
  aeadProtect: false,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
};

/** Wraps a byte stream in an OpenPGP message for the recipients (or the passphrase); `none` passes it through. */
export async function encryptStream(input: Readable, encryption: Encryption): Promise<Readable> {
  if (encryption.mode === 'none') return input;
  const message = await openpgp.createMessage({
    binary: Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>,
    format: 'binary',
  });
  const encrypted = await openpgp.encrypt({
    message,
    format: 'binary',
    config: CONFIG,
    ...(encryption.mode === 'gpg'
      ? { encryptionKeys: encryption.recipients.map((r) => r.key) }
      : { passwords: [encryption.passphrase] }),
  });
  return Readable.fromWeb(encrypted as unknown as NodeWebReadableStream<Uint8Array>);
}
