import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { busyShare, cryptoFloorSeconds, machineTicks, measure, processCpuSeconds, round } from '../measure';
import type { S3Target } from '../s3-targets';

export interface BackupRun {
  readonly wallSeconds: number;
  /** The backup process itself: its own user + system CPU, without pg_dump (bench/probe.mjs). */
  readonly cpuSeconds: number;
  /** AES-256-CFB, SHA-1 and SHA-256 of the stored bytes on one core, measured right after the run. */
  readonly cryptoFloorSeconds: number;
  /** Of which in the kernel: pipe reads, socket writes and, on loopback, the receiving side's TCP work too. */
  readonly systemSeconds: number;
  /** CPU seconds of the main thread and of the others: V8's helpers (GC, compilers), libuv's pool. */
  readonly threads: Readonly<Record<string, number>>;
  /** Its children: pg_dump (and `pg_dump --version`), from GNU time. */
  readonly childCpuSeconds?: number;
  readonly peakRssBytes: number;
  /** Main-thread pauses of its garbage collector, by kind (minor, major, incremental, weak). */
  readonly gc: Readonly<Record<string, { readonly count: number; readonly ms: number }>>;
  readonly storedBytes: number;
  readonly s3ServerCpuSeconds?: number;
  readonly machineBusy?: number;
  /** The stored dump's key, for the restore. */
  readonly key: string;
}

export interface BackupOptions {
  readonly root: string;
  readonly scratch: string;
  /** PostgreSQL's variables and anything else the backup process gets. */
  readonly env: NodeJS.ProcessEnv;
  readonly s3: S3Target;
  readonly database: string;
  readonly publicFile: string;
  /** Another checkout's bin/dump-bag.js. */
  readonly bin?: string;
  /** A folder for V8 CPU profiles (node --cpu-prof). */
  readonly profile?: string;
  /** A command prefix such as `taskset -c 0`. */
  readonly pin?: readonly string[];
}

/**
 * One `dump-bag backup --json` as its own process, the way a user runs it (`node bin/dump-bag.js`,
 * not npx). The preloaded probe writes that process's own CPU and peak RSS at exit; GNU time adds
 * its children's (pg_dump).
 */
export async function backupOnce(options: BackupOptions): Promise<BackupRun> {
  const usageFile = join(options.scratch, `usage-${process.pid}.json`);
  rmSync(usageFile, { force: true });
  const s3Before = options.s3.pid ? processCpuSeconds(options.s3.pid) : undefined;
  const ticksBefore = machineTicks();
  const measured = await measure(
    [
      ...(options.pin ?? []),
      process.execPath,
      ...(options.profile ? ['--cpu-prof', '--cpu-prof-dir', resolve(options.profile)] : []),
      '--import',
      pathToFileURL(join(options.root, 'bench', 'probe.mjs')).href,
      options.bin ?? join(options.root, 'bin', 'dump-bag.js'),
      'backup',
      '--json',
    ],
    {
      env: {
        ...options.env,
        ...options.s3.env,
        DUMP_BAG_DATABASES: options.database.replace(/,/g, '\\,'),
        DUMP_BAG_ENCRYPTION: 'gpg',
        DUMP_BAG_PUBLIC_KEYS: options.publicFile,
        DUMP_BAG_BENCH_USAGE_FILE: usageFile,
      },
      scratch: options.scratch,
    },
  );
  const ticksAfter = machineTicks();
  const s3After = options.s3.pid ? processCpuSeconds(options.s3.pid) : undefined;
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
    gc?: Record<string, { count: number; ms: number }>;
    threads?: Record<string, number>;
  };
  const cpuSeconds = usage.userSeconds + usage.systemSeconds;
  return {
    key: entry.key,
    wallSeconds: round(measured.wallSeconds, 3),
    cpuSeconds: round(cpuSeconds, 3),
    cryptoFloorSeconds: round(cryptoFloorSeconds(entry.bytes), 3),
    systemSeconds: round(usage.systemSeconds, 3),
    threads: usage.threads ?? {},
    childCpuSeconds:
      measured.cpuSecondsWithChildren === undefined
        ? undefined
        : round(measured.cpuSecondsWithChildren - cpuSeconds, 3),
    peakRssBytes: usage.maxRssBytes,
    gc: usage.gc ?? {},
    storedBytes: entry.bytes,
    s3ServerCpuSeconds:
      s3Before !== undefined && s3After !== undefined ? round(s3After - s3Before, 2) : undefined,
    machineBusy: busyShare(ticksBefore, ticksAfter),
  };
}
