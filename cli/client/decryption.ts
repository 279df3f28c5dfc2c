import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import type { DumpRecord } from '../../functions/core/catalog';
import { errorMessage, KeyError } from '../../functions/core/errors';
import { canPrompt, promptHidden } from './prompt';

/** What it takes to read one dump: nothing, the secret keys it was encrypted for, or the passphrase. */
export type Decryption =
  | { readonly mode: 'none' }
  | { readonly mode: 'gpg'; readonly keys: readonly openpgp.PrivateKey[] }
  | { readonly mode: 'passphrase'; readonly passphrase: string };

export interface SecretSources {
  /** --key: an armored (or binary) secret key file; else DUMP_BAG_SECRET_KEY. */
  readonly keyFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Asks for a secret; undefined when no terminal can answer. @default a hidden prompt on a TTY */
  readonly prompt?: (question: string) => Promise<string>;
}

function describe(recipients: DumpRecord['recipients']): string {
  return recipients.map((r) => `${r.userId || 'unnamed'} (${r.fingerprint})`).join(', ') || 'nobody recorded';
}

async function secret(
  sources: SecretSources,
  envName: string,
  question: string,
  missing: string,
): Promise<string> {
  const env = sources.env ?? process.env;
  const given = env[envName];
  if (given !== undefined && given !== '') return given;
  const prompt = sources.prompt ?? (canPrompt() ? promptHidden : undefined);
  if (!prompt) throw new KeyError(missing);
  return await prompt(question);
}

async function readSecretKeys(file: string): Promise<openpgp.PrivateKey[]> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch (error: unknown) {
    throw new KeyError(
      `cannot read the secret key file ${file}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`,
    );
  }
  const text = content.toString('utf8');
  try {
    if (text.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')) {
      const blocks =
        text.match(/-----BEGIN PGP PRIVATE KEY BLOCK-----[\s\S]*?-----END PGP PRIVATE KEY BLOCK-----/g) ?? [];
      const keys: openpgp.PrivateKey[] = [];
      for (const armoredKeys of blocks) keys.push(...(await openpgp.readPrivateKeys({ armoredKeys })));
      return keys;
    }
    if (text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      throw new KeyError(
        `${file} holds a public key; decrypting needs the secret half (gpg --armor --export-secret-keys YOU > FILE)`,
      );
    }
    return await openpgp.readPrivateKeys({ binaryKeys: new Uint8Array(content) });
  } catch (error: unknown) {
    if (error instanceof KeyError) throw error;
    throw new KeyError(`${file} holds no OpenPGP secret key that can be read: ${errorMessage(error)}`);
  }
}

/** The passphrase of a passphrase dump: DUMP_BAG_PASSPHRASE_FILE, DUMP_BAG_PASSPHRASE, or asked for. */
async function passphraseDecryption(sources: SecretSources, env: NodeJS.ProcessEnv): Promise<Decryption> {
  const file = env.DUMP_BAG_PASSPHRASE_FILE?.trim();
  if (file) {
    try {
      return { mode: 'passphrase', passphrase: (await readFile(file, 'utf8')).replace(/\r?\n$/, '') };
    } catch (error: unknown) {
      throw new KeyError(
        `DUMP_BAG_PASSPHRASE_FILE: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }
  const passphrase = await secret(
    sources,
    'DUMP_BAG_PASSPHRASE',
    'Passphrase of the dump: ',
    'this dump is encrypted with a passphrase: set DUMP_BAG_PASSPHRASE_FILE (or DUMP_BAG_PASSPHRASE), or run on a terminal to be asked',
  );
  return { mode: 'passphrase', passphrase };
}

/** The secret keys in keyFile that the dump was encrypted for; none is an error naming both sides. */
async function recipientKeys(record: DumpRecord, keyFile: string): Promise<openpgp.PrivateKey[]> {
  const wanted = new Set(record.recipients.map((r) => r.fingerprint.toUpperCase()));
  const all = await readSecretKeys(keyFile);
  const mine = all.filter((k) => wanted.has(k.getFingerprint().toUpperCase()));
  if (mine.length === 0) {
    const have = all
      .map((k) => `${k.getUserIDs()[0] ?? 'unnamed'} (${k.getFingerprint().toUpperCase()})`)
      .join(', ');
    throw new KeyError(
      `the key in ${keyFile}, ${have}, cannot decrypt this dump: it is encrypted for ${describe(record.recipients)}`,
    );
  }
  return mine;
}

/** The key itself when it has no passphrase, else unlocked with DUMP_BAG_KEY_PASSPHRASE or one asked for. */
async function unlocked(
  key: openpgp.PrivateKey,
  keyFile: string,
  sources: SecretSources,
): Promise<openpgp.PrivateKey> {
  if (key.isDecrypted()) return key;
  const passphrase = await secret(
    sources,
    'DUMP_BAG_KEY_PASSPHRASE',
    `Passphrase of ${key.getUserIDs()[0] ?? key.getFingerprint()}: `,
    `the secret key in ${keyFile} is protected by a passphrase: set DUMP_BAG_KEY_PASSPHRASE, or run on a terminal to be asked`,
  );
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    throw new KeyError(`wrong passphrase for the secret key in ${keyFile}`);
  }
}

/**
 * Gets ready to decrypt one dump before a byte is downloaded: for public-key dumps the secret key
 * must be one the dump was encrypted for, and its passphrase right; for passphrase dumps, the passphrase.
 */
export async function prepareDecryption(
  record: DumpRecord,
  sources: SecretSources = {},
): Promise<Decryption> {
  const env = sources.env ?? process.env;
  if (record.encryption === 'none') return { mode: 'none' };
  if (record.encryption === 'passphrase') return await passphraseDecryption(sources, env);
  const keyFile = sources.keyFile ?? env.DUMP_BAG_SECRET_KEY?.trim();
  if (!keyFile) {
    throw new KeyError(
      `this dump is encrypted for ${describe(record.recipients)}: give your secret key file with --key FILE or DUMP_BAG_SECRET_KEY (gpg --armor --export-secret-keys YOU > FILE)`,
    );
  }
  const keys: openpgp.PrivateKey[] = [];
  // One at a time: each may ask for its passphrase on the terminal.
  for (const key of await recipientKeys(record, keyFile)) keys.push(await unlocked(key, keyFile, sources));
  return { mode: 'gpg', keys };
}
