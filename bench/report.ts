import { existsSync, readFileSync } from 'node:fs';
import { median, round } from './measure';
import type { S3Choice } from './s3-targets';
import type { BackupRun } from './scenarios/backup';
import type { EncryptionStage } from './scenarios/encryption-stage';
import type { PgDumpRun } from './scenarios/pg-dump';
import type { RekeyComparison } from './scenarios/rekey';
import type { RestoreComparison } from './scenarios/restore';
import type { ShellPipelineRun } from './scenarios/shell-pipeline';

const MB = 1_000_000;
const MiB = 1024 * 1024;
/** What a dump Lambda may spend dumping: 14.5 of its 15 minutes. */
export const LAMBDA_SECONDS = 14.5 * 60;

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread {
  return {
    median: round(median(values), 3),
    min: round(Math.min(...values), 3),
    max: round(Math.max(...values), 3),
  };
}

export interface BackupSummary {
  readonly wallSeconds: Spread;
  /** Median backup wall over median `pg_dump` alone with the same compression. */
  readonly ratioToPgDump: number;
  readonly cpuSeconds: Spread;
  /** The cipher and hash floor of each run (`cryptoFloorSeconds`). */
  readonly cryptoFloorSeconds: Spread;
  /** Own CPU less that run's floor: what the backup adds to its cryptography (it slows with the machine too). */
  readonly cpuAboveFloorSeconds: Spread;
  readonly pgDumpCpuSeconds?: Spread;
  readonly peakRssMiB: number;
  readonly storedBytes: number;
  readonly s3ServerCpuSeconds?: Spread;
  readonly runs: readonly BackupRun[];
}

/** The Lambda size limit: speeds with one core for pg_dump and the backup, and what fits in 14.5 minutes. */
export interface LambdaSize {
  readonly databaseMBps: Spread;
  readonly dumpMBps: Spread;
  /** pg_database_size that fits in 14.5 minutes at the measured speeds (GB). */
  readonly largestDatabaseGB: Spread;
}

export interface BenchResult {
  readonly date: string;
  readonly size: string;
  readonly database: string;
  readonly rows: number;
  readonly databaseBytes: number;
  readonly pgDumpVersion: string;
  readonly compression: string;
  readonly oneCore: boolean;
  readonly machine: Record<string, number | string>;
  readonly plainBytes: number;
  readonly pgDump: { readonly wallSeconds: Spread; readonly runs: readonly PgDumpRun[] };
  readonly pgDumpZ1?: { readonly wallSeconds: Spread; readonly runs: readonly PgDumpRun[] };
  readonly backups: Partial<Record<S3Choice, BackupSummary>>;
  readonly lambdaSize?: Partial<Record<S3Choice, LambdaSize>>;
  readonly shellPipeline?: {
    readonly wallSeconds: Spread;
    readonly ratioToPgDump: number;
    readonly runs: readonly ShellPipelineRun[];
  };
  readonly encryptionStage?: EncryptionStage;
  readonly restore?: RestoreComparison;
  readonly rekey?: RekeyComparison;
  peakRssComparedTo?: { size: string; peakRssMiB: number; difference: number };
}

function optionalSpread(values: readonly (number | undefined)[]): Spread | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length > 0 ? spread(known) : undefined;
}

export function summarizeBackups(runs: readonly BackupRun[], pgDumpWall: number): BackupSummary {
  const wall = spread(runs.map((r) => r.wallSeconds));
  return {
    wallSeconds: wall,
    ratioToPgDump: round(wall.median / pgDumpWall, 3),
    cpuSeconds: spread(runs.map((r) => r.cpuSeconds)),
    cryptoFloorSeconds: spread(runs.map((r) => r.cryptoFloorSeconds)),
    cpuAboveFloorSeconds: spread(runs.map((r) => r.cpuSeconds - r.cryptoFloorSeconds)),
    pgDumpCpuSeconds: optionalSpread(runs.map((r) => r.childCpuSeconds)),
    peakRssMiB: round(Math.max(...runs.map((r) => r.peakRssBytes)) / MiB, 1),
    storedBytes: median(runs.map((r) => r.storedBytes)),
    s3ServerCpuSeconds: optionalSpread(runs.map((r) => r.s3ServerCpuSeconds)),
    runs,
  };
}

export function lambdaSize(runs: readonly BackupRun[], databaseBytes: number): LambdaSize {
  return {
    databaseMBps: spread(runs.map((r) => databaseBytes / MB / r.wallSeconds)),
    dumpMBps: spread(runs.map((r) => r.storedBytes / MB / r.wallSeconds)),
    largestDatabaseGB: spread(runs.map((r) => ((databaseBytes / r.wallSeconds) * LAMBDA_SECONDS) / 1e9)),
  };
}

/** Every run of the A B A B rounds, by scenario. */
export interface Rounds {
  readonly backups: Map<S3Choice, BackupRun[]>;
  readonly dumps: PgDumpRun[];
  readonly dumpsZ1: PgDumpRun[];
  readonly shells: ShellPipelineRun[];
}

function wallSpread(runs: readonly { readonly wallSeconds: number }[]): Spread {
  return spread(runs.map((r) => r.wallSeconds));
}

