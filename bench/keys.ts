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

/** A Curve25519 key pair of the bench's own, made once; imported into a keyring of its own for gpg. */
export async function benchKeys(benchDir: string): Promise<BenchKeys> {
  const dir = join(benchDir, 'keys');
  const publicFile = join(dir, 'bench-public.asc');
  const secretFile = join(dir, 'bench-secret.asc');
  if (!existsSync(secretFile)) {
    mkdirSync(dir, { recursive: true });
    const pair = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'Dump Bag bench', email: 'bench@dump-bag.invalid' }],
      format: 'armored',
    });
    writeFileSync(publicFile, pair.publicKey);
    writeFileSync(secretFile, pair.privateKey, { mode: 0o600 });
  }
  const [recipient] = await loadKeys(publicFile);
  if (!recipient) throw new Error(`${publicFile} holds no key`);
  let gnupgHome: string | undefined;
  if (have('gpg')) {
    gnupgHome = join(benchDir, 'gnupg');
    mkdirSync(gnupgHome, { recursive: true, mode: 0o700 });
    execFileSync('gpg', ['--homedir', gnupgHome, '--batch', '--quiet', '--import', secretFile], {
      stdio: 'ignore',
    });
  }
  return { publicFile, secretFile, fingerprint: recipient.fingerprint, gnupgHome };
}
