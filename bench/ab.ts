/**
 * Backups of the reference workload under several settings, in turn, to compare one lever at a time:
 *
 *   node --import tsx bench/ab.ts '{"8x4":{"DUMP_BAG_PART_SIZE_MIB":"8","DUMP_BAG_UPLOAD_CONCURRENCY":"4"},"6x3":{}}' [ROUNDS]
 *
 * Each variant is environment variables for the backup process; `BIN` names another checkout's
 * bin/dump-bag.js (e.g. an older commit unpacked with `git archive`) to compare code. Prints the median
 * wall time, own CPU and peak RSS of each. Needs the workload `npm run bench` made.
 */
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startLocalPostgres, startLocalS3 } from '../cli/local/services';
import { measure, median } from './measure';
import { ensureWorkload } from './workload';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, '.dump-bag', 'bench');
const variants = JSON.parse(process.argv[2] ?? '{}') as Record<string, Record<string, string>>;
const rounds = Number(process.argv[3] ?? 4);
if (Object.keys(variants).length === 0) {
  console.error('usage: bench/ab.ts \'{"name":{"ENV":"value"},…}\' [rounds]');
  process.exit(2);
}

const postgres = process.env.PGHOST ? undefined : await startLocalPostgres(join(benchDir, 'postgres'));
const s3 = await startLocalS3(join(benchDir, 's3'), 'dump-bag-bench');
try {
  const pgEnv = postgres?.env ?? {};
  const { database } = await ensureWorkload({ ...process.env, ...pgEnv }, 'reference');
  const usageFile = join(benchDir, 'tmp', `usage-ab-${process.pid}.json`);
  const results: Record<string, { wall: number[]; cpu: number[]; rss: number[] }> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, env] of Object.entries(variants)) {
      rmSync(usageFile, { force: true });
      const run = await measure(
        [
          process.execPath,
          '--import',
          pathToFileURL(join(root, 'bench', 'probe.mjs')).href,
          env.BIN ?? join(root, 'bin', 'dump-bag.js'),
          'backup',
          '--json',
        ],
        {
          env: {
            ...process.env,
            ...pgEnv,
            ...s3.env,
            DUMP_BAG_DATABASES: database,
            DUMP_BAG_ENCRYPTION: 'gpg',
            DUMP_BAG_PUBLIC_KEYS: join(benchDir, 'keys', 'bench-public.asc'),
            DUMP_BAG_BENCH_USAGE_FILE: usageFile,
            ...env,
          },
          scratch: join(benchDir, 'tmp'),
        },
      );
      if (run.code !== 0) throw new Error(`${name}: dump-bag backup exited ${run.code}: ${run.stderr}`);
      const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as {
        userSeconds: number;
        systemSeconds: number;
        maxRssBytes: number;
      };
      results[name] ??= { wall: [], cpu: [], rss: [] };
      const result = results[name];
      result.wall.push(run.wallSeconds);
      result.cpu.push(usage.userSeconds + usage.systemSeconds);
      result.rss.push(usage.maxRssBytes / 1024 / 1024);
      console.error(
        `[ab] ${round + 1}/${rounds} ${name}: ${run.wallSeconds.toFixed(2)} s, CPU ${(usage.userSeconds + usage.systemSeconds).toFixed(2)} s, ${(usage.maxRssBytes / 1024 / 1024).toFixed(0)} MiB`,
      );
    }
  }
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `${name.padEnd(16)} wall ${median(r.wall).toFixed(2)} s   CPU ${median(r.cpu).toFixed(2)} s   peak RSS ${median(r.rss).toFixed(0)} MiB (max ${Math.max(...r.rss).toFixed(0)})`,
    );
  }
} finally {
  await s3.stop();
  await postgres?.stop();
}
