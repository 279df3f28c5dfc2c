import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../functions/core/backup';
import type { KeyExpiryWarning } from '../functions/core/key-expiry';
import { checkKeyExpiry } from '../functions/core/key-expiry';
import { loadEncryption } from '../functions/core/keys';
import {
  backupTarget,
  bagEnv,
  type RunningBag,
  runCli,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import { allKeys, createDatabase, freshBucket, s3Client } from './support/env';
import { GpgRing } from './support/gpg-keys';

const suffix = uniqueSuffix();
const DATABASE = `expiry ${suffix}`;

describe('keys about to expire', () => {
  const ring = new GpgRing();
  let soon: string;
  let soonSub: string;
  let lasting: string;
  let expired: string;
  let expiredSub: string;
  const file = (name: string, ...fingerprints: string[]) => {
    const path = join(tempDir('dump-bag-expiry-'), `${name}.asc`);
    writeFileSync(path, fingerprints.map((f) => ring.publicKey(f)).join('\n'));
    return path;
  };

  beforeAll(async () => {
    soon = ring.key('soon@example.com', { expire: '10d' });
    soonSub = ring.keyWithExpiringSubkey('soonsub@example.com', '10d');
    lasting = ring.key('lasting@example.com');
    expired = ring.key('old@example.com', { expire: '1d', at: '20250101T000000' });
    expiredSub = ring.keyWithExpiringSubkey('oldsub@example.com', '1d', '20250101T000000');
    await createDatabase(DATABASE, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1);');
  });

  it('a key or encryption subkey expiring in 10 days warns, naming it and the renewal command', async () => {
    const encryption = await loadEncryption({
      encryption: 'gpg',
      publicKeys: file('mixed', soon, soonSub, lasting),
    });
    const check = await checkKeyExpiry(encryption, 30);
    expect(check.warnings.map((w) => [w.fingerprint, w.part])).toEqual([
      [soon, 'primary key'],
      [soonSub, 'encryption subkey'],
    ]);
    expect(check.daysLeft).toBeGreaterThanOrEqual(9);
    expect(check.daysLeft).toBeLessThanOrEqual(10);
    expect(check.warnings[0]?.message).toMatch(
      new RegExp(`primary key of soon <soon@example.com> \\(${soon}\\) expires on .* \\(in (9|10) days\\)`),
    );
    expect(check.warnings[0]?.message).toContain(`gpg --quick-set-expire ${soon} 1y\``);
    expect(check.warnings[1]?.message).toContain(`gpg --quick-set-expire ${soonSub} 1y '*'`);
    // Outside the window there is nothing to say.
    expect((await checkKeyExpiry(encryption, 5)).warnings).toEqual([]);
  });

  it('backup goes on with a key expiring in 10 days, and logs and returns the warning', async () => {
    const bucket = await freshBucket();
    const logged: KeyExpiryWarning[] = [];
    const summary = await runBackup(backupTarget(bucket), {
      config: { databases: [DATABASE], exclude: [], encryption: 'gpg', publicKeys: file('soon', soon) },
      trigger: 'schedule',
      onKeyWarning: (w) => logged.push(w),
    });
    expect(summary.ok, summary.error).toBe(true);
    expect(summary.keyWarnings?.map((w) => w.fingerprint)).toEqual([soon]);
    expect(logged.map((w) => w.message)).toEqual(summary.keyWarnings?.map((w) => w.message));
    // The dump and its record (the run's globals dump lives apart, under globals/).
    expect((await allKeys(s3Client(), bucket)).filter((k) => k.startsWith('dumps/')).length).toBe(2);

    // The command line prints it on stderr.
    const cli = await runCli(['backup'], {
      ...bagEnv(bucket),
      DUMP_BAG_DATABASES: DATABASE,
      DUMP_BAG_PUBLIC_KEYS: file('soon-cli', soon),
      DUMP_BAG_KEY_EXPIRY_WARNING_DAYS: '20',
    });
    expect(cli.code, cli.stderr.toString()).toBe(0);
    expect(cli.stderr.toString()).toMatch(
      new RegExp(
        `^dump-bag backup: warning: the primary key of soon <soon@example.com> \\(${soon}\\) expires`,
        'm',
      ),
    );
  });

  it('an expired key or encryption subkey stops the run before any byte, saying how to renew it', async () => {
    const bucket = await freshBucket();
    for (const [fingerprint, part, command] of [
      [expired, 'primary key', `gpg --quick-set-expire ${expired} 1y\``],
      [expiredSub, 'encryption subkey', `gpg --quick-set-expire ${expiredSub} 1y '*'`],
    ] as const) {
      const summary = await runBackup(backupTarget(bucket), {
        config: {
          databases: [DATABASE],
          exclude: [],
          encryption: 'gpg',
          publicKeys: file('expired', lasting, fingerprint),
        },
        trigger: 'schedule',
      });
      expect(summary.ok).toBe(false);
      expect(summary.results).toEqual([]);
      expect(summary.error).toMatch(
        new RegExp(`\\(${fingerprint}\\) cannot encrypt: its ${part} expired on 2025-01-02`),
      );
      expect(summary.error).toContain(command);
      expect(summary.error).toContain(`re-export the public key (\`gpg --armor --export ${fingerprint}\`)`);
    }
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  describe('dump-bag keys', () => {
    let bag: RunningBag;
    afterAll(() => bag?.close());

    it('prints the keys on stdout and each key’s expiry on stderr', async () => {
      const folder = tempDir('dump-bag-expiry-folder-');
      writeFileSync(join(folder, 'soon.asc'), ring.publicKey(soon));
      writeFileSync(join(folder, 'lasting.asc'), ring.publicKey(lasting));
      bag = await startBag(bagEnv(await freshBucket(), { DUMP_BAG_PUBLIC_KEYS: folder }));
      const result = await runCli(['keys'], { DUMP_BAG_URL: bag.url });
      expect(result.code, result.stderr.toString()).toBe(0);
      expect(result.stdout.toString()).toBe(await (await fetch(`${bag.url}/keys`)).text());
      const lines = result.stderr.toString().trim().split('\n').sort();
      expect(lines).toHaveLength(2);
      expect(lines).toContainEqual(`${lasting}  lasting <lasting@example.com>  never expires`);
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^${soon}  soon <soon@example.com>  expires \\d{4}-\\d{2}-\\d{2} \\(in (9|10) days, primary key\\)$`,
          ),
        ),
      );
    });
  });
});
