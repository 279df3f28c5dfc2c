import type * as openpgp from 'openpgp';
import type { Encryption, RecipientKey } from './encryption';

const DAY_MS = 86_400_000;
/** Public-key algorithms that encrypt (RFC 9580 §9.1), as openpgp.js names them. */
const ENCRYPTING = new Set(['rsaEncryptSign', 'rsaEncrypt', 'elgamal', 'ecdh', 'x25519', 'x448']);

export type KeyPart = 'primary key' | 'encryption subkey';

export interface KeyExpiry {
  readonly fingerprint: string;
  readonly userId: string;
  /** When the key stops encrypting: the earlier of the primary key's and the encryption subkey's expiry; null never. */
  readonly expiresAt: Date | null;
  /** Which part expires first. */
  readonly part: KeyPart;
}

export interface KeyExpiryWarning extends KeyExpiry {
  readonly expiresAt: Date;
  /** Whole days left, 0 on the last day. */
  readonly daysLeft: number;
  /** One line for logs, the command's output and the status page. */
  readonly message: string;
}

function asDate(value: Date | number | null): Date | null {
  return value instanceof Date ? value : null;
}

/** The command that renews the part, then the re-export the bag needs. */
export function renewAdvice(fingerprint: string, part: KeyPart): string {
  const renew =
    part === 'primary key'
      ? `gpg --quick-set-expire ${fingerprint} 1y`
      : `gpg --quick-set-expire ${fingerprint} 1y '*'`;
  return `renew it with \`${renew}\`, then re-export the public key (\`gpg --armor --export ${fingerprint}\`) into DUMP_BAG_PUBLIC_KEYS`;
}

function label(recipient: { userId: string; fingerprint: string }): string {
  return `${recipient.userId || 'an unnamed user'} (${recipient.fingerprint})`;
}

/** The latest expiry among subkeys that encrypt, checked without the current time so an expired one still has a date. */
async function encryptionSubkeyExpiry(key: openpgp.PublicKey): Promise<Date | null | undefined> {
  let latest: Date | null | undefined;
  for (const subkey of key.subkeys) {
    if (!ENCRYPTING.has(subkey.getAlgorithmInfo().algorithm)) continue;
    const expiry = await subkey.getExpirationTime(subkey.getCreationTime()).catch(() => null);
    if (expiry === null) continue;
    const date = asDate(expiry);
    if (date === null) return null;
    if (latest === undefined || (latest !== null && date > latest)) latest = date;
  }
  return latest;
}

/** When a recipient's key stops encrypting, and which part expires first. */
export async function keyExpiry(recipient: RecipientKey, now = new Date()): Promise<KeyExpiry> {
  const { key } = recipient;
  const primary = asDate(await key.getExpirationTime());
  let subkey: Date | null | undefined;
  try {
    const used = await key.getEncryptionKey(undefined, now);
    subkey = used === key ? undefined : asDate(await (used as openpgp.Subkey).getExpirationTime(now));
  } catch {
    // No usable subkey now: the one that expired last tells when it stopped.
    subkey = await encryptionSubkeyExpiry(key);
  }
  if (subkey && (!primary || subkey < primary))
    return { ...describe(recipient), expiresAt: subkey, part: 'encryption subkey' };
  return { ...describe(recipient), expiresAt: primary, part: 'primary key' };
}

function describe(recipient: RecipientKey): { fingerprint: string; userId: string } {
  return { fingerprint: recipient.fingerprint, userId: recipient.userId };
}

/** The fail-closed message for a key that has expired, or undefined when expiry is not why it cannot encrypt. */
export async function expiredMessage(recipient: RecipientKey, now = new Date()): Promise<string | undefined> {
  const expiry = await keyExpiry(recipient, now);
  if (!expiry.expiresAt || expiry.expiresAt > now) return undefined;
  return `the key of ${label(recipient)} cannot encrypt: its ${expiry.part} expired on ${expiry.expiresAt.toISOString().slice(0, 10)}; ${renewAdvice(recipient.fingerprint, expiry.part)}`;
}

export interface ExpiryCheck {
  /** Recipients whose key stops encrypting within the warning window. */
  readonly warnings: KeyExpiryWarning[];
  /** Days until the first recipient's key expires; undefined when none expires (or no keys are used). */
  readonly daysLeft?: number;
}

/** Recipients whose key, or encryption subkey, expires within `warningDays`: each with a message saying how to renew. */
export async function checkKeyExpiry(
  encryption: Encryption,
  warningDays: number,
  now = new Date(),
): Promise<ExpiryCheck> {
  if (encryption.mode !== 'gpg') return { warnings: [] };
  const warnings: KeyExpiryWarning[] = [];
  let soonest: number | undefined;
  for (const recipient of encryption.recipients) {
    const expiry = await keyExpiry(recipient, now);
    if (!expiry.expiresAt) continue;
    const daysLeft = Math.max(0, Math.floor((expiry.expiresAt.getTime() - now.getTime()) / DAY_MS));
    soonest = Math.min(soonest ?? daysLeft, daysLeft);
    if (daysLeft >= warningDays) continue;
    warnings.push({
      ...expiry,
      expiresAt: expiry.expiresAt,
      daysLeft,
      message: `the ${expiry.part} of ${label(recipient)} expires on ${expiry.expiresAt.toISOString().slice(0, 10)} (in ${daysLeft} day${daysLeft === 1 ? '' : 's'}); backups fail from then on: ${renewAdvice(recipient.fingerprint, expiry.part)}`,
    });
  }
  return { warnings, daysLeft: soonest };
}

/** One line per key for `dump-bag keys`: fingerprint, user, and when it stops encrypting. */
export function expiryLine(expiry: KeyExpiry, now = new Date()): string {
  // User IDs come from the bag: no control character reaches the terminal.
  const who = `${expiry.fingerprint}  ${expiry.userId.replace(/\p{Cc}/gu, '?')}`;
  if (!expiry.expiresAt) return `${who}  never expires`;
  const day = expiry.expiresAt.toISOString().slice(0, 10);
  const left = Math.floor((expiry.expiresAt.getTime() - now.getTime()) / DAY_MS);
  return left < 0
    ? `${who}  EXPIRED on ${day} (${expiry.part}): ${renewAdvice(expiry.fingerprint, expiry.part)}`
    : `${who}  expires ${day} (in ${left} day${left === 1 ? '' : 's'}, ${expiry.part})`;
}
