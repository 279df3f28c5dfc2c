import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertRecordSigned, type PinnedKey } from '../cli/client/signing-pin';
import type { DumpRecord } from '../functions/core/catalog';
import { KmsSigner } from '../functions/core/kms-signer';
import type { ListedDump } from '../functions/core/listing';
import { dumpId, dumpKey, recordKey } from '../functions/core/naming';
import {
  canonicalRecord,
  checkRecordSignature,
  displayFingerprint,
  keyFingerprint,
  loadLocalSigner,
  parsePublicKey,
  RECORD_DOMAIN,
  signRecord,
} from '../functions/core/signing';
import { AwsStandIn } from './infra/twin/aws-stand-in';
import {
  bagEnv,
  type KeyPair,
  keyFolder,
  keyPair,
  makeDumps,
  type RunningBag,
  runCli,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import {
  createDatabase,
  freshBucket,
  getObjectBytes,
  restoreInto,
  s3Client,
  services,
  snapshot,
} from './support/env';
import { otherSigner, testPublicKeyFile, testSigner } from './support/signing';

const RECORD: DumpRecord = {
  database: 'app',
  id: '20260102-030405',
  key: 'dumps/app/app-20260102-030405.pg.gpg',
  createdAt: '2026-01-02T03:04:05.000Z',
  trigger: 'schedule',
  encryption: 'gpg',
  recipients: [{ fingerprint: 'A'.repeat(40), userId: 'Alice <a@example.com>' }],
  pgDumpVersion: '17.2',
  serverVersion: '16.4',
  compression: 'gzip:1',
  sha256: 'f'.repeat(64),
  bytes: 1234,
  seconds: 1.5,
};

describe('record signatures', () => {
  it('sign the canonical fields, prefixed with the domain, and nothing else', async () => {
    const bytes = canonicalRecord(RECORD).toString('utf8');
    expect(bytes.startsWith(`${RECORD_DOMAIN}\n[["database","app"],["id","20260102-030405"]`)).toBe(true);
    const signed = await signRecord(RECORD, testSigner());
    const key = parsePublicKey(await testSigner().publicKeyPem());
    expect(checkRecordSignature(signed, key)).toEqual({ state: 'valid' });
    expect(signed.signature?.key).toBe(`sha256:${keyFingerprint(key)}`);
    // Every field a reader relies on is covered: changing any one breaks the signature.
    const changes: Partial<Record<keyof DumpRecord, unknown>> = {
      database: 'other',
      id: '20260102-030406',
      key: 'dumps/other/x.pg.gpg',
      createdAt: '2026-01-03T00:00:00.000Z',
      trigger: 'manual',
      encryption: 'none',
      recipients: [{ fingerprint: 'B'.repeat(40), userId: 'Alice <a@example.com>' }],
      pgDumpVersion: '18.0',
      serverVersion: '17.0',
      compression: 'none',
      sha256: 'e'.repeat(64),
      bytes: 1235,
    };
    for (const [field, value] of Object.entries(changes)) {
      const check = checkRecordSignature({ ...signed, [field]: value } as DumpRecord, key);
      expect([field, check.state]).toEqual([field, 'invalid']);
    }
    // Display-only fields may change without breaking it.
    expect(checkRecordSignature({ ...signed, seconds: 9 }, key).state).toBe('valid');
    expect(checkRecordSignature(RECORD, key)).toMatchObject({ state: 'unsigned' });
    const forged = await signRecord(RECORD, otherSigner().signer);
    expect(checkRecordSignature(forged, key)).toMatchObject({
      state: 'invalid',
      reason: expect.stringContaining('signed by another key'),
    });
    // Hostile shapes are states, never exceptions.
    for (const bad of [{ value: 42 }, 'x', { value: 'x'.repeat(5000) }]) {
      expect(checkRecordSignature({ ...RECORD, signature: bad } as unknown as DumpRecord, key).state).toBe(
        'invalid',
      );
    }
  });

  it('backup makes its Ed25519 key on first use, mode 0600, and reuses it', async () => {
    const file = join(tempDir('dump-bag-keyfile-'), 'dump-bag', 'signing-key.pem');
    const told: string[] = [];
    const first = loadLocalSigner(file, { create: true, onCreated: (f) => told.push(f) });
    expect(told).toEqual([file]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = loadLocalSigner(file, { create: true, onCreated: (f) => told.push(f) });
    expect(told).toHaveLength(1);
    expect(await again.publicKeyPem()).toBe(await first.publicKeyPem());
    expect(() => loadLocalSigner(join(tempDir(), 'absent.pem'))).toThrow(/DUMP_BAG_SIGNING_KEY_FILE/);
  });

  it('the KMS signer, against a stand-in of KMS Sign/GetPublicKey, makes records the client accepts', async () => {
    const standIn = new AwsStandIn({ arn: 'arn:unused', value: {} }, 'arn:unused');
    await standIn.start();
    try {
      const kms = new KMSClient({
        endpoint: standIn.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'TEST', secretAccessKey: 'TEST' },
      });
      const signer = new KmsSigner(kms, standIn.kmsKeyId);
      const signed = await signRecord(RECORD, signer);
      expect(signed.signature).toMatchObject({ algorithm: 'ecdsa-p256-sha256', key: standIn.kmsKeyId });
      const pem = await signer.publicKeyPem();
      expect(keyFingerprint(pem)).toBe(keyFingerprint(standIn.kmsKey.publicKey));
      const pin: PinnedKey = { key: parsePublicKey(pem), fingerprint: keyFingerprint(pem), source: 'test' };
      expect(() => assertRecordSigned(signed, pin)).not.toThrow();
      expect(() => assertRecordSigned({ ...signed, bytes: 1 }, pin)).toThrow(/refusing app 20260102-030405/);
      expect(standIn.kmsCalls.map((c) => c.operation)).toEqual(['Sign', 'GetPublicKey']);
      await expect(signRecord(RECORD, new KmsSigner(kms, 'not-the-key'))).rejects.toThrow(/does not exist/);
    } finally {
      await standIn.stop();
    }
  });
});

describe('readers refuse planted dumps', () => {
  const suffix = uniqueSuffix();
  const DB = `signing src ${suffix}`;
  const ROWS = 'SELECT id, note FROM t ORDER BY id';
  let bucket: string;
  let bag: RunningBag;
  let alice: KeyPair;
  let aliceKey: string;
  let env: Record<string, string>;
  let bagServed: Record<string, string>;
  let genuine: ListedDump;
  let forgedId: string;
  let unsignedId: string;

  beforeAll(async () => {
    alice = await keyPair('Alice Reader', `alice-sig-${suffix}@example.com`);
    aliceKey = join(tempDir('dump-bag-sig-secret-'), 'alice.asc');
    writeFileSync(aliceKey, alice.secretKey, { mode: 0o600 });
    const publicKeys = keyFolder([alice]);
    await createDatabase(
      DB,
      'CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 5000) i;',
    );
    bucket = await freshBucket();
    await makeDumps(bucket, [DB], { publicKeys });
    bagServed = bagEnv(bucket, { DUMP_BAG_PUBLIC_KEYS: publicKeys });
    bag = await startBag(bagServed);
    env = { ...services().pgEnv, DUMP_BAG_URL: bag.url, DUMP_BAG_SIGNING_KEY: await testPublicKeyFile() };
    genuine = (await (await fetch(`${bag.url}/dumps`)).json()).dumps[0];
    // Planted by someone who can write to the bucket: the genuine, validly encrypted bytes under new
    // ids, with records that match them but are signed by another key, or not at all.
    const s3 = s3Client();
    const bytes = await getObjectBytes(s3, bucket, genuine.key);
    const { expiresAt: _, signatureState: __, signature: ___, ...fields } = genuine;
    const plant = async (date: Date, record: (base: DumpRecord) => Promise<DumpRecord>) => {
      const id = dumpId(date);
      const key = dumpKey(DB, id, true);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
      const body = await record({ ...fields, id, key, createdAt: date.toISOString() });
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: recordKey(key), Body: JSON.stringify(body) }),
      );
      return id;
    };
    forgedId = await plant(new Date(Date.now() + 120_000), (r) => signRecord(r, otherSigner().signer));
    unsignedId = await plant(new Date(Date.now() + 240_000), async (r) => r);
  });

  afterAll(async () => {
    await bag?.close();
  });

  it("list and /dumps show each record's signature state", async () => {
    const served = (await (await fetch(`${bag.url}/dumps`)).json()).dumps as ListedDump[];
    const byId = Object.fromEntries(served.map((d) => [d.id, d.signatureState]));
    expect(byId).toEqual({ [genuine.id]: 'valid', [forgedId]: 'invalid', [unsignedId]: 'unsigned' });
    const listed = await runCli(['list', DB, '--json'], env);
    expect(listed.code).toBe(0);
    const mine = JSON.parse(listed.stdout.toString()) as ListedDump[];
    expect(Object.fromEntries(mine.map((d) => [d.id, d.signatureState]))).toEqual(byId);
    const table = await runCli(['list', DB], env);
    expect(table.stdout.toString()).toMatch(/UNSIGNED/);
    expect(table.stdout.toString()).toMatch(/INVALID/);
  });

  it('get refuses a forged or unsigned record before downloading; nothing reaches the output', async () => {
    const dir = tempDir('dump-bag-sig-out-');
    const file = join(dir, 'out.pgdump');
    const forged = await runCli(['get', DB, forgedId, '-o', file, '--key', aliceKey], env);
    expect(forged.code).toBe(1);
    expect(forged.stderr).toContain(`refusing ${DB} ${forgedId}: its record is signed by another key`);
    expect(existsSync(file)).toBe(false);
    const unsigned = await runCli(['get', DB, 'latest', '-o', '-', '--key', aliceKey], env);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stdout.length).toBe(0);
    expect(unsigned.stderr).toContain(`refusing ${DB} ${unsignedId}: its record carries no signature`);
    expect(unsigned.stderr).toContain('--allow-unsigned');
    // --allow-unsigned never covers a wrong signature.
    const still = await runCli(['get', DB, forgedId, '-o', '-', '--allow-unsigned', '--key', aliceKey], env);
    expect(still.code).toBe(1);
    expect(still.stdout.length).toBe(0);
  });

  it('verify fails the forged and unsigned dumps by name and passes the genuine one', async () => {
    for (const [id, reason] of [
      [forgedId, 'signed by another key'],
      [unsignedId, 'carries no signature'],
    ] as const) {
      const result = await runCli(['verify', DB, id, '--key', aliceKey], env);
      expect(result.code).toBe(1);
      expect(result.stdout.toString()).toContain(`FAILED  ${DB}  ${id}  refusing ${DB} ${id}: its record`);
      expect(result.stdout.toString()).toContain(reason);
    }
    const ok = await runCli(['verify', DB, genuine.id, '--key', aliceKey], env);
    expect(ok.stdout.toString()).toContain('record signed by the bag');
    expect(ok.code).toBe(0);
  });

  it('--allow-unsigned reads an older unsigned dump, with a warning, and the data round-trips', async () => {
    const file = join(tempDir('dump-bag-sig-old-'), 'old.pgdump');
    const result = await runCli(
      ['get', DB, unsignedId, '-o', file, '--allow-unsigned', '--key', aliceKey],
      env,
    );
    expect(result.stderr).toContain(`WARNING: ${DB} ${unsignedId} has an unsigned record`);
    expect(result.code).toBe(0);
    await restoreInto(`${DB} restored`, readFileSync(file));
    expect(await snapshot(`${DB} restored`, ROWS)).toBe(await snapshot(DB, ROWS));
  });

  it('trust on first use pins the bag key; a changed key at the same bag is a loud error', async () => {
    const home = tempDir('dump-bag-sig-home-');
    const tofu = { ...services().pgEnv, DUMP_BAG_URL: bag.url, XDG_CONFIG_HOME: home };
    const first = await runCli(['list', DB], tofu);
    expect(first.code).toBe(0);
    const oldFingerprint = keyFingerprint(await testSigner().publicKeyPem());
    expect(first.stderr).toContain(`trusting the signing key of ${bag.url} on first use`);
    expect(first.stderr).toContain(displayFingerprint(oldFingerprint));
    const pins = JSON.parse(readFileSync(join(home, 'dump-bag', 'signing-keys.json'), 'utf8'));
    expect(pins[bag.url].fingerprint).toBe(oldFingerprint);
    expect((await runCli(['list', DB], tofu)).stderr).toBe('');

    // The same URL now serves another key.
    const port = bag.port;
    await bag.close();
    const replaced = otherSigner();
    bag = await startBag({ ...bagServed, DUMP_BAG_SIGNING_KEY_FILE: replaced.file }, port);
    const out = join(tempDir('dump-bag-sig-pin-'), 'x.pgdump');
    const changed = await runCli(['get', DB, genuine.id, '-o', out, '--key', aliceKey], tofu);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toContain(`THE SIGNING KEY OF THE BAG AT ${bag.url} HAS CHANGED`);
    expect(changed.stderr).toContain(displayFingerprint(oldFingerprint));
    expect(changed.stderr).toContain(
      displayFingerprint(keyFingerprint(await replaced.signer.publicKeyPem())),
    );
    expect(changed.stderr).toContain(`remove the entry for ${bag.url}`);
    expect(existsSync(out)).toBe(false);
    // The explicit pin still reads the genuine dump from the same bag.
    const explicit = await runCli(['verify', DB, genuine.id, '--key', aliceKey], env);
    expect(explicit.code).toBe(0);
  });
});
