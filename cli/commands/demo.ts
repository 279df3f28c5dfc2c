import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import * as openpgp from 'openpgp';
import pg from 'pg';
import type { DumpResult } from '../../functions/core/backup';
import { readConfig } from '../../functions/core/config';
import { errorMessage } from '../../functions/core/errors';
import { connectionFromEnv, pgClientConfig } from '../../functions/core/libpq';
import { formatSize } from '../../functions/core/listing';
import { SETTINGS } from '../../functions/core/settings';
import { loadLocalSigner } from '../../functions/core/signing';
import { type LocalPostgres, type LocalS3, startLocalPostgres, startLocalS3 } from '../local/services';
import { backupFromEnv } from './backup';

const BUCKET = 'dump-bag-demo';
const BUCKET_ENV = SETTINGS.bucket.env;
const KEYS_ENV = SETTINGS.publicKeys.env;
/** Demo databases; one name shows that any character PostgreSQL allows is fine. */
const DEMO_DATABASES = ['shop', 'café "analytics"'];

/** Single-quotes a word for a POSIX shell. */
function sh(word: string): string {
  return /^[\w./=:@-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

async function seed(env: Record<string, string>): Promise<void> {
  const connection = connectionFromEnv(env);
  const admin = new pg.Client(pgClientConfig(connection, 'postgres'));
  await admin.connect();
  try {
    for (const name of DEMO_DATABASES) {
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (exists.rowCount) continue;
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      const db = new pg.Client(pgClientConfig(connection, name));
      await db.connect();
      await db.query(`
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
        INSERT INTO customers SELECT i, 'Customer ' || i, 'customer' || i || '@example.com' FROM generate_series(1, 20000) i;
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2), placed_at timestamptz);
        INSERT INTO orders SELECT i, 1 + i % 20000, (i % 997) / 10.0, now() - (i || ' minutes')::interval FROM generate_series(1, 200000) i;`);
      await db.end();
    }
  } finally {
    await admin.end();
  }
}

async function demoKeys(dir: string): Promise<{ publicKey: string; secretKey: string }> {
  mkdirSync(dir, { recursive: true });
  const publicKey = join(dir, 'demo-public.asc');
  const secretKey = join(dir, 'demo-secret.asc');
  if (!existsSync(publicKey) || !existsSync(secretKey)) {
    const pair = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'Dump Bag demo', email: 'demo@dump-bag.invalid' }],
      format: 'armored',
    });
    writeFileSync(secretKey, pair.privateKey, { mode: 0o600 });
    writeFileSync(publicKey, `# Dump Bag demo key: the secret half is ${secretKey}\n${pair.publicKey}`);
  }
  return { publicKey, secretKey };
}

/** What the demo started for itself (stopped at the end) and the secret key it made. */
interface DemoParts {
  postgres?: LocalPostgres;
  s3?: LocalS3;
  secretKey?: string;
}

/** Starts what the environment does not name (server, bucket, keys, signing key), into `parts` as each starts. */
async function startParts(state: string, parts: DemoParts): Promise<void> {
  if (process.env.PGHOST) {
    console.log(`Using the PostgreSQL server at ${process.env.PGHOST} (PGHOST is set).`);
  } else {
    console.log('Starting an embedded PostgreSQL 15 in .dump-bag/postgres …');
    parts.postgres = await startLocalPostgres(join(state, 'postgres'));
    Object.assign(process.env, parts.postgres.env);
    await seed(parts.postgres.env);
  }
  if (process.env[BUCKET_ENV]) {
    console.log(`Using the bucket ${process.env[BUCKET_ENV]} (${BUCKET_ENV} is set).`);
  } else {
    console.log('Starting an S3 API server on 127.0.0.1, data in .dump-bag/s3 …');
    parts.s3 = await startLocalS3(join(state, 's3'), BUCKET);
    Object.assign(process.env, parts.s3.env);
  }
  if (!process.env[KEYS_ENV] && !process.env[SETTINGS.encryption.env]) {
    const keys = await demoKeys(join(state, 'keys'));
    process.env[KEYS_ENV] = keys.publicKey;
    parts.secretKey = keys.secretKey;
  }
  // The demo's records are signed by a key of its own, kept with its other state (made on the first run).
  if (!process.env[SETTINGS.signingKeyFile.env]) {
    const file = join(state, 'signing-key.pem');
    loadLocalSigner(file, { create: true });
    process.env[SETTINGS.signingKeyFile.env] = file;
  }
}

/** Where the dumps are, and the commands that decrypt and restore one of them. */
function printRestoreHints(
  state: string,
  results: readonly DumpResult[],
  bucket: string,
  encryption: string,
  parts: DemoParts,
): void {
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  const { s3, secretKey } = parts;
  const done = results.filter((r) => r.status === 'ok' && r.key);
  const first = done.find((r) => r.database === 'shop') ?? done[0];
  if (!first?.key) return;
  console.log('\nThe dumps:');
  for (const r of results.filter((x) => x.key)) {
    console.log(`  s3://${bucket}/${r.key}`);
    if (s3) console.log(`    on disk: ${rel(s3.objectPath(r.key as string))}`);
  }
  const file = s3 ? rel(s3.objectPath(first.key)) : `${first.database}.pg.gpg`;
  const out = `${first.database.replace(/[^\w-]+/g, '_')}.pgdump`;
  console.log('\nTo decrypt and restore one:');
  if (!s3) console.log(`  aws s3 cp ${sh(`s3://${bucket}/${first.key}`)} ${sh(file)}`);
  if (secretKey) {
    mkdirSync(join(state, 'gnupg'), { recursive: true, mode: 0o700 });
    console.log(`  gpg --homedir .dump-bag/gnupg --batch --import ${sh(rel(secretKey))}`);
    console.log(`  gpg --homedir .dump-bag/gnupg --batch --output ${out} --decrypt ${sh(file)}`);
  } else if (encryption !== 'none') {
    console.log(`  gpg --output ${out} --decrypt ${sh(file)}`);
  }
  console.log(`  pg_restore --list ${out} | head                 # what the dump holds`);
  console.log(`  createdb restored && pg_restore --no-owner -d restored ${out}   # into a server of yours`);
}

export async function run(): Promise<number> {
  const state = resolve('.dump-bag');
  const parts: DemoParts = {};
  try {
    await startParts(state, parts);
    const config = readConfig();
    console.log(`Backing up to s3://${config.bucket} …\n`);
    const started = performance.now();
    const results: DumpResult[] = [];
    const summary = await backupFromEnv({
      onResult: (r) => {
        results.push(r);
        console.log(
          r.status === 'ok'
            ? `  ok      ${r.database}  ${formatSize(r.bytes ?? 0)} in ${r.seconds.toFixed(1)} s`
            : `  FAILED  ${r.database}: ${r.error}`,
        );
      },
    });
    const seconds = (performance.now() - started) / 1000;
    if (summary.error) {
      console.error(`\nThe backup could not start: ${summary.error}`);
      return 1;
    }
    const peakMiB = process.resourceUsage().maxRSS / 1024;
    console.log(
      `\nBackup of ${results.length} database(s) took ${seconds.toFixed(1)} s; peak RSS of this process ${peakMiB.toFixed(0)} MiB.`,
    );
    printRestoreHints(state, results, config.bucket, config.encryption, parts);
    return summary.ok ? 0 : 1;
  } catch (error) {
    console.error(`dump-bag demo: ${errorMessage(error)}`);
    return 1;
  } finally {
    await parts.s3?.stop();
    await parts.postgres?.stop();
  }
}
