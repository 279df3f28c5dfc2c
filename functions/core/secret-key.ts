/**
 * Recognises OpenPGP secret key material in a file's bytes without parsing it, so the keys
 * construct (at synth) and the core (at every run) refuse the same files.
 */

const ARMORED_SECRET = '-----BEGIN PGP PRIVATE KEY BLOCK-----';
/** Secret-Key and Secret-Subkey packet tags (RFC 9580 §5.5.1.3, §5.5.1.4). */
const SECRET_TAGS = new Set([5, 7]);

/** The tag of a binary packet starting at `byte`, or undefined when it is no packet header (RFC 9580 §4.2). */
function packetTag(byte: number): number | undefined {
  if ((byte & 0x80) === 0) return undefined;
  return (byte & 0x40) !== 0 ? byte & 0x3f : (byte >> 2) & 0x0f;
}

/** True when the bytes hold an armored private key block or start with a binary secret key packet. */
export function holdsSecretKey(bytes: Uint8Array): boolean {
  const first = bytes[0];
  if (first !== undefined && SECRET_TAGS.has(packetTag(first) ?? -1)) return true;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(ARMORED_SECRET, 0, 'latin1');
}

/** The message that stops a run or a synth: names the file, never prints the key. */
export function secretKeyMessage(file: string): string {
  return `${file} holds a private key (secret key material): remove it from the key source and give public keys only (gpg --armor --export <fingerprint>, never --export-secret-keys); then consider that key exposed`;
}
