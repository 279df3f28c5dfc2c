/**
 * `npm run bench [-- --size reference|small] [--runs N] [--restore-runs N] [--no-shell] [--no-restore] [--no-stage] [--tag NAME] [--profile DIR]`
 *
 * Measures a full encrypted `dump-bag backup` against `pg_dump -Fc -Z1` alone, in turn (A B A B…),
 * on the reference workload of DESIGN.md, and prints and writes (`.dump-bag/bench/results-<size>.json`)
 * median wall time, their ratio, the backup process's own CPU time and peak RSS, stored bytes and MB/s.
 * Where gpg and the AWS CLI exist it also times the shell pipeline `pg_dump | gpg | aws s3 cp -`.
 * It then compares the encryption stage alone with `gpg -z 0`, and a restore from the bucket
 * (download → decrypt → pg_restore) with pg_restore from a local file.
 *
 * PostgreSQL: the PG* variables when PGHOST is set, else an embedded one with its data under
 * `.dump-bag/bench/postgres` (kept, so the workload is made once). The S3 API server runs in its own process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import * as openpgp from 'openpgp';
import pg from 'pg';
import { freePort, startLocalPostgres, startLocalS3 } from '../cli/local/services';
import { encryptStream } from '../functions/core/encrypt';
import { loadKeys } from '../functions/core/keys';
import { defaultCompression } from '../functions/core/pg-dump';
import { createS3Client } from '../functions/core/s3';
import {
  findChild,
  GNU_TIME,
  type Measured,
  machineTicks,
  measure,
  median,
  processCpuSeconds,
} from './measure';
import { ensureWorkload, WORKLOADS, type WorkloadSize } from './workload';

// The lockfile pins the SDK: its notice about future Node versions is no finding of the benchmark.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, '.dump-bag', 'bench');
const scratch = join(benchDir, 'tmp');
const BUCKET = 'dump-bag-bench';
const MB = 1_000_000;
const MiB = 1024 * 1024;

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: 'reference' },
    runs: { type: 'string', default: '3' },
    'restore-runs': { type: 'string', default: '2' },
    'no-shell': { type: 'boolean', default: false },
    'no-restore': { type: 'boolean', default: false },
    'no-stage': { type: 'boolean', default: false },
    /** Appended to the results file's name, e.g. `pg18` for a run with DUMP_BAG_PG_DUMP set. */
    tag: { type: 'string' },
    /** A folder for V8 CPU profiles of the backup processes (node --cpu-prof). */
    profile: { type: 'string' },
  },
});
if (!(flags.size in WORKLOADS)) {
  console.error(`bench: --size is ${Object.keys(WORKLOADS).join(' or ')}, got "${flags.size}"`);
  process.exit(2);
}
const size = flags.size as WorkloadSize;
const runs = Math.max(1, Number(flags.runs));
const restoreRuns = Math.max(1, Number(flags['restore-runs']));

