import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import type { DumpBagConfig } from './config';
import { parseList } from './config';
import { ConfigError, errorMessage, KeyError } from './errors';

const PUBLIC_BLOCK = /-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g;
const KEY_FILE = /\.(asc|pub|key|gpg|pgp)$/i;
const FETCH_TIMEOUT_MS = 15_000;

export interface RecipientKey {
  /** Upper-case hex fingerprint of the primary key. */
  readonly fingerprint: string;
  /** The primary user id, e.g. `Ada Lovelace <ada@example.com>`. */
  readonly userId: string;
  readonly key: openpgp.PublicKey;
}

export type Encryption =
  | { readonly mode: 'gpg'; readonly recipients: readonly RecipientKey[] }
  | { readonly mode: 'passphrase'; readonly passphrase: string }
  | { readonly mode: 'none' };

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** Reads a URL as text; URL sources are read at every run so a central bag's changes apply at once. */
export async function fetchText(url: string, what: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'follow' });
  } catch (error) {
    throw new KeyError(`cannot fetch ${what} from ${url}: ${errorMessage(error)}`);
  }
  if (!response.ok) throw new KeyError(`cannot fetch ${what} from ${url}: HTTP ${response.status}`);
  return response.text();
}

/** Parses every public key in a text of armored blocks (with `#` comment lines between them) or binary keys. */
export async function parseKeys(content: Buffer | string, origin: string): Promise<openpgp.PublicKey[]> {
  const text = typeof content === 'string' ? content : content.toString('utf8');
  if (text.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')) {
    throw new KeyError(
      `${origin} holds a private key: give public keys only (gpg --armor --export, not --export-secret-keys)`,
    );
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
  return keys.map((key) => (key.isPrivate() ? key.toPublic() : key) as openpgp.PublicKey);
}

async function readSource(source: string): Promise<openpgp.PublicKey[]> {
  if (isUrl(source)) return parseKeys(await fetchText(source, 'public keys'), source);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(source);
  } catch {
    throw new KeyError(`DUMP_BAG_PUBLIC_KEYS: ${source} does not exist`);
  }
  if (!info.isDirectory()) {
    try {
      return await parseKeys(await readFile(source), source);
    } catch (error) {
      if (error instanceof KeyError) throw error;
      throw new KeyError(`DUMP_BAG_PUBLIC_KEYS: cannot read ${source}: ${errorMessage(error)}`);
    }
  }
  const files = (await readdir(source)).filter((name) => !name.startsWith('.') && KEY_FILE.test(name)).sort();
  if (files.length === 0)
    throw new KeyError(`DUMP_BAG_PUBLIC_KEYS: the folder ${source} holds no .asc key file`);
  const keys: openpgp.PublicKey[] = [];
  for (const name of files)
    keys.push(...(await parseKeys(await readFile(join(source, name)), join(source, name))));
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
  const seen = new Set<string>();
  const out: RecipientKey[] = [];
  for (const key of await readSource(source)) {
    const info = await describe(key);
    if (seen.has(info.fingerprint)) continue;
    seen.add(info.fingerprint);
    out.push(info);
  }
  return out;
}

function emailsOf(key: openpgp.PublicKey): string[] {
  return key.users
    .map((user) => user.userID?.email?.toLowerCase())
    .filter((email): email is string => Boolean(email));
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
    throw new KeyError(
      `the key of ${recipient.userId || 'an unnamed user'} (${recipient.fingerprint}) cannot encrypt: ${errorMessage(error)}`,
    );
  }
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
    const fingerprint = normalizeFingerprint(entry);
    let matches: RecipientKey[];
    if (fingerprint) {
      matches = keys.filter((k) =>
        fingerprint.length === 16
          ? [k.key, ...k.key.subkeys].some((p) => p.getKeyID().toHex().toUpperCase() === fingerprint)
          : k.fingerprint === fingerprint,
      );
    } else if (entry.includes('@')) {
      const email = entry.replace(/^<|>$/g, '').toLowerCase();
      matches = keys.filter((k) => emailsOf(k.key).includes(email));
    } else {
      throw new KeyError(`recipient "${entry}" is neither a fingerprint nor an e-mail address`);
    }
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
  const list = isUrl(spec) ? parseList(await fetchText(spec, 'recipients')) : parseList(spec);
  if (isUrl(spec) && list.length === 0) throw new KeyError(`${spec} lists no recipient`);
  return list;
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
      const keys = await loadKeys(config.publicKeys);
      const recipients = await selectRecipients(keys, await readRecipientList(config.recipients));
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
