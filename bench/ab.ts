/**
 * Backups under several settings, in turn, to compare one lever at a time:
 *
 *   node --import tsx bench/ab.ts [--rounds 4] [--size reference|small|tiny] [--s3 sink|local] \
 *     '{"8x4":{"DUMP_BAG_PART_SIZE_MIB":"8","DUMP_BAG_UPLOAD_CONCURRENCY":"4"},"6x3":{}}'
 *
 * Each variant is environment variables for the backup process; `BIN` names another checkout's
 * bin/dump-bag.js (e.g. an older commit unpacked with `git archive`) to compare code. Prints the median
 * and range of wall time, own CPU and peak RSS of each.
 *
 * With `--restore` (and the local S3 server, which keeps the dump) it backs up once, then compares
 * `get --restore` of that dump under each variant, each beside a pg_restore of the same archive from a file.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startLocalPostgres } from '../cli/local/services';
import { type BenchKeys, benchKeys } from './keys';
import { measure, median, range } from './measure';
import { parseS3Choices, startS3Target } from './s3-targets';
import { backupOnce } from './scenarios/backup';
import { restoreComparison } from './scenarios/restore';
import { ensureWorkload, WORKLOADS, type WorkloadSize } from './workload';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, '.dump-bag', 'bench');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '4' },
    size: { type: 'string', default: 'reference' },
    s3: { type: 'string', default: 'sink' },
    restore: { type: 'boolean', default: false },
  },
});
const variants = JSON.parse(positionals[0] ?? '{}') as Record<string, Record<string, string>>;
const rounds = Number(values.rounds);
if (Object.keys(variants).length === 0 || !(values.size in WORKLOADS) || !(rounds >= 1)) {
  console.error(
    'usage: bench/ab.ts [--rounds N] [--size reference|small|tiny] [--s3 sink|local] \'{"name":{"ENV":"value"},…}\'',
  );
  process.exit(2);
}
const [choice = 'sink'] = parseS3Choices([values.s3]);
if (values.restore && choice !== 'local') {
  console.error('bench/ab.ts --restore needs --s3 local: the sink keeps no dump to restore');
  process.exit(2);
}

/** `get --restore` of one stored dump under each variant, in turn, each beside pg_restore from a file. */
async function compareRestores(pgEnv: NodeJS.ProcessEnv, database: string, keys: BenchKeys): Promise<void> {
  const scratch = join(benchDir, 'tmp');
  const env = { ...process.env, ...pgEnv };
  const backup = await backupOnce({ root, scratch, env, s3, database, publicFile: keys.publicFile });
  const plainFile = join(scratch, `${database}-ab.pgdump`);
  const plain = await measure(['pg_dump', '-Fc', '-Z1', '--no-sync', '-f', plainFile, database], {
    env,
    scratch,
  });
  if (plain.code !== 0) throw new Error(`pg_dump failed: ${plain.stderr}`);
  console.error(`[ab] stored ${(backup.storedBytes / 1e6).toFixed(1)} MB (${backup.key})`);
  const results: Record<string, { bucket: number[]; file: number[] }> = {};
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [name, variant] of Object.entries(variants)) {
        const compared = await restoreComparison({
          root: variant.BIN ? resolve(dirname(variant.BIN), '..') : root,
          scratch,
          env: { ...env, ...variant },
          s3,
          keys,
          database,
          log: (line) => console.error(`[ab] ${round + 1}/${rounds} ${name}: ${line}`),
          plainFile,
          pgRestore: 'pg_restore',
          runs: 1,
        });
        results[name] ??= { bucket: [], file: [] };
        results[name].bucket.push(compared.fromBucketMedianSeconds);
        results[name].file.push(compared.fromFileMedianSeconds);
      }
    }
  } finally {
    rmSync(plainFile, { force: true });
  }
  for (const [name, r] of Object.entries(results)) {
    const ratios = r.bucket.map((bucket, i) => (r.file[i] as number) / bucket);
    console.log(
      `${name.padEnd(16)} get --restore ${median(r.bucket).toFixed(2)} s (${range(r.bucket)})   pg_restore from a file ${median(r.file).toFixed(2)} s (${range(r.file)})   speed ${median(ratios).toFixed(3)} × (${range(ratios)})`,
    );
  }
}

mkdirSync(join(benchDir, 'tmp'), { recursive: true });
/** Backups under each variant, in turn. */
async function compareBackups(pgEnv: NodeJS.ProcessEnv, database: string, keys: BenchKeys): Promise<void> {
  const results: Record<
    string,
    { wall: number[]; cpu: number[]; above: number[]; rss: number[]; gc: number[] }
  > = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, env] of Object.entries(variants)) {
      await s3.empty();
      const run = await backupOnce({
        root,
        scratch: join(benchDir, 'tmp'),
        env: { ...process.env, ...pgEnv, ...env },
        s3,
        database,
        publicFile: keys.publicFile,
        bin: env.BIN,
      });
      results[name] ??= { wall: [], cpu: [], above: [], rss: [], gc: [] };
      const result = results[name];
      result.wall.push(run.wallSeconds);
      result.cpu.push(run.cpuSeconds);
      result.above.push(run.cpuSeconds - run.cryptoFloorSeconds);
      result.rss.push(run.peakRssBytes / 1024 / 1024);
      const gcSeconds = Object.values(run.gc).reduce((sum, kind) => sum + kind.ms, 0) / 1000;
      result.gc.push(gcSeconds);
      const kinds = Object.entries(run.gc).map(
        ([kind, { count, ms }]) => `${kind} ${count}×/${ms.toFixed(0)} ms`,
      );
      const threads = Object.entries(run.threads).map(
        ([thread, seconds]) => `${thread} ${seconds.toFixed(2)} s`,
      );
      console.error(
        `[ab] ${round + 1}/${rounds} ${name}: threads ${threads.join(', ')}; ${run.wallSeconds.toFixed(2)} s, CPU ${run.cpuSeconds.toFixed(2)} s (system ${run.systemSeconds.toFixed(2)} s, cipher and hash floor ${run.cryptoFloorSeconds.toFixed(2)} s), ${(run.peakRssBytes / 1024 / 1024).toFixed(0)} MiB, GC ${kinds.join(', ')}`,
      );
    }
  }
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `${name.padEnd(16)} wall ${median(r.wall).toFixed(2)} s (${range(r.wall)})   CPU ${median(r.cpu).toFixed(2)} s (${range(r.cpu)}), above the floor ${median(r.above).toFixed(2)} s (${range(r.above)})   GC ${median(r.gc).toFixed(2)} s   peak RSS ${median(r.rss).toFixed(0)} MiB (max ${Math.max(...r.rss).toFixed(0)})`,
    );
  }
}

const postgres = process.env.PGHOST ? undefined : await startLocalPostgres(join(benchDir, 'postgres'));
const s3 = await startS3Target(choice, benchDir);
try {
  const pgEnv = postgres?.env ?? {};
  const { database } = await ensureWorkload({ ...process.env, ...pgEnv }, values.size as WorkloadSize);
  const keys = await benchKeys(benchDir);
  if (values.restore) await compareRestores(pgEnv, database, keys);
  else await compareBackups(pgEnv, database, keys);
} finally {
  await s3.stop();
  await postgres?.stop();
}
