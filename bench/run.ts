/**
 * `npm run bench -- [--size reference|small] [--runs N] [--s3 sink] [--s3 local] [--one-core]
 *   [--restore-runs N] [--no-shell] [--no-restore] [--no-rekey] [--no-stage] [--layer] [--tag NAME]
 *   [--profile DIR]`
 *
 * Runs the scenarios of bench/scenarios/ on the workload (bench/workload.ts) in turn, A B A B: for
 * each S3 choice a full encrypted `dump-bag backup` (its own process), then `pg_dump` alone with the
 * backup's compression; the shell pipeline where gpg and the AWS CLI exist; then the encryption stage
 * alone, a restore and a rekey. Prints the figures and writes them, with every run, to
 * `.dump-bag/bench/results-<size>[-one-core][-<tag>].json`. bench/README.md says what each means.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startLocalPostgres } from '../cli/local/services';
import { defaultCompression } from '../functions/core/pg-dump';
import { type BenchKeys, benchKeys, leaverKey } from './keys';
import { withLayerTools } from './layer';
import { have, measure, round } from './measure';
import { ONE_CORE, pinServer } from './pin';
import { type BenchResult, peakRssAgainst, printResult, type Rounds, summarizeRounds } from './report';
import { parseS3Choices, type S3Choice, type S3Target, startS3Target } from './s3-targets';
import { backupOnce } from './scenarios/backup';
import { encryptionStage } from './scenarios/encryption-stage';
import type { KeptDumpScenario } from './scenarios/kept-dump';
import { pgDumpAlone } from './scenarios/pg-dump';
import { type RekeyComparison, rekeyComparison } from './scenarios/rekey';
import { type RestoreComparison, restoreComparison } from './scenarios/restore';
import { SHELL_PIPELINE, shellPipeline } from './scenarios/shell-pipeline';
import { ensureWorkload, WORKLOADS, type WorkloadSize } from './workload';

// The lockfile pins the SDK: its notice about future Node versions is no finding of the benchmark.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, '.dump-bag', 'bench');
const scratch = join(benchDir, 'tmp');
const log = (line: string) => console.error(`[bench] ${line}`);

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: 'reference' },
    runs: { type: 'string', default: '3' },
    /** sink (reads and discards, as AWS S3 costs the client) and/or local (hashes and stores). */
    s3: { type: 'string', multiple: true, default: ['sink'] },
    /** pg_dump and the backup on CPU 0, the database server on CPU 1: a dump Lambda's one vCPU. */
    'one-core': { type: 'boolean', default: false },
    'restore-runs': { type: 'string', default: '2' },
    'no-shell': { type: 'boolean', default: false },
    'no-restore': { type: 'boolean', default: false },
    'no-rekey': { type: 'boolean', default: false },
    'no-stage': { type: 'boolean', default: false },
    /** The pg_dump layer's tools (bench/layer.ts), as the dump function runs them; else DUMP_BAG_PG_DUMP or the PATH's. */
    layer: { type: 'boolean', default: false },
    /** Appended to the results file's name, e.g. `pg18` for a run with DUMP_BAG_PG_DUMP set. */
    tag: { type: 'string' },
    /** A folder for V8 CPU profiles of the backup and `get --restore` processes (node --cpu-prof). */
    profile: { type: 'string' },
  },
});

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} is a whole number from 1, got "${value}"`);
  return n;
}

/** This machine's single-core AES-256-CBC speed, to compare runs made on different machines or days. */
function calibrate(): number {
  const cipher = createCipheriv('aes-256-cbc', randomBytes(32), Buffer.alloc(16)).setAutoPadding(false);
  const chunk = randomBytes(256 * 1024);
  const started = performance.now();
  for (let i = 0; i < 512; i++) cipher.update(chunk);
  return round((512 * chunk.length) / 1e6 / ((performance.now() - started) / 1000), 0);
}

/** The command's settings, checked before anything starts. */
interface Options {
  readonly size: WorkloadSize;
  readonly runs: number;
  readonly restoreRuns: number;
  readonly choices: readonly S3Choice[];
  readonly oneCore: boolean;
  /** A command prefix such as `taskset -c 0`. */
  readonly pin?: readonly string[];
  readonly pgDump: string;
  readonly pgRestore: string;
}

function readOptions(): Options {
  if (!(flags.size in WORKLOADS))
    throw new Error(`--size is ${Object.keys(WORKLOADS).join(' or ')}, got "${flags.size}"`);
  const oneCore = flags['one-core'];
  if (oneCore && !have('taskset')) throw new Error('--one-core needs taskset (util-linux)');
  const pgDumpEnv = process.env.DUMP_BAG_PG_DUMP;
  return {
    size: flags.size as WorkloadSize,
    runs: positive('runs', flags.runs),
    restoreRuns: positive('restore-runs', flags['restore-runs']),
    choices: parseS3Choices(flags.s3),
    oneCore,
    pin: oneCore ? ['taskset', '-c', ONE_CORE.dump] : undefined,
    pgDump: pgDumpEnv || 'pg_dump',
    pgRestore: pgDumpEnv ? join(dirname(pgDumpEnv), 'pg_restore') : 'pg_restore',
  };
}

/** What every scenario of one round shares. */
interface Common {
  readonly env: NodeJS.ProcessEnv;
  readonly scratch: string;
  readonly pgDump: string;
  readonly database: string;
  readonly pin?: readonly string[];
}

/** The A B A B rounds: a backup per S3 target, pg_dump alone (and at -Z1), the shell pipeline. */
async function runRounds(
  options: Options,
  common: Common,
  targets: readonly S3Target[],
  keys: BenchKeys,
  compression: string,
): Promise<Rounds> {
  const { runs } = options;
  const rounds: Rounds = {
    backups: new Map(options.choices.map((c) => [c, []])),
    dumps: [],
    dumpsZ1: [],
    shells: [],
  };
  const shellTarget = targets[0];
  const gnupgHome = !flags['no-shell'] && have('gpg') && have('aws') ? keys.gnupgHome : undefined;
  for (let i = 0; i < runs; i++) {
    for (const s3 of targets) {
      await s3.empty();
      const run = await backupOnce({
        ...common,
        root,
        s3,
        publicFile: keys.publicFile,
        profile: flags.profile,
      });
      rounds.backups.get(s3.choice)?.push(run);
      log(
        `run ${i + 1}/${runs}: backup, S3 ${s3.choice}: ${run.wallSeconds.toFixed(2)} s, own CPU ${run.cpuSeconds.toFixed(2)} s (cipher and hash floor ${run.cryptoFloorSeconds.toFixed(2)} s), peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
      );
    }
    const dump = await pgDumpAlone({ ...common, compression });
    rounds.dumps.push(dump);
    log(`run ${i + 1}/${runs}: pg_dump -Z${compression} ${dump.wallSeconds.toFixed(2)} s`);
    if (compression !== '1') rounds.dumpsZ1.push(await pgDumpAlone({ ...common, compression: '1' }));
    if (gnupgHome && shellTarget) {
      const piped = await shellPipeline({
        ...common,
        s3: shellTarget,
        gnupgHome,
        fingerprint: keys.fingerprint,
      });
      rounds.shells.push(piped);
      log(`run ${i + 1}/${runs}: ${SHELL_PIPELINE} ${piped.wallSeconds.toFixed(2)} s`);
    }
  }
  return rounds;
}

