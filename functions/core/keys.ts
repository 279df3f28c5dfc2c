// Over 300 lines: every key source (folder, file, URL) and the recipient rules share one trust model, read in one place.
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import type { DumpBagConfig } from './config';
import { parseList } from './config';
import type { Encryption, RecipientKey } from './encryption';
import { ConfigError, errorMessage, KeyError } from './errors';
import { expiredMessage } from './key-expiry';
import { fetchText, MAX_KEYS_BYTES, MAX_RECIPIENTS_BYTES } from './key-fetch';
import { holdsSecretKey, secretKeyMessage } from './secret-key';

/** The shapes of loaded keys live in encryption.ts; encrypt.ts still reads them from here. */
export { fetchText } from './key-fetch';

const PUBLIC_BLOCK = /-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g;
const KEY_FILE = /\.(asc|pub|key|gpg|pgp)$/i;

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** Parses every public key in a text of armored blocks (with `#` comment lines between them) or binary keys. */
export async function parseKeys(content: Buffer | string, origin: string): Promise<openpgp.PublicKey[]> {
  const text = typeof content === 'string' ? content : content.toString('utf8');
  if (holdsSecretKey(typeof content === 'string' ? Buffer.from(content) : content)) {
    throw new KeyError(secretKeyMessage(origin));
  }
  const blocks = text.match(PUBLIC_BLOCK);
  const keys: openpgp.Key[] = [];
  try {
    if (blocks) {
      for (const armoredKeys of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys })));
    } else if (typeof content !== 'string' && ((content[0] ?? 0) & 0x80) !== 0) {
      // Binary OpenPGP packets always start with a tag byte whose high bit is set; text never does.
      keys.push(...(await openpgp.readKeys({ binaryKeys: new Uint8Array(content) })));
    }
  } catch (error) {
    throw new KeyError(`${origin} holds a public key that cannot be read: ${errorMessage(error)}`);
  }
  if (keys.length === 0) throw new KeyError(`${origin} holds no public key`);
  if (keys.some((key) => key.isPrivate())) throw new KeyError(secretKeyMessage(origin));
  return keys as openpgp.PublicKey[];
}