/** The figures of every round, summarized against pg_dump alone. */
export function summarizeRounds(
  rounds: Rounds,
  oneCore: boolean,
  databaseBytes: number,
): Pick<BenchResult, 'pgDump' | 'pgDumpZ1' | 'backups' | 'lambdaSize' | 'shellPipeline'> {
  const { backups, dumps, dumpsZ1, shells } = rounds;
  const dumpWall = wallSpread(dumps);
  return {
    pgDump: { wallSeconds: dumpWall, runs: dumps },
    pgDumpZ1: dumpsZ1.length > 0 ? { wallSeconds: wallSpread(dumpsZ1), runs: dumpsZ1 } : undefined,
    backups: Object.fromEntries([...backups].map(([c, r]) => [c, summarizeBackups(r, dumpWall.median)])),
    lambdaSize: oneCore
      ? Object.fromEntries([...backups].map(([c, r]) => [c, lambdaSize(r, databaseBytes)]))
      : undefined,
    shellPipeline:
      shells.length > 0
        ? {
            wallSeconds: wallSpread(shells),
            ratioToPgDump: round(wallSpread(shells).median / dumpWall.median, 3),
            runs: shells,
          }
        : undefined,
  };
}

/** Peak memory against the results file of the other workload size, when there is one. */
export function peakRssAgainst(result: BenchResult, otherFile: string): BenchResult['peakRssComparedTo'] {
  const ours = result.backups.sink ?? result.backups.local;
  if (!existsSync(otherFile) || !ours) return undefined;
  const theirs = JSON.parse(readFileSync(otherFile, 'utf8')) as Partial<BenchResult>;
  const their = theirs.backups?.sink ?? theirs.backups?.local;
  if (!their || !theirs.size) return undefined;
  return {
    size: theirs.size,
    peakRssMiB: their.peakRssMiB,
    difference: round(ours.peakRssMiB / their.peakRssMiB - 1, 3),
  };
}

const range = (s: Spread, unit = '') => `${s.median}${unit} (${s.min}–${s.max})`;

export function printResult(result: BenchResult, out: string): void {
  const rows: [string, string][] = [
    [
      'workload',
      `${result.database}: ${result.rows} rows, ${(result.databaseBytes / MB).toFixed(0)} MB on disk`,
    ],
    [
      `pg_dump -Fc -Z${result.compression} → /dev/null${result.oneCore ? ' (one core)' : ''}`,
      `${range(result.pgDump.wallSeconds, ' s')}, ${(result.plainBytes / MB).toFixed(1)} MB`,
    ],
  ];
  if (result.pgDumpZ1) rows.push(['pg_dump -Fc -Z1 → /dev/null', range(result.pgDumpZ1.wallSeconds, ' s')]);
  for (const [choice, b] of Object.entries(result.backups)) {
    rows.push(
      [`backup, S3 ${choice}: wall`, `${range(b.wallSeconds, ' s')} = ${b.ratioToPgDump} × pg_dump`],
      [`backup, S3 ${choice}: own CPU`, range(b.cpuSeconds, ' s')],
      [`backup, S3 ${choice}: cipher and hash floor`, range(b.cryptoFloorSeconds, ' s')],
      [`backup, S3 ${choice}: own CPU above it`, range(b.cpuAboveFloorSeconds, ' s')],
      [`backup, S3 ${choice}: peak RSS`, `${b.peakRssMiB} MiB`],
      [`backup, S3 ${choice}: stored / plain`, `${b.storedBytes} / ${result.plainBytes} bytes`],
    );
    if (b.s3ServerCpuSeconds)
      rows.push([`backup, S3 ${choice}: S3 server CPU`, range(b.s3ServerCpuSeconds, ' s')]);
    const lambda = result.lambdaSize?.[choice as S3Choice];
    if (lambda) {
      rows.push(
        [`one core, S3 ${choice}: database MB/s`, range(lambda.databaseMBps)],
        [`one core, S3 ${choice}: dump MB/s`, range(lambda.dumpMBps)],
        [`one core, S3 ${choice}: fits 14.5 min`, range(lambda.largestDatabaseGB, ' GB (pg_database_size)')],
      );
    }
  }
  if (result.peakRssComparedTo) {
    const c = result.peakRssComparedTo;
    rows.push([
      `peak RSS against the ${c.size} workload`,
      `${c.peakRssMiB} MiB (${(c.difference * 100).toFixed(1)} %)`,
    ]);
  }
  if (result.shellPipeline) {
    rows.push([
      'pg_dump | gpg -z0 -e | aws s3 cp -',
      `${range(result.shellPipeline.wallSeconds, ' s')} = ${result.shellPipeline.ratioToPgDump} ×`,
    ]);
  }
  if (result.encryptionStage) {
    const s = result.encryptionStage;
    rows.push([
      'encryption alone: encryptStream / gpg -z 0',
      `${s.encryptStreamMBps} / ${s.gpgMBps ?? '-'} MB/s`,
    ]);
  }
  if (result.restore) {
    const r = result.restore;
    rows.push([
      'restore: get --restore / pg_restore of a file',
      `${r.fromBucketMedianSeconds} s / ${r.fromFileMedianSeconds} s (medians); ${r.speedRelativeToFile} × the speed (${r.speedRange[0]}–${r.speedRange[1]}), the median of each pair`,
    ]);
  }
  if (result.rekey) {
    const { rekey, wholeCopy } = result.rekey;
    const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
    rows.push([
      'rekey / download and upload whole',
      `${rekey.wallSeconds} s, ${mb(rekey.transferredBytes)} / ${wholeCopy.wallSeconds} s, ${mb(wholeCopy.transferredBytes)} (S3 copied ${mb(rekey.copiedBytes)} itself)`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'));
  console.log(`\nmachine: ${JSON.stringify(result.machine)}\nwritten to ${out}`);
}
