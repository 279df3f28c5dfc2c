import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { localDumpStarter } from '../../cli/commands/serve';
import { createApiServer, listenLoopback } from '../../cli/http-adapter';
import { createApp, keySources } from '../../functions/api/app';
import { type BackupSummary, type BackupTarget, runBackup } from '../../functions/core/backup';
import type { DumpBagConfig, RetentionPolicy } from '../../functions/core/config';
import { loadLocalSigner } from '../../functions/core/signing';
import { pgConnection, s3Client, services } from './env';
import { type ProcessResult, runProcess } from './process';
import { TEST_CONFIG_HOME, TEST_SIGNING_KEY_FILE, testSigner } from './signing';
import { tempDir as makeTempDir } from './temp';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A short random suffix that keeps database names of parallel test files apart. */
export function uniqueSuffix(): string {
  return randomBytes(3).toString('hex');
}

export interface KeyPair {
  readonly name: string;
  readonly email: string;
  readonly fingerprint: string;
  readonly publicKey: string;
  readonly secretKey: string;
}

/** An OpenPGP key pair made by openpgp.js; with a passphrase the secret key is protected by it. */
export async function keyPair(name: string, email: string, passphrase?: string): Promise<KeyPair> {
  const pair = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name, email }],
    passphrase,
    format: 'armored',
  });
  const key = await openpgp.readKey({ armoredKey: pair.publicKey });
  return {
    name,
    email,
    fingerprint: key.getFingerprint().toUpperCase(),
    publicKey: pair.publicKey,
    secretKey: pair.privateKey,
  };
}

/** A temporary folder, removed when the test file ends (test/support/temp.ts). */
export function tempDir(prefix = 'dump-bag-client-'): string {
  return makeTempDir(prefix);
}

/** Writes each public key as `<email>.asc` into a new folder and returns the folder. */
export function keyFolder(pairs: readonly KeyPair[]): string {
  const dir = tempDir('dump-bag-keys-');
  for (const p of pairs) writeFileSync(join(dir, `${p.email}.asc`), p.publicKey);
  return dir;
}

export const RETENTION: RetentionPolicy = { retentionDays: 30, manualRetentionDays: 7, keepMin: 3 };

/** A backup target on the shared PostgreSQL and S3 server. */
export function backupTarget(bucket: string, retention: RetentionPolicy = RETENTION): BackupTarget {
  return {
    s3: s3Client(),
    bucket,
    connection: pgConnection(),
    pgDump: {},
    retention,
    signer: testSigner(),
  };
}

/** Dumps the named databases with the core, as the scheduled backup would. */
export async function makeDumps(
  bucket: string,
  databases: readonly string[],
  config: Partial<DumpBagConfig>,
  options: { trigger?: 'schedule' | 'manual'; retention?: RetentionPolicy } = {},
): Promise<BackupSummary> {
  const summary = await runBackup(backupTarget(bucket, options.retention), {
    config: { exclude: [], encryption: 'gpg', ...config, databases },
    trigger: options.trigger ?? 'schedule',
  });
  const failed = summary.results.filter((r) => r.status !== 'ok');
  if (summary.error || failed.length > 0 || summary.results.length !== databases.length) {
    throw new Error(
      `backup failed: ${summary.error ?? failed.map((r) => `${r.database}: ${r.error}`).join('; ')}`,
    );
  }
  return summary;
}

/** The environment `dump-bag serve` and the client read, for a bag on the shared services. */
export function bagEnv(bucket: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...services().env,
    DUMP_BAG_BUCKET: bucket,
    DUMP_BAG_SIGNING_KEY_FILE: TEST_SIGNING_KEY_FILE,
    ...extra,
  };
}

export interface RunningBag {
  readonly url: string;
  readonly port: number;
  /** Waits for on-demand dumps started through POST to finish. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** `dump-bag serve`'s app and adapter in this process, on a free loopback port. */
export async function startBag(env: Record<string, string>, wantedPort = 0): Promise<RunningBag> {
  const { readApiSettings } = await import('../../functions/api/settings');
  const { createS3Client } = await import('../../functions/core/s3');
  const settings = readApiSettings(env);
  const dumps = localDumpStarter({ ...process.env, ...env });
  const app = createApp({
    s3: createS3Client(env),
    bucket: settings.bucket,
    retention: settings.retention,
    urlExpirySeconds: settings.urlExpirySeconds,
    ...keySources(settings),
    signingKey: () =>
      loadLocalSigner(env.DUMP_BAG_SIGNING_KEY_FILE ?? TEST_SIGNING_KEY_FILE, {
        create: true,
      }).publicKeyPem(),
    startDump: dumps.startDump,
    logger: { info: () => {}, error: (message, attributes) => console.error(message, attributes) },
  });
  const server = createApiServer(app);
  const port = await listenLoopback(server, wantedPort);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    idle: dumps.idle,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** A request whose path goes out byte for byte: no normalizing of dot segments, no encoding. */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** What `dump-bag` exited with and wrote. */
export type CliResult = ProcessResult;

/** Runs `dump-bag <args>` as a user would, with only the given environment added to PATH and HOME. */
export function runCli(
  args: readonly string[],
  env: Record<string, string>,
  options: { cwd?: string; input?: Buffer } = {},
): Promise<CliResult> {
  testSigner();
  return runProcess(
    process.execPath,
    [join(root, 'bin', 'dump-bag.js'), ...args],
    {
      cwd: options.cwd ?? root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        // Pins and keys in the test's own config directory; backups sign with the tests' bag key.
        XDG_CONFIG_HOME: TEST_CONFIG_HOME,
        DUMP_BAG_SIGNING_KEY_FILE: TEST_SIGNING_KEY_FILE,
        ...env,
      },
    },
    options.input,
  );
}
