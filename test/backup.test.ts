import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../functions/core/backup';
import { getDump, listDumps } from '../functions/core/catalog';
import type { DumpBagConfig } from '../functions/core/config';
import { parseDumpKey } from '../functions/core/naming';
import { backupTarget } from './support/bag';
import { createDatabase, freshBucket, getObjectBytes, restoreInto, s3Client, snapshot } from './support/env';
import { type GpgIdentity, gpgDecrypt, gpgIdentity } from './support/gpg';
import { gnupgHome, tempDir } from './support/temp';

/** Names PostgreSQL allows and naive code mishandles. */
const NAMES = ['rt sp ace', `rt quo'te"d`, 'rt ünïcødé ✓', 'rt sl/ash', 'rt a=b', 'rt <b>html&amp;</b>'];
const ROWS = 'SELECT id, label, amount::text, payload FROM items ORDER BY id';

function fill(name: string): string {
  const literal = `'${name.replace(/'/g, "''")}'`;
  return `CREATE TABLE items (id int PRIMARY KEY, label text, amount numeric(12,2), payload jsonb);
          INSERT INTO items SELECT i, ${literal} || ' #' || i, i * 1.5, jsonb_build_object('n', i, 'db', ${literal})
            FROM generate_series(1, 2000) i;`;
}

function config(overrides: Partial<DumpBagConfig>): BackupRequestConfig {
  return { exclude: [], encryption: 'gpg', ...overrides };
}
type BackupRequestConfig = Parameters<typeof runBackup>[1]['config'];