const log = (line: string) => console.error(`[bench] ${line}`);
const have = (command: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

interface BackupRun {
  readonly wallSeconds: number;
  /** The backup process itself: its own user + system CPU, without pg_dump. */
  readonly cpuSeconds: number;
  /** Its children: pg_dump (and `pg_dump --version`), from GNU time. */
  readonly childCpuSeconds?: number;
  readonly peakRssBytes: number;
  readonly storedBytes: number;
  readonly s3ServerCpuSeconds?: number;
  readonly machineBusy?: number;
}

interface PgDumpRun {
  readonly wallSeconds: number;
  readonly cpuSeconds?: number;
  readonly machineBusy?: number;
}

async function main(): Promise<void> {
  mkdirSync(scratch, { recursive: true });
  const pgDump = process.env.DUMP_BAG_PG_DUMP || 'pg_dump';
  const pgRestore = process.env.DUMP_BAG_PG_DUMP
    ? join(dirname(process.env.DUMP_BAG_PG_DUMP), 'pg_restore')
    : 'pg_restore';

  // PostgreSQL: the caller's when PGHOST is set, else the embedded one whose data is kept between runs.
  const local = process.env.PGHOST ? undefined : await startLocalPostgres(join(benchDir, 'postgres'));
  const pgEnv: Record<string, string | undefined> = local
    ? { ...local.env }
    : {
        PGHOST: process.env.PGHOST,
        PGPORT: process.env.PGPORT,
        PGUSER: process.env.PGUSER,
        PGPASSWORD: process.env.PGPASSWORD,
        PGSSLMODE: process.env.PGSSLMODE,
      };
  const s3 = await startLocalS3(join(benchDir, 's3'), BUCKET);
  const s3Pid = findChild('s3-server');
  const client = createS3Client(s3.env);
  try {
    const workload = await ensureWorkload(pgEnv, size, log);
    log(`${workload.database}: ${(workload.sizeBytes / MB).toFixed(0)} MB on disk`);
    const keys = await benchKeys();
    const env: NodeJS.ProcessEnv = { ...process.env, ...pgEnv };
    const version = execFileSync(pgDump, ['--version'], { env }).toString().trim();

    // The plain archive once: its size is what stored bytes are compared with, and it is the local restore's input.
    const plainFile = join(benchDir, `${workload.database}.pgdump`);
    const plain = await measure([pgDump, '-Fc', '-Z1', '--no-sync', '-f', plainFile, workload.database], {
      env,
      scratch,
    });
    if (plain.code !== 0) throw new Error(`pg_dump failed: ${plain.stderr}`);
    const plainBytes = statSync(plainFile).size;
    log(`pg_dump -Fc -Z1: ${(plainBytes / MB).toFixed(1)} MB`);

    const loadAtStart = loadavg()[0];
    const shell = !flags['no-shell'] && have('gpg') && have('aws') && keys.gnupgHome !== undefined;
    const backups: BackupRun[] = [];
    const dumps: PgDumpRun[] = [];
    // What the backup asks pg_dump for (zstd from pg_dump 16 on), timed alone as well when it is not -Z1.
    const compression =
      process.env.DUMP_BAG_COMPRESSION ||
      defaultCompression(Number.parseInt(/(\d+)/.exec(version)?.[1] ?? '0', 10));
    const sameCompression: PgDumpRun[] = [];
    const shells: PgDumpRun[] = [];
    let lastKey: string | undefined;
    for (let i = 0; i < runs; i++) {
      await emptyBucket(client);
      const backup = await runBackup(env, s3, s3Pid, workload.database, keys.publicFile);
      backups.push(backup.run);
      lastKey = backup.key;
      log(
        `run ${i + 1}/${runs}: backup ${backup.run.wallSeconds.toFixed(2)} s (own CPU ${backup.run.cpuSeconds.toFixed(2)} s, peak RSS ${(backup.run.peakRssBytes / MiB).toFixed(0)} MiB)`,
      );
      const dump = await runPgDump(env, pgDump, workload.database);
      dumps.push(dump);
      log(`run ${i + 1}/${runs}: pg_dump ${dump.wallSeconds.toFixed(2)} s`);
      if (compression !== '1') {
        const same = await runPgDump(env, pgDump, workload.database, compression);
        sameCompression.push(same);
        log(`run ${i + 1}/${runs}: pg_dump -Z${compression} ${same.wallSeconds.toFixed(2)} s`);
      }
      if (shell && keys.gnupgHome) {
        const piped = await runShellPipeline(env, s3, pgDump, workload.database, keys);
        shells.push(piped);
        log(`run ${i + 1}/${runs}: pg_dump | gpg | aws s3 cp ${piped.wallSeconds.toFixed(2)} s`);
      }
    }

    const stage = flags['no-stage'] ? undefined : await encryptionStage(plainFile, keys);
    const restore =
      flags['no-restore'] || !lastKey
        ? undefined
        : await restoreComparison(
            env,
            s3.env,
            client,
            lastKey,
            keys,
            plainFile,
            pgRestore,
            workload.database,
          );

    const backupWall = median(backups.map((b) => b.wallSeconds));
    const dumpWall = median(dumps.map((d) => d.wallSeconds));
    const storedBytes = median(backups.map((b) => b.storedBytes));
    const result = {
      date: new Date().toISOString(),
      size,
      database: workload.database,
      rows: workload.rows,
      databaseBytes: workload.sizeBytes,
      pgDumpVersion: version,
      machine: {
        cpus: cpus().length,
        node: process.version,
        // Other work on the machine slows every figure; these say how busy it was and how fast it ran.
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg()[0],
        aes256CbcMBps: calibrate(),
      },
      runs,
      pgDumpZ1Bytes: plainBytes,
      backup: {
        medianWallSeconds: round(backupWall),
        ratioToPgDump: round(backupWall / dumpWall, 3),
        medianCpuSeconds: round(median(backups.map((b) => b.cpuSeconds))),
        medianPgDumpCpuSeconds: optionalMedian(backups.map((b) => b.childCpuSeconds)),
        peakRssMiB: round(Math.max(...backups.map((b) => b.peakRssBytes)) / MiB, 1),
        storedBytes,
        storedToPgDump: round(storedBytes / plainBytes, 4),
        mbPerSecond: round(storedBytes / MB / backupWall, 1),
        medianS3ServerCpuSeconds: optionalMedian(backups.map((b) => b.s3ServerCpuSeconds)),
        medianMachineBusy: optionalMedian(backups.map((b) => b.machineBusy)),
        runs: backups,
      },
      pgDump: {
        medianWallSeconds: round(dumpWall),
        medianCpuSeconds: optionalMedian(dumps.map((d) => d.cpuSeconds)),
        mbPerSecond: round(plainBytes / MB / dumpWall, 1),
        medianMachineBusy: optionalMedian(dumps.map((d) => d.machineBusy)),
        runs: dumps,
      },
      pgDumpSameCompression:
        sameCompression.length > 0
          ? {
              compression,
              medianWallSeconds: round(median(sameCompression.map((d) => d.wallSeconds))),
              ratioOfBackup: round(backupWall / median(sameCompression.map((d) => d.wallSeconds)), 3),
              runs: sameCompression,
            }
          : undefined,
      shellPipeline:
        shells.length > 0
          ? {
              command: 'pg_dump -Fc -Z1 | gpg -z0 -e -r KEY | aws s3 cp - s3://…',
              medianWallSeconds: round(median(shells.map((s) => s.wallSeconds))),
              ratioToPgDump: round(median(shells.map((s) => s.wallSeconds)) / dumpWall, 3),
              runs: shells,
            }
          : undefined,
      encryptionStage: stage,
      restore,
    };
    const other = join(benchDir, `results-${size === 'small' ? 'reference' : 'small'}.json`);
    if (existsSync(other)) {
      const theirs = JSON.parse(readFileSync(other, 'utf8')) as {
        size: string;
        backup: { peakRssMiB: number };
      };
      (result as Record<string, unknown>).peakRssComparedTo = {
        size: theirs.size,
        peakRssMiB: theirs.backup.peakRssMiB,
        difference: round(result.backup.peakRssMiB / theirs.backup.peakRssMiB - 1, 3),
      };
    }
    const out = join(
      benchDir,
      `results-${size}${flags.tag ? `-${flags.tag.replace(/[^\w.-]/g, '_')}` : ''}.json`,
    );
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    printTable(result, out);
  } finally {
    await s3.stop();
    await local?.stop();
  }
}

/** This machine's single-core AES-256-CBC speed, to compare runs made on different machines or days. */
function calibrate(): number {
  const cipher = createCipheriv('aes-256-cbc', randomBytes(32), Buffer.alloc(16)).setAutoPadding(false);
  const chunk = randomBytes(256 * 1024);
  const started = performance.now();
  for (let i = 0; i < 512; i++) cipher.update(chunk);
  return round((512 * chunk.length) / MB / ((performance.now() - started) / 1000), 0);
}

function optionalMedian(values: readonly (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length > 0 ? round(median(known)) : undefined;
}

interface BenchKeys {
  /** The armored public key the backup encrypts for. */
  readonly publicFile: string;
  readonly secretArmored: string;
  readonly secretFile: string;
  readonly fingerprint: string;
  /** A GNUPGHOME holding the key pair, when gpg is installed. */
  readonly gnupgHome?: string;
}

/** A Curve25519 key pair of the bench's own, made once; imported into a keyring of its own for gpg. */
async function benchKeys(): Promise<BenchKeys> {
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
  return {
    publicFile,
    secretArmored: readFileSync(secretFile, 'utf8'),
    secretFile,
    fingerprint: recipient.fingerprint,
    gnupgHome,
  };
}

/** Deletes every object the previous run left, so runs do not fill the disk. */
async function emptyBucket(client: S3Client): Promise<void> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  const objects = (listed.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
  if (objects.length > 0) {
    await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: objects } }));
  }
}