/** Reads at most `limit` bytes of a file: enough to tell a key file, never a whole stray backup. */
async function readHead(file: string, limit: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(limit + 1);
    const { bytesRead } = await handle.read(buffer, 0, limit + 1, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** A key file's bytes, bounded: a key file larger than MAX_KEYS_BYTES is refused, not read whole. */
async function readKeyFile(file: string): Promise<Buffer> {
  const bytes = await readHead(file, MAX_KEYS_BYTES);
  if (bytes.length > MAX_KEYS_BYTES) {
    throw new KeyError(
      `DUMP_BAG_PUBLIC_KEYS: ${file} is larger than ${MAX_KEYS_BYTES} bytes: is it a key file?`,
    );
  }
  return bytes;
}

async function readSource(source: string): Promise<openpgp.PublicKey[]> {
  if (isUrl(source)) return parseKeys(await fetchText(source, 'public keys (DUMP_BAG_PUBLIC_KEYS)'), source);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(source);
  } catch {
    throw new KeyError(`DUMP_BAG_PUBLIC_KEYS: ${source} does not exist`);
  }
  if (!info.isDirectory()) {
    try {
      return await parseKeys(await readKeyFile(source), source);
    } catch (error) {
      if (error instanceof KeyError) throw error;
      throw new KeyError(`DUMP_BAG_PUBLIC_KEYS: cannot read ${source}: ${errorMessage(error)}`);
    }
  }
  const entries = (await readdir(source, { withFileTypes: true })).filter((e) => e.isFile());
  // Every file is looked at, not only key files: a secret key left in the folder is exposed either way.
  for (const entry of entries) {
    const file = join(source, entry.name);
    if (holdsSecretKey(await readHead(file, MAX_KEYS_BYTES))) throw new KeyError(secretKeyMessage(file));
  }
  const files = entries
    .map((e) => e.name)
    .filter((name) => !name.startsWith('.') && KEY_FILE.test(name))
    .sort();
  if (files.length === 0)
    throw new KeyError(`DUMP_BAG_PUBLIC_KEYS: the folder ${source} holds no .asc key file`);
  const keys: openpgp.PublicKey[] = [];
  for (const name of files)
    keys.push(...(await parseKeys(await readKeyFile(join(source, name)), join(source, name))));
  return keys;
}

async function describe(key: openpgp.PublicKey): Promise<RecipientKey> {
  let userId = key.getUserIDs()[0] ?? '';
  try {
    const primary = await key.getPrimaryUser();
    userId = primary.user.userID?.userID ?? userId;
  } catch {
    // An expired or revoked key has no valid primary user; the first user id still names it.
  }
  return { fingerprint: key.getFingerprint().toUpperCase(), userId, key };
}

/** Every public key of a file, folder or `/keys` URL, each once, in the order given. */
export async function loadKeys(source: string): Promise<RecipientKey[]> {
  return describeKeys(await readSource(source));
}

/** Every public key of a `/keys` document already read (the client's `keys`), each once. */
export async function keysFromText(text: string, origin: string): Promise<RecipientKey[]> {
  return describeKeys(await parseKeys(text, origin));
}

async function describeKeys(keys: readonly openpgp.PublicKey[]): Promise<RecipientKey[]> {
  const seen = new Set<string>();
  const out: RecipientKey[] = [];
  for (const key of keys) {
    const info = await describe(key);
    if (seen.has(info.fingerprint)) continue;
    seen.add(info.fingerprint);
    out.push(info);
  }
  return out;
}

/**
 * E-mail addresses of the user IDs the key's owner signed: anyone can append an unsigned user ID
 * to someone else's key, and it must not make that address select the key.
 */
async function emailsOf(key: openpgp.PublicKey): Promise<string[]> {
  const emails: string[] = [];
  for (const user of key.users) {
    const email = user.userID?.email?.toLowerCase();
    if (!email) continue;
    if (
      await user.verify().then(
        () => true,
        () => false,
      )
    )
      emails.push(email);
  }
  return emails;
}

/** A full fingerprint (v4: 40 hex digits, v6: 64), as recipients taken from a URL must be. */
function isFullFingerprint(value: string): boolean {
  const hex = normalizeFingerprint(value);
  return hex !== undefined && hex.length !== 16;
}

function normalizeFingerprint(value: string): string | undefined {
  const hex = value.replace(/\s+/g, '').replace(/^0x/i, '').toUpperCase();
  return /^([0-9A-F]{16}|[0-9A-F]{40}|[0-9A-F]{64})$/.test(hex) ? hex : undefined;
}

/** Throws a KeyError unless the key can encrypt now: not expired, not revoked, with an encryption subkey. */
export async function assertUsable(recipient: RecipientKey): Promise<void> {
  try {
    await recipient.key.getEncryptionKey();
  } catch (error) {
    const expired = await expiredMessage(recipient).catch(() => undefined);
    if (expired) throw new KeyError(expired);
    throw new KeyError(
      `the key of ${recipient.userId || 'an unnamed user'} (${recipient.fingerprint}) cannot encrypt: ${errorMessage(error)}`,
    );
  }
}

/** The keys a recipient entry names: a fingerprint, a long key id (of the key or a subkey) or an e-mail. */
async function keysMatching(keys: readonly RecipientKey[], entry: string): Promise<RecipientKey[]> {
  const fingerprint = normalizeFingerprint(entry);
  if (fingerprint) {
    return keys.filter((k) =>
      fingerprint.length === 16
        ? [k.key, ...k.key.subkeys].some((p) => p.getKeyID().toHex().toUpperCase() === fingerprint)
        : k.fingerprint === fingerprint,
    );
  }
  if (!entry.includes('@')) {
    throw new KeyError(`recipient "${entry}" is neither a fingerprint nor an e-mail address`);
  }
  const email = entry.replace(/^<|>$/g, '').toLowerCase();
  const matches: RecipientKey[] = [];
  for (const k of keys) if ((await emailsOf(k.key)).includes(email)) matches.push(k);
  return matches;
}

/**
 * Chooses the recipients among the keys: fingerprints (or long key ids) and e-mail addresses;
 * none given means every key. Every recipient must match a key that can encrypt.
 */
export async function selectRecipients(
  keys: readonly RecipientKey[],
  wanted: readonly string[],
): Promise<RecipientKey[]> {
  const chosen: RecipientKey[] = [];
  const add = (key: RecipientKey) => {
    if (!chosen.includes(key)) chosen.push(key);
  };
  if (wanted.length === 0) keys.forEach(add);
  for (const entry of wanted) {
    const matches = await keysMatching(keys, entry);
    if (matches.length === 0)
      throw new KeyError(`recipient ${entry} has no public key among the configured keys`);
    if (matches.length > 1) {
      throw new KeyError(
        `recipient ${entry} matches several keys (${matches.map((m) => m.fingerprint).join(', ')}): name one by fingerprint`,
      );
    }
    add(matches[0] as RecipientKey);
  }
  for (const recipient of chosen) await assertUsable(recipient);
  return chosen;
}

/** The recipient list of DUMP_BAG_RECIPIENTS: a comma list, or another bag's `/recipients` URL. */
export async function readRecipientList(spec: string | undefined): Promise<string[]> {
  if (!spec) return [];
  if (!isUrl(spec)) return parseList(spec);
  const list = parseList(await fetchText(spec, 'recipients (DUMP_BAG_RECIPIENTS)', MAX_RECIPIENTS_BYTES));
  if (list.length === 0) throw new KeyError(`DUMP_BAG_RECIPIENTS: ${spec} lists no recipient`);
  const loose = list.find((entry) => !isFullFingerprint(entry));
  if (loose !== undefined) {
    throw new KeyError(
      `DUMP_BAG_RECIPIENTS: ${spec} lists ${JSON.stringify(loose.slice(0, 80))}, not a full fingerprint; recipients taken from a URL are pinned by fingerprint only`,
    );
  }
  return list;
}

/** Throws unless keys from a URL come with recipients pinned by full fingerprint (checked before any request). */
export function assertPinned(publicKeys: string, recipients: string | undefined): void {
  if (isUrl(publicKeys)) {
    if (!recipients) {
      throw new KeyError(
        `DUMP_BAG_PUBLIC_KEYS is a URL, so DUMP_BAG_RECIPIENTS must pin the recipients: set it to their full fingerprints (comma-separated) or to the bag's /recipients URL`,
      );
    }
    const loose = isUrl(recipients) ? undefined : parseList(recipients).find((e) => !isFullFingerprint(e));
    if (loose !== undefined) {
      throw new KeyError(
        `DUMP_BAG_RECIPIENTS: ${JSON.stringify(loose)} is not a full fingerprint; with keys from a URL, name each recipient by its fingerprint (gpg --fingerprint)`,
      );
    }
  }
}

/**
 * The recipients among the keys. Keys from a URL must be pinned: DUMP_BAG_RECIPIENTS set, as full
 * fingerprints or a `/recipients` URL of full fingerprints, so a swapped `/keys` answer adds nobody.
 */
export async function pinnedRecipients(
  keys: readonly RecipientKey[],
  publicKeys: string,
  recipients: string | undefined,
): Promise<RecipientKey[]> {
  assertPinned(publicKeys, recipients);
  return selectRecipients(keys, await readRecipientList(recipients));
}

/**
 * Everything encryption needs, read and checked before any byte is uploaded: it fails closed on
 * missing, unreadable, expired or revoked keys and on recipients without a key.
 */
export async function loadEncryption(
  config: Pick<DumpBagConfig, 'encryption' | 'publicKeys' | 'recipients' | 'passphraseFile'>,
): Promise<Encryption> {
  switch (config.encryption) {
    case 'none':
      return { mode: 'none' };
    case 'passphrase': {
      if (!config.passphraseFile) throw new ConfigError('DUMP_BAG_PASSPHRASE_FILE is not set');
      let passphrase: string;
      try {
        passphrase = (await readFile(config.passphraseFile, 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        throw new KeyError(
          `DUMP_BAG_PASSPHRASE_FILE: cannot read ${config.passphraseFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
      if (passphrase.length === 0)
        throw new KeyError(`DUMP_BAG_PASSPHRASE_FILE: ${config.passphraseFile} is empty`);
      return { mode: 'passphrase', passphrase };
    }
    case 'gpg': {
      if (!config.publicKeys) throw new ConfigError('DUMP_BAG_PUBLIC_KEYS is not set');
      assertPinned(config.publicKeys, config.recipients);
      const keys = await loadKeys(config.publicKeys);
      const recipients = await pinnedRecipients(keys, config.publicKeys, config.recipients);
      return { mode: 'gpg', recipients };
    }
  }
}

/** The `/keys` document: each armored key preceded by `# <user id> <fingerprint>`; `gpg --import` reads it whole. */
export function keysDocument(keys: readonly RecipientKey[]): string {
  return keys
    .map((k) => `# ${k.userId.replace(/[\r\n]+/g, ' ')} ${k.fingerprint}\n${k.key.armor().trim()}\n`)
    .join('\n');
}

/** The `/recipients` document: fingerprints, comma-separated, as `gpg --recipient` takes them. */
export function recipientsList(keys: readonly RecipientKey[]): string {
  return keys.map((k) => k.fingerprint).join(',');
}
