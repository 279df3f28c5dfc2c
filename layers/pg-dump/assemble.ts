/**
 * The local path of the pg_dump layer: runs the recipe's build.sh on a Debian machine without Docker,
 * native or cross, from the same pinned tarballs (taken from Debian's source archive) and with
 * Debian's libraries of the target architecture, into `<out>/pg/<major>/{bin,lib}`.
 *
 *   npx tsx layers/pg-dump/assemble.ts [--architecture arm64|x86_64] [--majors 15,18] --out DIR
 *
 * Synchronous on purpose: CDK's ILocalBundling.tryBundle is.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { cpus } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type LayerArchitecture = 'arm64' | 'x86_64';

export interface SourcePin {
  readonly major: number;
  readonly version: string;
  readonly sha256: string;
  /** `postgresql-<major>=<Debian version>`: where the local path finds the same tarball. */
  readonly debianSource: string;
}

export interface AssembleOptions {
  readonly recipeDir: string;
  readonly outputDir: string;
  readonly architecture: LayerArchitecture;
  readonly majors: readonly number[];
  /** Where sources, Debian packages and finished builds are kept. @default DUMP_BAG_LAYER_CACHE or <repo>/.dump-bag/pg-dump-layer */
  readonly cacheDir?: string;
}

export type AssembleResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** The local path cannot build the layer; the message says why and what would fix it. */
export class LayerBuildError extends Error {
  override name = 'LayerBuildError';
}

const RECIPE_DIR = fileURLToPath(new URL('.', import.meta.url));
const DEFAULT_CACHE = fileURLToPath(new URL('../../.dump-bag/pg-dump-layer/', import.meta.url));
/** Files of the recipe folder that document it without changing what gets built. */
const NOT_RECIPE = new Set(['README.md']);
/** What the layer links against, from Debian, for the target architecture (build.sh picks what is needed). */
const DEBIAN_LIBRARIES = [
  'libssl3',
  'libssl-dev',
  'zlib1g',
  'zlib1g-dev',
  'liblz4-1',
  'liblz4-dev',
  'libzstd1',
  'libzstd-dev',
];
const TRIPLES: Record<LayerArchitecture, string> = { arm64: 'aarch64-linux-gnu', x86_64: 'x86_64-linux-gnu' };
const DEBIAN_ARCH: Record<LayerArchitecture, string> = { arm64: 'arm64', x86_64: 'amd64' };
const CROSS_PACKAGES: Record<LayerArchitecture, string> = {
  arm64: 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross',
  x86_64: 'gcc-x86-64-linux-gnu libc6-dev-amd64-cross',
};

/** The pinned sources of versions.txt, by major; a malformed line throws. */
export function readPins(recipeDir: string = RECIPE_DIR): Map<number, SourcePin> {
  const pins = new Map<number, SourcePin>();
  const text = readFileSync(join(recipeDir, 'versions.txt'), 'utf8');
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [major, version, sha256, debianSource, ...rest] = line.split(/\s+/);
    const ok =
      major !== undefined &&
      /^\d+$/.test(major) &&
      version?.startsWith(`${major}.`) &&
      /^[0-9a-f]{64}$/.test(sha256 ?? '') &&
      debianSource?.startsWith(`postgresql-${major}=`) &&
      rest.length === 0;
    if (!ok || version === undefined || sha256 === undefined || debianSource === undefined) {
      throw new LayerBuildError(
        `versions.txt line ${index + 1} is not "<major> <major>.<minor> <sha256> postgresql-<major>=<Debian version>": ${raw}`,
      );
    }
    pins.set(Number(major), { major: Number(major), version, sha256, debianSource });
  }
  return pins;
}

/** sha256 over the recipe's files (path and bytes, in a fixed order), the architecture and the majors. */
export function recipeHash(
  recipeDir: string,
  architecture: LayerArchitecture,
  majors: readonly number[],
): string {
  const hash = createHash('sha256');
  const files = readdirSync(recipeDir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(recipeDir, join(entry.parentPath, entry.name)).split('\\').join('/'))
    .filter((path) => !NOT_RECIPE.has(path))
    .sort();
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(recipeDir, file)));
    hash.update('\0');
  }
  hash.update(`${architecture}\0${[...majors].sort((a, b) => a - b).join(',')}`);
  return hash.digest('hex');
}

/**
 * Builds the layer's `pg/<major>/{bin,lib}` into outputDir without Docker, or says why it cannot.
 * A finished build is kept in the cache under the recipe hash, so the next synth only copies it.
 */