/**
 * One `dump-bag backup --json` as its own process, the way a user runs it. The preloaded probe
 * writes that process's own CPU and peak RSS at exit; GNU time adds its children's (pg_dump).
 */
async function runBackup(
  env: NodeJS.ProcessEnv,
  s3: Awaited<ReturnType<typeof startLocalS3>>,
  s3Pid: number | undefined,
  database: string,
  publicFile: string,
): Promise<{ run: BackupRun; key: string }> {
  const usageFile = join(scratch, `usage-${process.pid}.json`);
  rmSync(usageFile, { force: true });
  const s3Before = s3Pid ? processCpuSeconds(s3Pid) : undefined;
  const ticksBefore = machineTicks();
  const measured = await measure(
    [
      process.execPath,
      ...(flags.profile ? ['--cpu-prof', '--cpu-prof-dir', resolve(flags.profile)] : []),
      '--import',
      pathToFileURL(join(root, 'bench', 'probe.mjs')).href,
      join(root, 'bin', 'dump-bag.js'),
      'backup',
      '--json',
    ],
    {
      env: {
        ...env,
        ...s3.env,
        DUMP_BAG_DATABASES: database.replace(/,/g, '\\,'),
        DUMP_BAG_ENCRYPTION: 'gpg',
        DUMP_BAG_PUBLIC_KEYS: publicFile,
        DUMP_BAG_BENCH_USAGE_FILE: usageFile,
      },
      scratch,
    },
  );
  const ticksAfter = machineTicks();
  const s3After = s3Pid ? processCpuSeconds(s3Pid) : undefined;
  if (measured.code !== 0) {
    throw new Error(`dump-bag backup exited ${measured.code}: ${measured.stdout}${measured.stderr}`);
  }
  const summary = JSON.parse(measured.stdout) as { databases: { key: string; bytes: number }[] };
  const entry = summary.databases[0];
  if (!entry) throw new Error(`dump-bag backup reported no database: ${measured.stdout}`);
  const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as {
    userSeconds: number;
    systemSeconds: number;
    maxRssBytes: number;
  };
  const cpuSeconds = usage.userSeconds + usage.systemSeconds;
  return {
    key: entry.key,
    run: {
      wallSeconds: round(measured.wallSeconds, 3),
      cpuSeconds: round(cpuSeconds, 3),
      childCpuSeconds:
        measured.cpuSecondsWithChildren === undefined
          ? undefined
          : round(measured.cpuSecondsWithChildren - cpuSeconds, 3),
      peakRssBytes: usage.maxRssBytes,
      storedBytes: entry.bytes,
      s3ServerCpuSeconds:
        s3Before !== undefined && s3After !== undefined ? round(s3After - s3Before, 2) : undefined,
      machineBusy: busyShare(ticksBefore, ticksAfter),
    },
  };
}