/** What a scenario reading the stored dump back needs, unless it is skipped or no S3 target keeps the dump. */
function keptDump(
  what: string,
  skipped: boolean,
  common: Common,
  targets: readonly S3Target[],
  keys: BenchKeys,
): KeptDumpScenario | undefined {
  if (skipped) return undefined;
  const s3 = targets.find((t) => t.choice === 'local');
  if (!s3) log(`${what} skipped: it needs --s3 local (the sink keeps no dump)`);
  return s3 && { root, scratch: common.scratch, env: common.env, s3, keys, database: common.database, log };
}

/** The restore comparison, when asked for and an S3 target keeps the dump. */
async function restoreIfKept(
  options: Options,
  common: Common,
  targets: readonly S3Target[],
  keys: BenchKeys,
  plainFile: string,
): Promise<RestoreComparison | undefined> {
  const kept = keptDump('restore', flags['no-restore'], common, targets, keys);
  if (!kept) return undefined;
  return await restoreComparison({
    ...kept,
    plainFile,
    pgRestore: options.pgRestore,
    runs: options.restoreRuns,
    profile: flags.profile,
  });
}

/** The rekey against a whole download and upload, when an S3 target keeps the dump. */
async function rekeyIfKept(
  common: Common,
  targets: readonly S3Target[],
  keys: BenchKeys,
): Promise<RekeyComparison | undefined> {
  const kept = keptDump('rekey', flags['no-rekey'], common, targets, keys);
  if (!kept) return undefined;
  const leaver = await leaverKey(benchDir);
  return await rekeyComparison({ ...kept, leaverPublicFile: leaver.publicFile });
}