export function assembleLayer(options: AssembleOptions): AssembleResult {
  try {
    const cacheDir = resolve(options.cacheDir ?? process.env.DUMP_BAG_LAYER_CACHE ?? DEFAULT_CACHE);
    const majors = [...options.majors].sort((a, b) => a - b);
    const hash = recipeHash(options.recipeDir, options.architecture, majors);
    const built = join(cacheDir, 'layers', hash);
    if (!existsSync(join(built, '.complete'))) {
      withLock(join(cacheDir, 'layers', `${hash}.lock`), () => {
        if (!existsSync(join(built, '.complete'))) buildLayer({ ...options, majors }, cacheDir, built);
      });
    }
    mkdirSync(options.outputDir, { recursive: true });
    cpSync(join(built, 'pg'), join(options.outputDir, 'pg'), { recursive: true });
    const now = new Date();
    utimesSync(built, now, now);
    pruneBuilds(join(cacheDir, 'layers'));
    return { ok: true };
  } catch (error: unknown) {
    if (error instanceof LayerBuildError) return { ok: false, reason: error.message };
    return {
      ok: false,
      reason: `unexpected failure: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

/** Builds of older recipes pile up as the recipe changes: keep the few used most recently. */
function pruneBuilds(dir: string, keep = 4): void {
  const builds = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && /^[0-9a-f]{64}$/.test(entry.name))
    .map((entry) => ({ path: join(dir, entry.name), used: statSync(join(dir, entry.name)).mtimeMs }))
    .sort((a, b) => b.used - a.used);
  for (const old of builds.slice(keep)) rmSync(old.path, { recursive: true, force: true });
}

function buildLayer(options: AssembleOptions, cacheDir: string, built: string): void {
  const pins = readPins(options.recipeDir);
  const triple = TRIPLES[options.architecture];
  const cross = hostArchitecture() !== options.architecture;
  const tools = cross ? { cc: `${triple}-gcc`, strip: `${triple}-strip`, readelf: `${triple}-readelf` } : {};
  checkTools(options.architecture, cross, tools.cc ?? 'gcc');

  const sourcesList = readFileSync(join(options.recipeDir, 'debian-sources.list'), 'utf8');
  const tarballs = options.majors.map((major) => {
    const pin = pins.get(major);
    if (!pin) throw new LayerBuildError(`versions.txt pins no source for PostgreSQL ${major}`);
    return { pin, tarball: fetchSource(pin, sourcesList, cacheDir) };
  });
  const depsRoot = fetchLibraries(options.architecture, sourcesList, cacheDir);

  const env = {
    ...process.env,
    ...(cross ? { HOST: triple, CC: tools.cc, STRIP: tools.strip, READELF: tools.readelf } : {}),
    DEPS_ROOT: depsRoot,
    LIB_PATH: join(depsRoot, 'usr', 'lib', triple),
    JOBS: String(Math.max(1, cpus().length)),
  };
  // Scratch folders named by the recipe hash: a build of another recipe may run at the same time.
  const building = `${built}.building`;
  const scratch = `${built}.work`;
  try {
    rmSync(building, { recursive: true, force: true });
    mkdirSync(join(building, 'pg'), { recursive: true });
    for (const { pin, tarball } of tarballs) {
      const log = join(cacheDir, `build-${options.architecture}-${pin.major}.log`);
      note(`building PostgreSQL ${pin.version} pg_dump for ${options.architecture} (log: ${log})`);
      const started = Date.now();
      const result = spawnSync(
        'bash',
        [join(options.recipeDir, 'build.sh'), tarball, pin.sha256, String(pin.major), join(building, 'pg')],
        {
          env: { ...env, WORK: join(scratch, String(pin.major)) },
          stdio: ['ignore', 'pipe', 'pipe'],
          maxBuffer: 256 * 1024 * 1024,
        },
      );
      writeFileSync(log, `${result.stdout ?? ''}${result.stderr ?? ''}`);
      if (result.status !== 0) {
        const tail = `${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
        throw new LayerBuildError(
          `build.sh failed for PostgreSQL ${pin.major} (${result.error?.message ?? `exit ${result.status}`}); see ${log}:\n${tail}`,
        );
      }
      note(`PostgreSQL ${pin.major} built in ${Math.round((Date.now() - started) / 1000)} s`);
    }
    writeFileSync(join(building, 'pg', 'SOURCES.txt'), sourcesNote(tarballs, depsRoot, options.architecture));
    writeFileSync(join(building, '.complete'), '');
    rmSync(built, { recursive: true, force: true });
    renameSync(building, built);
  } finally {
    rmSync(building, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}

function hostArchitecture(): LayerArchitecture | undefined {
  if (process.arch === 'arm64') return 'arm64';
  if (process.arch === 'x64') return 'x86_64';
  return undefined;
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}

function checkTools(architecture: LayerArchitecture, cross: boolean, cc: string): void {
  if (process.platform !== 'linux') {
    throw new LayerBuildError(`the local path builds on Linux only (this is ${process.platform})`);
  }
  if (!onPath('apt-get') || !onPath('dpkg-deb')) {
    throw new LayerBuildError(
      "the local path takes its sources and libraries from Debian's archive and needs apt-get and dpkg-deb (a Debian or Ubuntu machine)",
    );
  }
  const needed = [cc, 'make', 'bison', 'flex', 'perl', 'tar', 'bzip2', 'sha256sum'];
  const missing = needed.filter((tool) => !onPath(tool));
  // A cross compiler without the target's C library cannot link anything.
  const crt = onPath(cc) ? run(cc, ['-print-file-name=crt1.o']).trim() : '';
  if (onPath(cc) && !crt.startsWith('/')) missing.push(`${cc}'s C library (crt1.o)`);
  if (missing.length > 0) {
    const packages = cross ? `${CROSS_PACKAGES[architecture]} bison flex` : 'gcc libc6-dev make bison flex';
    throw new LayerBuildError(
      `missing ${missing.join(', ')} to build the ${architecture} layer; install them with: apt-get install --no-install-recommends ${packages}`,
    );
  }
}

function run(command: string, args: readonly string[], cwd?: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

type PrivateApt = { apt(args: readonly string[], cwd?: string): string; update(): void };
const privateApts = new Map<string, PrivateApt>();

/** apt-get with its own source list, lists and cache under the cache folder: the machine's apt is left alone. */
function privateApt(dir: string, lines: readonly string[], architecture?: string): PrivateApt {
  const key = `${dir}\0${lines.join('\n')}\0${architecture ?? ''}`;
  const known = privateApts.get(key);
  if (known) return known;
  const options = [
    '-o',
    `Dir::Etc::SourceList=${join(dir, 'sources.list')}`,
    '-o',
    'Dir::Etc::SourceParts=/dev/null',
    '-o',
    `Dir::State::Lists=${join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${join(dir, 'cache')}`,
    '-o',
    'Dir::State::status=/dev/null',
    '-o',
    'Debug::NoLocking=1',
    // Downloads land in our own folder; apt's sandbox user may not write there.
    '-o',
    'APT::Sandbox::User=root',
    ...(architecture
      ? ['-o', `APT::Architecture=${architecture}`, '-o', `APT::Architectures::=${architecture}`]
      : []),
  ];
  mkdirSync(join(dir, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(dir, 'cache', 'archives', 'partial'), { recursive: true });
  writeFileSync(join(dir, 'sources.list'), `${lines.join('\n')}\n`);
  const apt = (args: readonly string[], cwd?: string): string => {
    try {
      return run('apt-get', [...options, ...args], cwd);
    } catch (error: unknown) {
      const stderr = (error as { stderr?: string }).stderr?.trim() ?? '';
      throw new LayerBuildError(
        `apt-get ${args.join(' ')} failed: ${stderr.split('\n').slice(-4).join(' | ') || (error as Error).message}`,
      );
    }
  };
  let updated = false;
  const made: PrivateApt = {
    apt,
    update(): void {
      if (updated) return;
      note(`reading Debian's package lists (${dir})`);
      apt(['update', '-qq']);
      updated = true;
    },
  };
  privateApts.set(key, made);
  return made;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The pinned tarball from Debian's source archive, checked against versions.txt's sha256. */
function fetchSource(pin: SourcePin, sourcesList: string, cacheDir: string): string {
  const dir = join(cacheDir, 'sources');
  const tarball = join(dir, `postgresql-${pin.version}.tar.bz2`);
  if (existsSync(tarball) && sha256File(tarball) === pin.sha256) return tarball;
  const lines = sourcesList.split('\n').filter((line) => line.startsWith('deb-src '));
  const apt = privateApt(join(cacheDir, 'apt-src'), lines);
  apt.update();
  const download = join(dir, 'download');
  rmSync(download, { recursive: true, force: true });
  mkdirSync(download, { recursive: true });
  note(`downloading ${pin.debianSource} from Debian's source archive`);
  try {
    apt.apt(['source', '--download-only', '-qq', pin.debianSource], download);
  } catch (error: unknown) {
    throw new LayerBuildError(
      `Debian's archive does not serve ${pin.debianSource} (${(error as Error).message}); pin a version it serves in versions.txt (apt-cache showsrc postgresql-${pin.major})`,
    );
  }
  const orig = readdirSync(download).find((name) => name.endsWith(`_${pin.version}.orig.tar.bz2`));
  if (!orig) throw new LayerBuildError(`${pin.debianSource} has no .orig.tar.bz2 of ${pin.version}`);
  const actual = sha256File(join(download, orig));
  if (actual !== pin.sha256) {
    throw new LayerBuildError(`${orig} has sha256 ${actual}, versions.txt pins ${pin.sha256}`);
  }
  renameSync(join(download, orig), tarball);
  rmSync(download, { recursive: true, force: true });
  return tarball;
}

/**
 * OpenSSL, zlib, lz4 and zstd of the target architecture, unpacked (never installed) into a folder
 * with usr/include and usr/lib/<triple>, kept for later builds.
 */
function fetchLibraries(architecture: LayerArchitecture, sourcesList: string, cacheDir: string): string {
  const dir = join(cacheDir, `deps-${architecture}`);
  const root = join(dir, 'root');
  if (existsSync(join(root, '.complete'))) return root;
  const lines = sourcesList
    .split('\n')
    .filter((line) => line.startsWith('deb '))
    .map((line) => line.replace(/^deb /, `deb [arch=${DEBIAN_ARCH[architecture]}] `));
  const apt = privateApt(join(dir, 'apt'), lines, DEBIAN_ARCH[architecture]);
  apt.update();
  const debs = join(dir, 'debs');
  rmSync(debs, { recursive: true, force: true });
  mkdirSync(debs, { recursive: true });
  note(`downloading ${DEBIAN_LIBRARIES.join(' ')} for ${DEBIAN_ARCH[architecture]}`);
  apt.apt(['download', '-qq', ...DEBIAN_LIBRARIES], debs);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  for (const deb of readdirSync(debs).sort()) run('dpkg-deb', ['-x', join(debs, deb), root]);
  mergeLibFolder(root, TRIPLES[architecture]);
  writeFileSync(join(root, 'PACKAGES.txt'), `${readdirSync(debs).sort().join('\n')}\n`);
  writeFileSync(join(root, '.complete'), '');
  return root;
}

/**
 * Debian 12 splits libraries between /lib and /usr/lib and points some development links at
 * absolute /lib paths, which would reach the build machine's own (other-architecture) files.
 */
function mergeLibFolder(root: string, triple: string): void {
  const usrLib = join(root, 'usr', 'lib', triple);
  const lib = join(root, 'lib', triple);
  mkdirSync(usrLib, { recursive: true });
  if (existsSync(lib)) {
    for (const name of readdirSync(lib)) renameSync(join(lib, name), join(usrLib, name));
    rmSync(join(root, 'lib'), { recursive: true, force: true });
  }
  for (const name of readdirSync(usrLib)) {
    const path = join(usrLib, name);
    if (!lstatSync(path).isSymbolicLink()) continue;
    const target = readlinkSync(path);
    if (!target.startsWith('/')) continue;
    rmSync(path);
    symlinkSync(target.slice(target.lastIndexOf('/') + 1), path);
  }
}

function sourcesNote(
  tarballs: readonly { pin: SourcePin }[],
  depsRoot: string,
  architecture: LayerArchitecture,
): string {
  const postgres = tarballs.map(({ pin }) => `postgresql-${pin.version}.tar.bz2 sha256:${pin.sha256}`);
  const debs = readFileSync(join(depsRoot, 'PACKAGES.txt'), 'utf8').trim().split('\n');
  return [
    `pg_dump layer for ${architecture}, built by layers/pg-dump/assemble.ts (local path)`,
    ...postgres,
    "Libraries from Debian 12's packages:",
    ...debs,
    '',
  ].join('\n');
}

function note(message: string): void {
  process.stderr.write(`pg-dump layer: ${message}\n`);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One build per recipe hash at a time: test files and synths running side by side share the cache. */
function withLock(lock: string, body: () => void): void {
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      let owner = Number.NaN;
      try {
        owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        // the owner has not written its pid yet
      }
      if (Number.isInteger(owner) && !alive(owner)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      sleep(1000);
    }
  }
  try {
    writeFileSync(join(lock, 'pid'), String(process.pid));
    body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function main(argv: readonly string[]): number {
  const flag = (name: string): string | undefined => {
    const index = argv.indexOf(name);
    return index >= 0 ? argv[index + 1] : undefined;
  };
  const architecture = flag('--architecture') ?? 'arm64';
  const out = flag('--out');
  if ((architecture !== 'arm64' && architecture !== 'x86_64') || !out) {
    process.stderr.write(
      'usage: npx tsx layers/pg-dump/assemble.ts [--architecture arm64|x86_64] [--majors 15,18] --out DIR\n',
    );
    return 2;
  }
  const pinned = [...readPins(RECIPE_DIR).keys()];
  const majorsFlag = flag('--majors');
  const result = assembleLayer({
    recipeDir: RECIPE_DIR,
    outputDir: resolve(out),
    architecture,
    majors: majorsFlag ? majorsFlag.split(',').map(Number) : pinned,
  });
  if (!result.ok) {
    process.stderr.write(`pg-dump layer: cannot assemble locally: ${result.reason}\n`);
    return 1;
  }
  process.stderr.write(`pg-dump layer: ${resolve(out, 'pg')} is ready\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