function busyShare(
  before: ReturnType<typeof machineTicks>,
  after: ReturnType<typeof machineTicks>,
): number | undefined {
  if (!before || !after || after.total === before.total) return undefined;
  return round((after.busy - before.busy) / (after.total - before.total), 3);
}

async function runPgDump(
  env: NodeJS.ProcessEnv,
  pgDump: string,
  database: string,
  compression = '1',
): Promise<PgDumpRun> {
  const before = machineTicks();
  const measured = await measure(
    [pgDump, '-Fc', `-Z${compression}`, '--no-sync', '-f', '/dev/null', database],
    {
      env,
      scratch,
    },
  );
  if (measured.code !== 0) throw new Error(`pg_dump exited ${measured.code}: ${measured.stderr}`);
  return {
    wallSeconds: round(measured.wallSeconds, 3),
    cpuSeconds: measured.cpuSecondsWithChildren,
    machineBusy: busyShare(before, machineTicks()),
  };
}

/** The pipeline a shell script would use; only the shell holds the pipes, the commands are fixed. */
async function runShellPipeline(
  env: NodeJS.ProcessEnv,
  s3: Awaited<ReturnType<typeof startLocalS3>>,
  pgDump: string,
  database: string,
  keys: BenchKeys,
): Promise<PgDumpRun> {
  const before = machineTicks();
  const measured: Measured = await measure(
    [
      'bash',
      '-c',
      'set -o pipefail; "$PG_DUMP" -Fc -Z1 "$DB" | gpg --homedir "$GNUPGHOME" --batch --trust-model always -z 0 -e -r "$KEY" | aws s3 cp - "s3://$BUCKET/shell/$DB.pg.gpg" --endpoint-url "$AWS_ENDPOINT_URL_S3" --only-show-errors',
    ],
    {
      env: {
        ...env,
        ...s3.env,
        PG_DUMP: pgDump,
        DB: database,
        GNUPGHOME: keys.gnupgHome,
        KEY: keys.fingerprint,
        BUCKET,
      },
      scratch,
    },
  );
  if (measured.code !== 0) throw new Error(`the shell pipeline exited ${measured.code}: ${measured.stderr}`);
  return { wallSeconds: round(measured.wallSeconds, 3), machineBusy: busyShare(before, machineTicks()) };
}

