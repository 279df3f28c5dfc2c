import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess } from './process';
import { gnupgHome } from './temp';

export interface GpgIdentity {
  /** A GNUPGHOME holding only this identity's secret key. */
  readonly home: string;
  readonly email: string;
  readonly fingerprint: string;
  /** The armored public key. */
  readonly publicKey: string;
}

const PARAMS = {
  rsa: ['Key-Type: RSA', 'Key-Length: 2048', 'Subkey-Type: RSA', 'Subkey-Length: 2048'],
  cv25519: ['Key-Type: EDDSA', 'Key-Curve: ed25519', 'Subkey-Type: ECDH', 'Subkey-Curve: cv25519'],
};

/** A fresh key pair made by real GnuPG, in a keyring of its own. */
export function gpgIdentity(kind: keyof typeof PARAMS, email: string): GpgIdentity {
  const home = gnupgHome();
  const params = join(home, 'params');
  writeFileSync(
    params,
    [
      ...PARAMS[kind],
      `Name-Real: ${kind} tester`,
      `Name-Email: ${email}`,
      'Expire-Date: 0',
      '%no-protection',
      '%commit',
      '',
    ].join('\n'),
  );
  const gpg = (args: string[]) =>
    execFileSync('gpg', ['--homedir', home, '--batch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  gpg(['--gen-key', params]);
  const colons = gpg(['--with-colons', '--list-keys', email]).toString();
  const fingerprint = /^fpr:::::::::([0-9A-F]+):/m.exec(colons)?.[1];
  if (!fingerprint) throw new Error(`no fingerprint in gpg output for ${email}`);
  return { home, email, fingerprint, publicKey: gpg(['--armor', '--export', fingerprint]).toString() };
}

/** Decrypts bytes with `gpg --decrypt` in a keyring; rejects with gpg's stderr on failure. */
export async function gpgDecrypt(home: string, data: Buffer, extra: string[] = []): Promise<Buffer> {
  const { code, stdout, stderr } = await runProcess(
    'gpg',
    ['--homedir', home, '--batch', '--yes', ...extra, '--decrypt'],
    {},
    data,
  );
  if (code !== 0) throw new Error(`gpg exited ${code}: ${stderr}`);
  return stdout;
}
