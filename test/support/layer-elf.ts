import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export type LayerArch = 'arm64' | 'x86_64';

/** readelf's "Machine:" for each layer architecture. */
export const ELF_MACHINE: Record<LayerArch, string> = {
  arm64: 'AArch64',
  x86_64: 'Advanced Micro Devices X86-64',
};
const TRIPLE: Record<LayerArch, string> = { arm64: 'aarch64-linux-gnu', x86_64: 'x86_64-linux-gnu' };
const QEMU: Record<LayerArch, string> = {
  arm64: '/usr/bin/qemu-aarch64-static',
  x86_64: '/usr/bin/qemu-x86_64-static',
};

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

/** The prefix that runs a binary of the architecture here: none natively, else qemu-user with glibc only. */
function emulator(arch: LayerArch, scratch: string): string[] {
  const native = (process.arch === 'arm64' ? 'arm64' : 'x86_64') === arch;
  if (native) return [];
  if (!existsSync(QEMU[arch])) {
    throw new Error(`the ${arch} layer runs here through qemu-user: apt-get install qemu-user-static`);
  }
  const root = glibcOnlyRoot(join(scratch, `glibc-root-${arch}`), `/usr/${TRIPLE[arch]}/lib`);
  return [QEMU[arch], '-L', root];
}

/**
 * Runs the layer's tools with nothing of this machine's environment but what they are given.
 * pg_dumpall runs the pg_dump beside it; qemu-user does not follow that exec, so an emulated
 * pg_dumpall runs from a copy whose neighbour pg_dump is a script running the layer's pg_dump
 * under the same qemu (natively, the real neighbour runs).
 */
export function layerRunner(arch: LayerArch, pgRoot: string, scratch: string) {
  const prefix = emulator(arch, scratch);
  const binary = (major: number, tool: string): string => {
    const real = join(pgRoot, String(major), 'bin', tool);
    if (prefix.length === 0 || tool !== 'pg_dumpall') return real;
    const home = join(scratch, `shim-${arch}-${major}`);
    if (!existsSync(join(home, 'bin', tool))) {
      mkdirSync(join(home, 'bin'), { recursive: true });
      symlinkSync(join(pgRoot, String(major), 'lib'), join(home, 'lib'));
      copyFileSync(real, join(home, 'bin', tool));
      chmodSync(join(home, 'bin', tool), 0o755);
      const quoted = [...prefix, join(pgRoot, String(major), 'bin', 'pg_dump')].map((a) => `'${a}'`);
      writeFileSync(join(home, 'bin', 'pg_dump'), `#!/bin/sh\nexec ${quoted.join(' ')} "$@"\n`);
      chmodSync(join(home, 'bin', 'pg_dump'), 0o755);
    }
    return join(home, 'bin', tool);
  };
  return {
    emulated: prefix.length > 0,
    /** `wrapper` goes in front of everything, emulator included (e.g. strace with its options). */
    run(
      major: number,
      tool: string,
      args: readonly string[],
      env: Record<string, string> = {},
      wrapper: readonly string[] = [],
    ) {
      const [command, ...rest] = [...wrapper, ...prefix, binary(major, tool), ...args];
      const scrubbed = {
        PATH: '/nonexistent',
        LD_LIBRARY_PATH: join(pgRoot, String(major), 'lib'),
        ...env,
      };
      return spawnSync(command as string, rest, {
        env: scrubbed,
        maxBuffer: 256 * 1024 * 1024,
        timeout: 300_000,
      });
    },
  };
}