/** The encryption stage alone on the same bytes: encryptStream against `gpg -z 0`, best of three. */
async function encryptionStage(plainFile: string, keys: BenchKeys) {
  const bytes = statSync(plainFile).size;
  const [recipient] = await loadKeys(keys.publicFile);
  if (!recipient) throw new Error('no bench key');
  const ours: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const encrypted = await encryptStream(createReadStream(plainFile, { highWaterMark: 64 * 1024 }), {
      mode: 'gpg',
      recipients: [recipient],
    });
    // Drained chunk by chunk, as the upload takes them (an async iterator would join them into new Buffers).
    encrypted.resume();
    await finished(encrypted);
    ours.push((performance.now() - started) / 1000);
  }
  const stage: Record<string, number | string> = {
    inputBytes: bytes,
    encryptStreamMBps: round(bytes / MB / Math.min(...ours), 1),
  };
  if (keys.gnupgHome) {
    const theirs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const measured = await measure(
        [
          'gpg',
          '--homedir',
          keys.gnupgHome,
          '--batch',
          '--yes',
          '--trust-model',
          'always',
          '-z',
          '0',
          '-e',
          '-r',
          keys.fingerprint,
          '-o',
          '/dev/null',
          plainFile,
        ],
        { scratch },
      );
      if (measured.code !== 0) throw new Error(`gpg exited ${measured.code}: ${measured.stderr}`);
      theirs.push(measured.wallSeconds);
    }
    stage.gpgMBps = round(bytes / MB / Math.min(...theirs), 1);
  }
  log(
    `encryption stage: encryptStream ${stage.encryptStreamMBps} MB/s, gpg -z 0 ${stage.gpgMBps ?? '-'} MB/s`,
  );
  return stage;
}

