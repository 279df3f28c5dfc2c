import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** GNU time, when installed: it gives the CPU of a command and of the children it waited for. */
export const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

export interface Measured {
  readonly code: number | null;
  readonly wallSeconds: number;
  /** User + system CPU of the command and every child it waited for (GNU time), when available. */
  readonly cpuSecondsWithChildren?: number;
  /** The largest peak RSS of the command and the children it waited for (GNU time), when available. */
  readonly peakRssBytes?: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (argv, no shell), timing it; under GNU time when present, for its CPU and peak RSS. */
export async function measure(
  argv: readonly string[],
  options: { env?: NodeJS.ProcessEnv; scratch: string; input?: string },
): Promise<Measured> {
  const timeFile = join(options.scratch, `time-${process.pid}-${Date.now()}.txt`);
  const [command, ...args] = GNU_TIME ? [GNU_TIME, '-f', '%U %S %M', '-o', timeFile, ...argv] : argv;
  const started = performance.now();
  const child = spawn(command as string, args, {
    env: options.env ?? process.env,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  const wallSeconds = (performance.now() - started) / 1000;
  let cpuSecondsWithChildren: number | undefined;
  let peakRssBytes: number | undefined;
  if (GNU_TIME && existsSync(timeFile)) {
    const fields = readFileSync(timeFile, 'utf8').trim().split(/\s+/).slice(-3).map(Number);
    if (fields.length === 3 && fields.every(Number.isFinite)) {
      cpuSecondsWithChildren = (fields[0] ?? 0) + (fields[1] ?? 0);
      peakRssBytes = (fields[2] ?? 0) * 1024;
    }
    rmSync(timeFile, { force: true });
  }
  return {
    code,
    wallSeconds,
    cpuSecondsWithChildren,
    peakRssBytes,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
  };
}

const TICKS_PER_SECOND = 100;

/** User + system CPU seconds a live process has used so far (its own, not its children's). */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** The child of this process whose command line contains `needle` (e.g. the S3 server). */
export function findChild(needle: string): number | undefined {
  if (!existsSync('/proc/self/stat')) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

/** Busy and total CPU ticks of the whole machine, to tell how loaded it was during a run. */
export function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** `min–max` of some figures, for printing beside their median. */
export const range = (values: readonly number[]) =>
  `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`;

export const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** True when `command` is on the PATH. */
export function have(command: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The share of the machine's CPU that was busy between two `machineTicks()`. */
export function busyShare(
  before: ReturnType<typeof machineTicks>,
  after: ReturnType<typeof machineTicks>,
): number | undefined {
  if (!before || !after || after.total === before.total) return undefined;
  return round((after.busy - before.busy) / (after.total - before.total), 3);
}

const FLOOR_SAMPLE_BYTES = 32 * 1024 * 1024;
const FLOOR_PIECE_BYTES = 64 * 1024;

/** CPU seconds of AES-256-CFB, SHA-1 and SHA-256 over one 32 MiB sample, in the encryptor's 64 KiB pieces. */
function cryptoSampleSeconds(): number {
  const piece = randomBytes(FLOOR_PIECE_BYTES);
  const cipher = createCipheriv('aes-256-cfb', randomBytes(32), Buffer.alloc(16));
  const sha1 = createHash('sha1');
  const sha256 = createHash('sha256');
  const started = process.cpuUsage();
  for (let done = 0; done < FLOOR_SAMPLE_BYTES; done += FLOOR_PIECE_BYTES) {
    sha1.update(piece);
    sha256.update(cipher.update(piece));
  }
  sha1.digest();
  sha256.digest();
  const used = process.cpuUsage(started);
  return (used.user + used.system) / 1e6;
}

/**
 * What the backup's per-byte cryptography costs on one core of this machine right now, for `bytes`:
 * AES-256-CFB over the plaintext, SHA-1 of it (the MDC) and SHA-256 of the stored bytes, with
 * node:crypto, the best of three samples, scaled. The machine's speed moves by half within minutes
 * here, so each backup run gets its own floor, measured right after it.
 */
export function cryptoFloorSeconds(bytes: number): number {
  const best = Math.min(cryptoSampleSeconds(), cryptoSampleSeconds(), cryptoSampleSeconds());
  return best * (bytes / FLOOR_SAMPLE_BYTES);
}
