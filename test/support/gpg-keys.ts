import { execFileSync } from 'node:child_process';
import { gnupgHome } from './temp';

/** A keyring of its own in which real GnuPG makes keys on cue: expiring, expired, with subkeys. */
export class GpgRing {
  /** Removed, its daemons stopped, when the test file ends (test/support/temp.ts). */
  readonly home = gnupgHome('dump-bag-gpgring-');

  /** Runs gpg in this ring; `at` fakes the clock (e.g. `20250101T000000`) to make keys in the past. */
  run(args: string[], at?: string): Buffer {
    const clock = at ? ['--faked-system-time', `${at}!`] : [];
    return execFileSync(
      'gpg',
      [
        '--homedir',
        this.home,
        '--batch',
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        '',
        ...clock,
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  }

  fingerprint(email: string): string {
    const colons = this.run(['--with-colons', '--list-keys', email]).toString();
    const fingerprint = /^fpr:::::::::([0-9A-F]+):/m.exec(colons)?.[1];
    if (!fingerprint) throw new Error(`no fingerprint in gpg output for ${email}`);
    return fingerprint;
  }

  /** An Ed25519 key with a Curve25519 encryption subkey; `expire` like gpg's (`10d`, `never`). */
  key(email: string, options: { expire?: string; at?: string } = {}): string {
    this.run(
      [
        '--quick-gen-key',
        `${email.split('@')[0]} <${email}>`,
        'future-default',
        'default',
        options.expire ?? 'never',
      ],
      options.at,
    );
    return this.fingerprint(email);
  }

  /** A primary key that never expires whose only encryption subkey expires after `expire`. */
  keyWithExpiringSubkey(email: string, expire: string, at?: string): string {
    this.run(['--quick-gen-key', `${email.split('@')[0]} <${email}>`, 'ed25519', 'cert,sign', 'never'], at);
    const fingerprint = this.fingerprint(email);
    this.run(['--quick-add-key', fingerprint, 'cv25519', 'encr', expire], at);
    return fingerprint;
  }

  publicKey(fingerprint: string): string {
    return this.run(['--armor', '--export', fingerprint]).toString();
  }

  secretKey(fingerprint: string, armor = false): Buffer {
    return this.run([...(armor ? ['--armor'] : []), '--export-secret-keys', fingerprint]);
  }
}