async function recreate(env: NodeJS.ProcessEnv, database: string): Promise<void> {
  const admin = new pg.Client({
    host: env.PGHOST,
    port: env.PGPORT ? Number(env.PGPORT) : undefined,
    user: env.PGUSER,
    password: env.PGPASSWORD,
    database: 'postgres',
  });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)}`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
}

/** `dump-bag serve` on a free loopback port, for `dump-bag get`; resolves once it answers. */
async function startServe(env: NodeJS.ProcessEnv): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'bin', 'dump-bag.js'), 'serve', '--port', String(port)], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`dump-bag serve exited with code ${child.exitCode}`);
    const answered = await fetch(`${url}/recipients`).then(
      (r) => r.ok,
      () => false,
    );
    if (answered) return { url, stop: () => child.kill('SIGTERM') };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error('dump-bag serve did not answer within 20 s');
}

/**
 * Restore from the bucket against pg_restore of the plain archive from a local file, in turn, into a
 * fresh database each time. From the bucket means `dump-bag get --restore` (presigned download →
 * SHA-256 check → decrypt → pg_restore --single-transaction) when the command exists, else the same
 * pieces in this process; the local pg_restore gets the same flags.
 */
async function restoreComparison(
  env: NodeJS.ProcessEnv,
  s3Env: Record<string, string>,
  client: S3Client,
  key: string,
  keys: BenchKeys,
  plainFile: string,
  pgRestore: string,
  database: string,
) {
  const target = `${database}_restore`;
  const flags = ['--no-owner', '--single-transaction', '--exit-on-error'];
  const viaGet = existsSync(join(root, 'cli', 'commands', 'get.ts'));
  const serve = viaGet
    ? await startServe({
        ...env,
        ...s3Env,
        DUMP_BAG_ENCRYPTION: 'gpg',
        DUMP_BAG_PUBLIC_KEYS: keys.publicFile,
      })
    : undefined;
  const fromBucket: number[] = [];
  const fromFile: number[] = [];
  try {
    for (let i = 0; i < restoreRuns; i++) {
      await recreate(env, target);
      let started = performance.now();
      if (serve) {
        const got = await measure(
          [
            process.execPath,
            join(root, 'bin', 'dump-bag.js'),
            'get',
            database,
            'latest',
            '--restore',
            `dbname=${target}`,
            '--key',
            keys.secretFile,
            '--url',
            serve.url,
          ],
          { env: { ...env, DUMP_BAG_SECRET_KEY: undefined }, scratch },
        );
        if (got.code !== 0) throw new Error(`dump-bag get --restore exited ${got.code}: ${got.stderr}`);
      } else {
        await restoreInProcess(env, client, key, keys, [...flags, '-d', target], pgRestore);
      }
      fromBucket.push((performance.now() - started) / 1000);
      log(`restore ${i + 1}/${restoreRuns}: from the bucket ${fromBucket.at(-1)?.toFixed(2)} s`);

      await recreate(env, target);
      started = performance.now();
      const local = await measure([pgRestore, ...flags, '-d', target, plainFile], { env, scratch });
      if (local.code !== 0) throw new Error(`pg_restore from a file exited ${local.code}: ${local.stderr}`);
      fromFile.push(local.wallSeconds);
      log(`restore ${i + 1}/${restoreRuns}: pg_restore from a local file ${local.wallSeconds.toFixed(2)} s`);
    }
  } finally {
    serve?.stop();
  }
  const bucketWall = median(fromBucket);
  const fileWall = median(fromFile);
  return {
    command: viaGet
      ? 'dump-bag get DB latest --restore, against pg_restore --single-transaction FILE'
      : 'GetObject → openpgp.decrypt → pg_restore (stdin), against pg_restore FILE',
    fromBucketMedianSeconds: round(bucketWall),
    fromFileMedianSeconds: round(fileWall),
    speedRelativeToFile: round(fileWall / bucketWall, 3),
    fromBucket: fromBucket.map((s) => round(s, 3)),
    fromFile: fromFile.map((s) => round(s, 3)),
  };
}

/** download → OpenPGP decrypt → pg_restore, streamed, in this process (when `dump-bag get` is absent). */
async function restoreInProcess(
  env: NodeJS.ProcessEnv,
  client: S3Client,
  key: string,
  keys: BenchKeys,
  args: string[],
  pgRestore: string,
): Promise<void> {
  const decryptionKey = await openpgp.readPrivateKey({ armoredKey: keys.secretArmored });
  const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const message = await openpgp.readMessage({
    binaryMessage: Readable.toWeb(object.Body as Readable) as unknown as ReadableStream<Uint8Array>,
  });
  const decrypted = await openpgp.decrypt({
    message,
    decryptionKeys: decryptionKey,
    format: 'binary',
    // Streamed into pg_restore: a failed integrity check at the end fails the restore (exit status).
    config: { allowUnauthenticatedStream: true },
  });
  const restore = spawn(pgRestore, args, { env, stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = once(restore, 'close');
  await pipeline(
    Readable.fromWeb(decrypted.data as unknown as NodeWebReadableStream<Uint8Array>),
    restore.stdin,
  );
  const [code] = (await exited) as [number | null];
  if (code !== 0) throw new Error(`pg_restore from the bucket exited ${code}`);
}

type Result = Record<string, unknown> & {
  backup: { [k: string]: unknown };
  pgDump: { [k: string]: unknown };
};

function printTable(result: Result, out: string): void {
  const b = result.backup;
  const d = result.pgDump;
  const rows: [string, string][] = [
    [
      'workload',
      `${result.database}: ${result.rows} rows, ${((result.databaseBytes as number) / MB).toFixed(0)} MB on disk`,
    ],
    ['pg_dump -Fc -Z1 → /dev/null, median', `${d.medianWallSeconds} s (${d.mbPerSecond} MB/s)`],
    ['dump-bag backup (encrypted, to S3), median', `${b.medianWallSeconds} s (${b.mbPerSecond} MB/s)`],
    ['ratio backup / pg_dump', `${b.ratioToPgDump} ×`],
    ['backup process CPU (own, pg_dump excluded)', `${b.medianCpuSeconds} s`],
    ['backup process peak RSS', `${b.peakRssMiB} MiB`],
    [
      'stored bytes / pg_dump -Z1 bytes',
      `${((b.storedBytes as number) / MB).toFixed(1)} MB / ${((result.pgDumpZ1Bytes as number) / MB).toFixed(1)} MB = ${b.storedToPgDump}`,
    ],
  ];
  const compared = result.peakRssComparedTo as
    | { size: string; peakRssMiB: number; difference: number }
    | undefined;
  if (compared) {
    rows.push([
      `peak RSS against the ${compared.size} workload`,
      `${b.peakRssMiB} / ${compared.peakRssMiB} MiB (${compared.difference >= 0 ? '+' : ''}${(compared.difference * 100).toFixed(1)} %)`,
    ]);
  }
  if (b.medianS3ServerCpuSeconds !== undefined)
    rows.push(['S3 server CPU per backup', `${b.medianS3ServerCpuSeconds} s`]);
  const same = result.pgDumpSameCompression as
    | { compression: string; medianWallSeconds: number; ratioOfBackup: number }
    | undefined;
  if (same) {
    rows.push([
      `pg_dump -Z${same.compression} (the backup's compression)`,
      `${same.medianWallSeconds} s (backup ${same.ratioOfBackup} ×)`,
    ]);
  }
  const shell = result.shellPipeline as { medianWallSeconds: number; ratioToPgDump: number } | undefined;
  if (shell)
    rows.push([
      'pg_dump | gpg -z0 -e | aws s3 cp -',
      `${shell.medianWallSeconds} s (${shell.ratioToPgDump} ×)`,
    ]);
  const stage = result.encryptionStage as { encryptStreamMBps: number; gpgMBps?: number } | undefined;
  if (stage)
    rows.push([
      'encryption alone: encryptStream / gpg -z 0',
      `${stage.encryptStreamMBps} / ${stage.gpgMBps ?? '-'} MB/s`,
    ]);
  const restore = result.restore as
    | { fromBucketMedianSeconds: number; fromFileMedianSeconds: number; speedRelativeToFile: number }
    | undefined;
  if (restore) {
    rows.push([
      'restore: bucket→decrypt→pg_restore / local file',
      `${restore.fromBucketMedianSeconds} s / ${restore.fromFileMedianSeconds} s (${restore.speedRelativeToFile} × the speed)`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'));
  const machine = result.machine as { loadAverageAtStart: number; aes256CbcMBps: number };
  console.log(
    `\nmachine: load average ${machine.loadAverageAtStart} at start, AES-256-CBC ${machine.aes256CbcMBps} MB/s on one core`,
  );
  console.log(`written to ${out}${GNU_TIME ? '' : ' (no /usr/bin/time: pg_dump CPU not measured)'}`);
}

await main();
