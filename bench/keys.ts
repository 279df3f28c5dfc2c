import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { loadKeys } from '../functions/core/keys';
import { have } from './measure';

export interface BenchKeys {
  /** The armored public key the backup encrypts for. */
  readonly publicFile: string;
  readonly secretFile: string;
  readonly fingerprint: string;
  /** A GNUPGHOME holding the key pair, when gpg is installed. */
  readonly gnupgHome?: string;
}

/** A Curve25519 key pair made once under `<benchDir>/keys/<name>-{public,secret}.asc`; its public file and fingerprint. */
async function keyPair(
  benchDir: string,
  name: string,
): Promise<{ publicFile: string; secretFile: string; fingerprint: string }> {
  const dir = join(benchDir, 'keys');
  const publicFile = join(dir, `${name}-public.asc`);
  const secretFile = join(dir, `${name}-secret.asc`);
  if (!existsSync(secretFile)) {
    mkdirSync(dir, { recursive: true });
    const pair = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: `Dump Bag ${name}`, email: `${name}@dump-bag.invalid` }],
      format: 'armored',
    });
    writeFileSync(publicFile, pair.publicKey);
    writeFileSync(secretFile, pair.privateKey, { mode: 0o600 });
  }
  const [recipient] = await loadKeys(publicFile);
  if (!recipient) throw new Error(`${publicFile} holds no key`);
  return { publicFile, secretFile, fingerprint: recipient.fingerprint };
}

/** A second reader, for the rekey scenario: the one who leaves. */
export async function leaverKey(benchDir: string): Promise<{ publicFile: string; fingerprint: string }> {
  return await keyPair(benchDir, 'leaver');
}

/** The bench's own key pair, made once; imported into a keyring of its own for gpg. */
export async function benchKeys(benchDir: string): Promise<BenchKeys> {
  const { publicFile, secretFile, fingerprint } = await keyPair(benchDir, 'bench');
  let gnupgHome: string | undefined;
  if (have('gpg')) {
    gnupgHome = join(benchDir, 'gnupg');
    mkdirSync(gnupgHome, { recursive: true, mode: 0o700 });
    execFileSync('gpg', ['--homedir', gnupgHome, '--batch', '--quiet', '--import', secretFile], {
      stdio: 'ignore',
    });
  }
  return { publicFile, secretFile, fingerprint, gnupgHome };
}
