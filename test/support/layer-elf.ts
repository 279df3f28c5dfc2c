import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** Libraries every Amazon Linux 2023 system has (glibc itself): the layer need not carry them. */
export const BASE_GLIBC = new Set([
  'libc.so.6',
  'libm.so.6',
  'libpthread.so.0',
  'libdl.so.2',
  'librt.so.1',
  'ld-linux-aarch64.so.1',
  'ld-linux-x86-64.so.2',
]);

/** Amazon Linux 2023's glibc, the newest symbol version the layer's binaries may ask for. */
export const AL2023_GLIBC = [2, 34] as const;

/** Every ELF file under a folder, found by its magic bytes rather than its name. */
export function elfFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const head = Buffer.alloc(4);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) found.push(path);
  }
  return found.sort();
}

function readelf(args: readonly string[]): string {
  return execFileSync('readelf', ['-W', ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

export interface ElfFacts {
  /** readelf's "Machine:", e.g. "AArch64" or "Advanced Micro Devices X86-64". */
  readonly machine: string;
  /** DT_NEEDED sonames. */
  readonly needed: string[];
  /** DT_RPATH and DT_RUNPATH entries. */
  readonly rpath: string[];
  /** GLIBC_x.y versions of the symbols it imports (undefined dynamic symbols). */
  readonly glibcVersions: string[];
}

export function elfFacts(path: string): ElfFacts {
  const header = readelf(['-h', path]);
  const dynamic = readelf(['-d', path]);
  const symbols = readelf(['--dyn-syms', path]);
  const machine = /Machine:\s+(.+)/.exec(header)?.[1]?.trim() ?? '';
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1] ?? '');
  const rpath = [...dynamic.matchAll(/\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[([^\]]+)\]/g)].map(
    (m) => m[1] ?? '',
  );
  const versions = new Set<string>();
  for (const line of symbols.split('\n')) {
    if (!/\sUND\s/.test(line)) continue;
    const version = /@(GLIBC_\d+(?:\.\d+)*)/.exec(line)?.[1];
    if (version) versions.add(version);
  }
  return { machine, needed, rpath, glibcVersions: [...versions].sort(compareGlibc) };
}

export function glibcParts(version: string): number[] {
  return version
    .replace(/^GLIBC_/, '')
    .split('.')
    .map(Number);
}

function compareGlibc(a: string, b: string): number {
  const [pa, pb] = [glibcParts(a), glibcParts(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** True when a GLIBC_x.y version is newer than Amazon Linux 2023's 2.34. */
export function newerThanAl2023(version: string): boolean {
  return compareGlibc(version, `GLIBC_${AL2023_GLIBC.join('.')}`) > 0;
}

/**
 * A root holding glibc of the given architecture and nothing else, for qemu-user's -L: the loader
 * then finds libc there and every other library only through the layer, as on Lambda.
 */
export function glibcOnlyRoot(dir: string, crossLibDir: string): string {
  mkdirSync(join(dir, 'lib'), { recursive: true });
  for (const name of BASE_GLIBC) {
    try {
      copyFileSync(join(crossLibDir, name), join(dir, 'lib', name));
    } catch {
      // the other architecture's loader is not there
    }
  }
  return dir;
}