describe('backup round trip', () => {
  let rsa: GpgIdentity;
  let curve: GpgIdentity;
  let keyFile: string;

  beforeAll(async () => {
    rsa = gpgIdentity('rsa', 'rsa@example.com');
    curve = gpgIdentity('cv25519', 'curve@example.com');
    const dir = tempDir('dump-bag-keys-');
    keyFile = join(dir, 'team.asc');
    // The older design's format: several armored blocks, each with `#` comment lines above it.
    writeFileSync(
      keyFile,
      `# RSA tester\n# second comment line\n${rsa.publicKey}\n# Curve tester ${curve.fingerprint}\n${curve.publicKey}`,
    );
    for (const name of NAMES) await createDatabase(name, fill(name));
  });

  it('stores every database encrypted for both recipients, restorable to the same rows', async () => {
    const bucket = await freshBucket();
    const summary = await runBackup(backupTarget(bucket), {
      config: config({ databases: NAMES, publicKeys: keyFile }),
      trigger: 'schedule',
    });
    expect(summary.error).toBeUndefined();
    expect(summary.results.map((r) => [r.database, r.status, r.error])).toEqual(
      NAMES.map((n) => [n, 'ok', undefined]),
    );
    expect(summary.ok).toBe(true);

    const dumps = await listDumps(s3Client(), bucket);
    expect(dumps.map((d) => d.database).sort()).toEqual([...NAMES].sort());

    for (const [i, name] of NAMES.entries()) {
      const record = await getDump(s3Client(), bucket, name, 'latest');
      // Key layout: dumps/<db>/<db>-<YYYYMMDD-HHMMSS-mmm-hex>.pg.gpg with the name percent-encoded.
      const encoded = encodeURIComponent(name);
      expect(record.key).toMatch(new RegExp(`^dumps/${encoded.replace(/[.*+?^${}()|[\]\\%]/g, '\\$&')}/`));
      expect(record.key).toMatch(/-\d{8}-\d{6}-\d{3}-[0-9a-f]{8}\.pg\.gpg$/);
      expect(parseDumpKey(record.key)?.database).toBe(name);
      expect(record.recipients.map((r) => r.fingerprint).sort()).toEqual(
        [rsa.fingerprint, curve.fingerprint].sort(),
      );
      expect(record).toMatchObject({ trigger: 'schedule', encryption: 'gpg', compression: 'gzip:1' });
      expect(record.serverVersion).toMatch(/^15\./);
      expect(record.pgDumpVersion).toMatch(/^\d+\.\d+/);

      const stored = await getObjectBytes(s3Client(), bucket, record.key);
      expect(stored.length).toBe(record.bytes);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(record.sha256);

      // Each recipient decrypts alone, with only its own secret key; alternate gpg and openpgp.
      const byGpg = await gpgDecrypt(i % 2 === 0 ? rsa.home : curve.home, stored);
      expect(byGpg.subarray(0, 5).toString()).toBe('PGDMP');
      const restored = `restored ${i}`;
      await restoreInto(restored, byGpg);
      expect(await snapshot(restored, ROWS)).toBe(await snapshot(name, ROWS));
    }
  });

  it('each recipient can decrypt alone, by gpg and by openpgp', async () => {
    const bucket = await freshBucket();
    const name = NAMES[0] as string;
    const summary = await runBackup(backupTarget(bucket), {
      config: config({ databases: [name], publicKeys: keyFile }),
      trigger: 'manual',
    });
    expect(summary.ok).toBe(true);
    const record = await getDump(s3Client(), bucket, name, 'latest');
    expect(record.trigger).toBe('manual');
    const stored = await getObjectBytes(s3Client(), bucket, record.key);
    const fromRsa = await gpgDecrypt(rsa.home, stored);
    const fromCurve = await gpgDecrypt(curve.home, stored);
    expect(fromCurve.equals(fromRsa)).toBe(true);

    // openpgp with the Curve25519 secret key exported from GnuPG.
    const { execFileSync } = await import('node:child_process');
    const armoredSecret = execFileSync('gpg', [
      '--homedir',
      curve.home,
      '--batch',
      '--armor',
      '--export-secret-keys',
      curve.fingerprint,
    ]).toString();
    const decrypted = await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: stored }),
      decryptionKeys: await openpgp.readPrivateKey({ armoredKey: armoredSecret }),
      format: 'binary',
    });
    expect(Buffer.from(decrypted.data as Uint8Array).equals(fromRsa)).toBe(true);

    // A third keyring with neither secret key cannot read it.
    const outsider = gpgIdentity('cv25519', 'outsider@example.com');
    await expect(gpgDecrypt(outsider.home, stored)).rejects.toThrow(/No secret key|decryption failed/);
  });

  it('selects recipients by e-mail and fingerprint: only the chosen one can decrypt', async () => {
    const bucket = await freshBucket();
    const name = NAMES[1] as string;
    const summary = await runBackup(backupTarget(bucket), {
      config: config({ databases: [name], publicKeys: keyFile, recipients: 'curve@example.com' }),
      trigger: 'schedule',
    });
    expect(summary.ok).toBe(true);
    const record = await getDump(s3Client(), bucket, name, 'latest');
    expect(record.recipients.map((r) => r.fingerprint)).toEqual([curve.fingerprint]);
    const stored = await getObjectBytes(s3Client(), bucket, record.key);
    await expect(gpgDecrypt(rsa.home, stored)).rejects.toThrow();
    expect((await gpgDecrypt(curve.home, stored)).subarray(0, 5).toString()).toBe('PGDMP');
  });

  it('passphrase mode is decryptable by gpg with the passphrase', async () => {
    const bucket = await freshBucket();
    const dir = tempDir('dump-bag-pass-');
    const passphraseFile = join(dir, 'passphrase');
    writeFileSync(passphraseFile, 'correct horse battery staple\n');
    const name = NAMES[2] as string;
    const summary = await runBackup(backupTarget(bucket), {
      config: config({ databases: [name], encryption: 'passphrase', passphraseFile }),
      trigger: 'schedule',
    });
    expect(summary.ok).toBe(true);
    const record = await getDump(s3Client(), bucket, name, 'latest');
    expect(record).toMatchObject({ encryption: 'passphrase', recipients: [] });
    const stored = await getObjectBytes(s3Client(), bucket, record.key);
    const home = gnupgHome();
    const plain = await gpgDecrypt(home, stored, [
      '--pinentry-mode',
      'loopback',
      '--passphrase-file',
      passphraseFile,
    ]);
    await restoreInto('restored passphrase', plain);
    expect(await snapshot('restored passphrase', ROWS)).toBe(await snapshot(name, ROWS));
    await expect(
      gpgDecrypt(home, stored, ['--pinentry-mode', 'loopback', '--passphrase', 'wrong']),
    ).rejects.toThrow();
  });

  it('encryption none stores the plain archive under .pg', async () => {
    const bucket = await freshBucket();
    const name = NAMES[3] as string;
    const summary = await runBackup(backupTarget(bucket), {
      config: config({ databases: [name], encryption: 'none' }),
      trigger: 'schedule',
    });
    expect(summary.ok).toBe(true);
    const record = await getDump(s3Client(), bucket, name, 'latest');
    expect(record.key).toMatch(/\.pg$/);
    const stored = await getObjectBytes(s3Client(), bucket, record.key);
    expect(stored.subarray(0, 5).toString()).toBe('PGDMP');
  });
});
