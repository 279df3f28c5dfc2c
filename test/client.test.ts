/**
 * The dump-bag command's client side (list, get, get --restore, verify, keys, recipients, serve)
 * run as bin/dump-bag.js against a bag's API over the real S3 API server, with dumps the product
 * made of real PostgreSQL databases: GnuPG checks what get decrypts, pg_restore restores it, and
 * objects changed in the bucket must fail get and verify. Over 300 lines: every case reads the one
 * setup beforeAll builds (three key pairs, four databases and their dumps, two tampered objects, the
 * started bag), which each file of a split would build again.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressLine } from '../cli/client/progress';
import { freePort } from '../cli/local/services';
import type { DumpRecord } from '../functions/core/catalog';
import type { ListedDump } from '../functions/core/listing';
import { databaseConninfo } from '../functions/core/pg-dump';
import { signRecord } from '../functions/core/signing';
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
  emptyDatabase,
  freshBucket,
  getObjectBytes,
  publicTables,
  s3Client,
  services,
  snapshot,
} from './support/env';
import { gpgDecrypt } from './support/gpg';
import { testPublicKeyFile, testSigner } from './support/signing';

const suffix = uniqueSuffix();
const SOURCE = `client "src" é ${suffix}`;
const PASSPHRASE_DB = `client pass ${suffix}`;
const TAMPERED = `client tampered ${suffix}`;
const REWRITTEN = `client rewritten ${suffix}`;
const ALICE_PASSPHRASE = 'correct horse battery staple';
const DUMP_PASSPHRASE = 'the bag passphrase';
const ROWS = 'SELECT id, note, amount::text, attrs::text FROM t ORDER BY id';

/** Enough rows that the archive is larger than what the client holds back until the checks pass. */
function fill(rows: number): string {
  return `CREATE TABLE t (id int PRIMARY KEY, note text, amount numeric(10,2), attrs jsonb);
          INSERT INTO t SELECT i, md5(i::text) || md5((i * 7)::text), i / 3.0, jsonb_build_object('i', i)
            FROM generate_series(1, ${rows}) i;`;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Everything in a folder but the given names: to prove no temporary file was left. */
function leftovers(dir: string, except: string[] = []): string[] {
  return readdirSync(dir).filter((f) => !except.includes(f));
}

describe('dump-bag client: list, get, restore, verify, keys, recipients', () => {
  let bucket: string;
  let bag: RunningBag;
  let alice: KeyPair;
  let bob: KeyPair;
  let carol: KeyPair;
  let keys: Record<string, string>;
  let env: Record<string, string>;
  let dumps: ListedDump[];
  const record = (database: string) => dumps.find((d) => d.database === database) as ListedDump;

  beforeAll(async () => {
    [alice, bob, carol] = await Promise.all([
      keyPair('Alice Analyst', `alice-${suffix}@example.com`, ALICE_PASSPHRASE),
      keyPair('Bob Builder', `bob-${suffix}@example.com`),
      keyPair('Carol Cold', `carol-${suffix}@example.com`),
    ]);
    const secrets = tempDir('dump-bag-secrets-');
    keys = {};
    for (const p of [alice, bob, carol]) {
      keys[p.email] = join(secrets, `${p.email}.secret.asc`);
      writeFileSync(keys[p.email] as string, p.secretKey, { mode: 0o600 });
    }
    const publicKeys = keyFolder([alice, bob]);
    await Promise.all([
      createDatabase(SOURCE, fill(30_000)),
      createDatabase(PASSPHRASE_DB, fill(2_000)),
      createDatabase(TAMPERED, fill(30_000)),
      createDatabase(REWRITTEN, fill(30_000)),
    ]);
    bucket = await freshBucket();
    await makeDumps(bucket, [SOURCE, TAMPERED, REWRITTEN], { publicKeys });
    const passFile = join(secrets, 'bag-passphrase');
    writeFileSync(passFile, `${DUMP_PASSPHRASE}\n`);
    await makeDumps(bucket, [PASSPHRASE_DB], { encryption: 'passphrase', passphraseFile: passFile });
    bag = await startBag(bagEnv(bucket, { DUMP_BAG_PUBLIC_KEYS: publicKeys }));
    // Pinned explicitly, so no first-use notice joins the output the tests compare.
    env = { ...services().pgEnv, DUMP_BAG_URL: bag.url, DUMP_BAG_SIGNING_KEY: await testPublicKeyFile() };
    dumps = (await (await fetch(`${bag.url}/dumps`)).json()).dumps;

    // An object changed in the bucket: its bytes no longer match the recorded SHA-256.
    const s3 = s3Client();
    const tampered = record(TAMPERED);
    const bytes = await getObjectBytes(s3, bucket, tampered.key);
    const middle = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0x01, middle);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: tampered.key, Body: bytes }));
    // Changed and re-recorded with a record the bag's key signed (as a thief of that key could): only
    // OpenPGP's integrity check, at the very end of the stream, can tell. The flipped byte is in the closing MDC.
    const rewritten = record(REWRITTEN);
    const other = await getObjectBytes(s3, bucket, rewritten.key);
    other.writeUInt8(other.readUInt8(other.length - 3) ^ 0x01, other.length - 3);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: rewritten.key, Body: other }));
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${rewritten.key}.json`,
        Body: JSON.stringify(
          await signRecord(
            {
              ...rewritten,
              expiresAt: undefined,
              signatureState: undefined,
              sha256: sha256(other),
            } as DumpRecord,
            testSigner(),
          ),
        ),
      }),
    );
  });

  afterAll(async () => {
    await bag?.close();
  });

  it('list prints every dump; --json gives the API records', async () => {
    const table = await runCli(['list'], env);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    const [tableText, globalsLine, ...rest] = table.stdout.toString().trim().split('\n\n');
    const lines = (tableText ?? '').split('\n');
    expect(lines[0]).toMatch(
      /^DATABASE\s+ID\s+SIZE\s+TRIGGER\s+RUNNER\s+FOR\s+SIGNATURE\s+RETENTION\s+PG_RESTORE$/,
    );
    expect(lines).toHaveLength(5);
    // The command made these dumps: each row says so, with the time the dump took.
    const runnerAt = (lines[0] ?? '').indexOf('RUNNER');
    for (const line of lines.slice(1)) expect(line.slice(runnerAt)).toMatch(/^local \d+(\.\d)?s\s/);
    // Each backup also stored the server's globals: one line after the table says how to fetch them.
    expect(globalsLine).toMatch(
      /^globals: \d+ dump\(s\), newest \d{8}-\d{6}\S* \(.+\): dump-bag get --globals$/,
    );
    expect(rest).toEqual([]);
    expect(table.stdout.toString()).toContain(SOURCE);
    const json = await runCli(['list', SOURCE, '--json'], env);
    expect(JSON.parse(json.stdout.toString())).toEqual([record(SOURCE)]);
  });

  it('keys and recipients print what the bag serves', async () => {
    const keysOut = await runCli(['keys'], env);
    expect(keysOut.code).toBe(0);
    expect(keysOut.stdout.toString()).toBe(await (await fetch(`${bag.url}/keys`)).text());
    expect(keysOut.stdout.toString()).toContain(`# Bob Builder <${bob.email}> ${bob.fingerprint}`);
    const recipients = await runCli(['recipients'], env);
    expect(recipients.stdout.toString().trim().split(',').sort()).toEqual(
      [alice.fingerprint, bob.fingerprint].sort(),
    );
  });

  it('get -o writes the decrypted archive, byte for byte what GnuPG decrypts from the stored object', async () => {
    const dir = tempDir();
    const out = join(dir, 'source.pgdump');
    const result = await runCli(
      ['get', SOURCE, 'latest', '-o', out, '--key', keys[bob.email] as string],
      env,
    );
    expect(result.stderr).toMatch(/^wrote .*source\.pgdump: .*SHA-256 verified, decrypted\n$/);
    expect(result.code).toBe(0);
    const archive = readFileSync(out);
    expect(archive.subarray(0, 5).toString()).toBe('PGDMP');
    expect(leftovers(dir)).toEqual(['source.pgdump']);

    const { execFileSync } = await import('node:child_process');
    const home = tempDir('dump-bag-gnupg-');
    execFileSync('gpg', ['--homedir', home, '--batch', '--import'], { input: bob.secretKey, stdio: 'pipe' });
    const stored = await getObjectBytes(s3Client(), bucket, record(SOURCE).key);
    expect((await gpgDecrypt(home, stored)).equals(archive)).toBe(true);

    // To standard output, the same bytes; --encrypted keeps the stored bytes as they are.
    const stdout = await runCli(['get', SOURCE, record(SOURCE).id, '-o', '-'], {
      ...env,
      DUMP_BAG_SECRET_KEY: keys[bob.email] as string,
    });
    expect(stdout.code).toBe(0);
    expect(stdout.stdout.equals(archive)).toBe(true);
    const raw = await runCli(['get', SOURCE, '--encrypted', '-o', join(dir, 'raw.pg.gpg')], env);
    expect(raw.code).toBe(0);
    expect(readFileSync(join(dir, 'raw.pg.gpg')).equals(stored)).toBe(true);
  });

  it('get --restore fills a fresh database with the same rows, with a passphrase-protected key', async () => {
    const target = `client restored ${suffix}`;
    await emptyDatabase(target);
    const result = await runCli(
      ['get', SOURCE, '--restore', databaseConninfo(target), '--key', keys[alice.email] as string],
      {
        ...env,
        DUMP_BAG_KEY_PASSPHRASE: ALICE_PASSPHRASE,
      },
    );
    expect(result.stderr).toContain('restored into the given database');
    expect(result.code).toBe(0);
    expect(await snapshot(target, ROWS)).toBe(await snapshot(SOURCE, ROWS));
  });

  it('get --restore passes --table, --jobs, --clean and --if-exists to pg_restore, and refuses bad ones', async () => {
    const target = `client restored parts ${suffix}`;
    await emptyDatabase(target);
    const withKey = { ...env, DUMP_BAG_KEY_PASSPHRASE: ALICE_PASSPHRASE };
    const key = ['--key', keys[alice.email] as string];
    const parallel = await runCli(
      ['get', SOURCE, '--restore', databaseConninfo(target), '--table', 't', '--jobs', '2', ...key],
      withKey,
    );
    expect(parallel.code).toBe(0);
    expect(await snapshot(target, ROWS)).toBe(await snapshot(SOURCE, ROWS));
    // Over the restored table: without --clean pg_restore meets the existing one; with it, the same rows again.
    const again = await runCli(
      ['get', SOURCE, '--restore', databaseConninfo(target), '--clean', '--if-exists', ...key],
      withKey,
    );
    expect(again.code).toBe(0);
    expect(await snapshot(target, ROWS)).toBe(await snapshot(SOURCE, ROWS));

    const alone = await runCli(
      ['get', SOURCE, '--restore', databaseConninfo(target), '--if-exists', ...key],
      withKey,
    );
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toContain('--if-exists goes with --clean');
    const zero = await runCli(
      ['get', SOURCE, '--restore', databaseConninfo(target), '--jobs', '0', ...key],
      withKey,
    );
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain('--jobs must be a whole number from 1 to 64, got "0"');
    const dashed = await runCli(
      ['get', SOURCE, '--restore', databaseConninfo(target), '--table=-x', ...key],
      withKey,
    );
    expect(dashed.code).not.toBe(0);
    expect(dashed.stderr).toContain('--table needs a name');
  });

  it('get of a passphrase-mode dump needs the passphrase, and restores with it', async () => {
    const target = `client pass restored ${suffix}`;
    await emptyDatabase(target);
    const missing = await runCli(['get', PASSPHRASE_DB, '--restore', databaseConninfo(target)], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('encrypted with a passphrase');
    const result = await runCli(['get', PASSPHRASE_DB, '--restore', databaseConninfo(target)], {
      ...env,
      DUMP_BAG_PASSPHRASE: DUMP_PASSPHRASE,
    });
    expect(result.code).toBe(0);
    expect(await snapshot(target, ROWS)).toBe(await snapshot(PASSPHRASE_DB, ROWS));
  });

  it('wrong key, wrong key passphrase, wrong dump passphrase: a clear error and no file', async () => {
    const dir = tempDir();
    const out = join(dir, 'x.pgdump');
    const wrongKey = await runCli(['get', SOURCE, '-o', out, '--key', keys[carol.email] as string], env);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain(`cannot decrypt this dump: it is encrypted for`);
    expect(wrongKey.stderr).toContain(bob.fingerprint);

    const wrongPass = await runCli(['get', SOURCE, '-o', out, '--key', keys[alice.email] as string], {
      ...env,
      DUMP_BAG_KEY_PASSPHRASE: 'incorrect horse',
    });
    expect(wrongPass.code).toBe(1);
    expect(wrongPass.stderr).toContain('wrong passphrase for the secret key');

    const noPass = await runCli(['get', SOURCE, '-o', out, '--key', keys[alice.email] as string], env);
    expect(noPass.code).toBe(1);
    expect(noPass.stderr).toContain('DUMP_BAG_KEY_PASSPHRASE');

    const wrongDumpPass = await runCli(['get', PASSPHRASE_DB, '-o', out], {
      ...env,
      DUMP_BAG_PASSPHRASE: 'nope',
    });
    expect(wrongDumpPass.code).toBe(1);
    expect(wrongDumpPass.stderr).toMatch(/wrong passphrase/);

    for (const r of [wrongKey, wrongPass, noPass, wrongDumpPass]) {
      expect(r.stderr).not.toMatch(/X-Amz-|https?:\/\/127/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(leftovers(dir)).toEqual([]);
  });

  it('a changed object fails get with no file left, and fails verify', async () => {
    const dir = tempDir();
    const get = await runCli(
      ['get', TAMPERED, '-o', join(dir, 't.pgdump'), '--key', keys[bob.email] as string],
      env,
    );
    expect(get.code).toBe(1);
    expect(get.stderr).toMatch(/do not match the recorded SHA-256|does not decrypt cleanly/);
    expect(leftovers(dir)).toEqual([]);

    const verify = await runCli(['verify', TAMPERED, '--key', keys[bob.email] as string], env);
    expect(verify.code).toBe(1);
    expect(verify.stdout.toString()).toMatch(/^FAILED {2}client tampered/);
    // Without a key the checksum alone already tells.
    const checksum = await runCli(['verify', TAMPERED, '--checksum-only'], env);
    expect(checksum.code).toBe(1);
    expect(checksum.stdout.toString()).toContain('do not match the recorded SHA-256');
  });

  it('a changed and re-recorded object fails on OpenPGP integrity: no file, and nothing restored', async () => {
    const dir = tempDir();
    const get = await runCli(
      ['get', REWRITTEN, '-o', join(dir, 'r.pgdump'), '--key', keys[bob.email] as string],
      env,
    );
    expect(get.code).toBe(1);
    expect(get.stderr).toContain('does not decrypt cleanly');
    expect(get.stderr).toMatch(/modification detected/i);
    expect(leftovers(dir)).toEqual([]);

    const target = `client not restored ${suffix}`;
    await emptyDatabase(target);
    const restore = await runCli(
      ['get', REWRITTEN, '--restore', databaseConninfo(target), '--key', keys[bob.email] as string],
      env,
    );
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/modification detected/i);
    // The plaintext was intact up to the MDC, yet pg_restore never got its end and committed nothing.
    expect(await publicTables(target)).toEqual([]);

    const verify = await runCli(['verify', REWRITTEN, '--key', keys[bob.email] as string], env);
    expect(verify.code).toBe(1);
    expect(verify.stdout.toString()).toMatch(/modification detected/i);
  });

  it('verify checks the SHA-256, decrypts and lists the archive; with no database, the newest of each', async () => {
    const one = await runCli(['verify', SOURCE, '--key', keys[bob.email] as string], env);
    expect(one.stdout.toString()).toMatch(
      /^ok {6}client "src" é \S+ {2}\d{8}-\d{6}-\d{3}-[0-9a-f]{8} {2}record signed by the bag, sha256 ok \(\d+ bytes\), decrypted, integrity ok, pg_restore --list: \d+ entries\n$/,
    );
    expect(one.code).toBe(0);

    const all = await runCli(['verify', '--json', '--key', keys[bob.email] as string], {
      ...env,
      DUMP_BAG_PASSPHRASE: DUMP_PASSPHRASE,
    });
    const verdicts = JSON.parse(all.stdout.toString()) as {
      database: string;
      status: string;
      error?: string;
    }[];
    expect(Object.fromEntries(verdicts.map((v) => [v.database, v.status]))).toEqual({
      [SOURCE]: 'ok',
      [PASSPHRASE_DB]: 'ok',
      [TAMPERED]: 'failed',
      [REWRITTEN]: 'failed',
    });
    expect(all.code).toBe(1);
  });

  it('errors from the bag are clear: unknown database, bad id, bag unreachable', async () => {
    const unknown = await runCli(['get', `no such db ${suffix}`, '-o', '/dev/null'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('dump-bag get: this database has no dump\n');
    const badId = await runCli(['get', SOURCE, 'yesterday'], env);
    expect(badId.code).toBe(1);
    expect(badId.stderr).toContain('YYYYMMDD-HHMMSS');
    const closed = await freePort();
    const down = await runCli(['list'], { DUMP_BAG_URL: `http://127.0.0.1:${closed}` });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`cannot reach the bag at http://127.0.0.1:${closed}: ECONNREFUSED`);
  });

  it('on a terminal get shows a progress bar and asks for the key passphrase', async () => {
    const dir = tempDir();
    const out = join(dir, 'tty.pgdump');
    const command = [
      process.execPath,
      join(process.cwd(), 'bin', 'dump-bag.js'),
      'get',
      SOURCE,
      '-o',
      out,
      '--key',
      keys[alice.email] as string,
    ]
      .map((w) => `'${w.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    // `script` runs the command on a pseudo-terminal: stdin and stderr are a TTY, as for a person.
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TERM: 'dumb', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (c: Buffer) => {
      screen += c.toString();
      if (screen.includes('Passphrase of') && !screen.includes('typed')) {
        screen += '(typed)';
        // As a person would: a moment after the prompt appeared.
        setTimeout(() => child.stdin.write(`${ALICE_PASSPHRASE}\r`), 300);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(screen).toContain('Passphrase of Alice Analyst');
    expect(screen).not.toContain(ALICE_PASSPHRASE);
    expect(screen).toMatch(/\r.*100%\s+\d+(\.\d)? [KM]?B \/ \d+(\.\d)? [KM]?B\s+\d+(\.\d)? [KM]?B\/s/);
    expect(code).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  it('progress lines fit the terminal and show bytes and rate', () => {
    expect(progressLine('db 20260101-000000', 5_000_000, 10_000_000, 2, 100)).toBe(
      'db 20260101-000000  [###############---------------]   50%  5.0 MB / 10.0 MB  2.5 MB/s',
    );
    expect(progressLine('db', 1, 2, 0, 20).length).toBeLessThan(20);
  });

  it('dump-bag serve runs the same API on 127.0.0.1 and stops on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [join(process.cwd(), 'bin', 'dump-bag.js'), 'serve', '--port', '0'],
      {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...bagEnv(bucket) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const url = await new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout.on('data', (c: Buffer) => {
        text += c.toString();
        const m = /Dump Bag on (http:\/\/127\.0\.0\.1:\d+)\//.exec(text);
        if (m) resolve(m[1] as string);
      });
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
    });
    const listed = (await (await fetch(`${url}/dumps`)).json()) as { dumps: ListedDump[] };
    expect(listed.dumps.map((d) => d.key).sort()).toEqual(dumps.map((d) => d.key).sort());
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