function resultsSuffix(oneCore: boolean): string {
  return `${oneCore ? '-one-core' : ''}${flags.tag ? `-${flags.tag.replace(/[^\w.-]/g, '_')}` : ''}`;
}

async function main(): Promise<void> {
  const given = readOptions();
  mkdirSync(scratch, { recursive: true });

  // PostgreSQL: the caller's when PGHOST is set, else the embedded one whose data is kept between runs.
  const local = process.env.PGHOST ? undefined : await startLocalPostgres(join(benchDir, 'postgres'));
  const targets: S3Target[] = [];
  try {
    for (const choice of given.choices) targets.push(await startS3Target(choice, benchDir));
    const serverEnv: NodeJS.ProcessEnv = { ...process.env, ...local?.env };
    const { options, env } = flags.layer
      ? await withLayerTools(given, serverEnv, scratch, log)
      : { options: given, env: serverEnv };
    const { size, oneCore, pgDump } = options;
    const workload = await ensureWorkload(env, size, log);
    log(`${workload.database}: ${(workload.sizeBytes / 1e6).toFixed(0)} MB on disk`);
    if (oneCore)
      log(
        `one core: PostgreSQL (postmaster ${await pinServer(env, ONE_CORE.server)}) on CPU ${ONE_CORE.server}, pg_dump and the backup on CPU ${ONE_CORE.dump}`,
      );
    const keys = await benchKeys(benchDir);
    const version = execFileSync(pgDump, ['--version'], { env }).toString().trim();
    const compression =
      process.env.DUMP_BAG_COMPRESSION ||
      defaultCompression(Number.parseInt(/(\d+)/.exec(version)?.[1] ?? '0', 10));

    // The plain archive once: what stored bytes are compared with, and the local restore's input.
    const plainFile = join(benchDir, `${workload.database}.pgdump`);
    const plain = await measure(
      [pgDump, '-Fc', `--compress=${compression}`, '--no-sync', '-f', plainFile, workload.database],
      { env, scratch },
    );
    if (plain.code !== 0) throw new Error(`pg_dump failed: ${plain.stderr}`);
    const plainBytes = statSync(plainFile).size;

    const loadAtStart = loadavg()[0] ?? 0;
    const common: Common = { env, scratch, pgDump, database: workload.database, pin: options.pin };
    const rounds = await runRounds(options, common, targets, keys, compression);
    const stage = flags['no-stage'] ? undefined : await encryptionStage(plainFile, keys, scratch);
    const restore = await restoreIfKept(options, common, targets, keys, plainFile);
    const rekey = await rekeyIfKept(common, targets, keys);

    const result: BenchResult = {
      date: new Date().toISOString(),
      size,
      database: workload.database,
      rows: workload.rows,
      databaseBytes: workload.sizeBytes,
      pgDumpVersion: version,
      compression,
      oneCore,
      // Other work on the machine slows every figure; these say how busy it was and how fast it ran.
      machine: {
        cpus: cpus().length,
        node: process.version,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg()[0] ?? 0,
        aes256CbcMBps: calibrate(),
      },
      plainBytes,
      ...summarizeRounds(rounds, oneCore, workload.sizeBytes),
      encryptionStage: stage,
      restore,
      rekey,
    };
    const suffix = resultsSuffix(oneCore);
    result.peakRssComparedTo = peakRssAgainst(
      result,
      join(benchDir, `results-${size === 'small' ? 'reference' : 'small'}${suffix}.json`),
    );
    const out = join(benchDir, `results-${size}${suffix}.json`);
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    printResult(result, out);
  } finally {
    for (const target of targets) await target.stop();
    await local?.stop();
  }
}

await main();
