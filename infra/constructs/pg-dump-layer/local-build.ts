/**
 * The local path of the pg_dump layer: runs the recipe's build.sh on a Debian machine without
 * Docker, native or cross, from the pinned tarballs (taken from Debian's archive) and with Debian's
 * libraries of the target architecture, into `<out>/pg/<major>/{bin,lib}`. Synchronous on purpose:
 * CDK's ILocalBundling.tryBundle is. Details: layers/pg-dump/README.md.
 */
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { cpus } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchLibraries, fetchSource, note, run, TRIPLES } from './apt';
import { pruneBuilds, withLock } from './lock';
import {
  type LayerArchitecture,
  LayerBuildError,
  readDebianLibraries,
  readPins,
  recipeHash,
  type SourcePin,
} from './pins';

export interface AssembleOptions {
  readonly recipeDir: string;
  readonly outputDir: string;
  readonly architecture: LayerArchitecture;
  readonly majors: readonly number[];
  /** Where sources, Debian packages and finished builds are kept. @default DUMP_BAG_LAYER_CACHE or <repo>/.dump-bag/pg-dump-layer */
  readonly cacheDir?: string;
}

export type AssembleResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const DEFAULT_CACHE = fileURLToPath(new URL('../../../.dump-bag/pg-dump-layer/', import.meta.url));
const CROSS_PACKAGES: Record<LayerArchitecture, string> = {
  arm64: 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross',
  x86_64: 'gcc-x86-64-linux-gnu libc6-dev-amd64-cross',
};

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
  const libraries = readDebianLibraries(options.recipeDir);
  const depsRoot = fetchLibraries(options.architecture, libraries, sourcesList, cacheDir);

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
      note(`building PostgreSQL ${pin.version} for ${options.architecture} (log: ${log})`);
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
        const how =
          result.error?.message ?? (result.signal ? `signal ${result.signal}` : `exit ${result.status}`);
        throw new LayerBuildError(
          `build.sh failed for PostgreSQL ${pin.major} (${how}); see ${log}:\n${tail}`,
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
  const needed = [cc, 'make', 'bison', 'flex', 'perl', 'tar', 'bzip2', 'sha256sum', 'curl'];
  const missing = needed.filter((tool) => !onPath(tool));
  // A cross compiler without the target's C library cannot link anything.
  const crt = onPath(cc) ? run(cc, ['-print-file-name=crt1.o']).trim() : '';
  if (onPath(cc) && !crt.startsWith('/')) missing.push(`${cc}'s C library (crt1.o)`);
  if (missing.length > 0) {
    const packages = cross
      ? `${CROSS_PACKAGES[architecture]} bison flex curl`
      : 'gcc libc6-dev make bison flex curl';
    throw new LayerBuildError(
      `missing ${missing.join(', ')} to build the ${architecture} layer; install them with: apt-get install --no-install-recommends ${packages}`,
    );
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
    `pg_dump layer for ${architecture}, built by infra/constructs/pg-dump-layer (local path)`,
    ...postgres,
    "Libraries from Debian 12's packages:",
    ...debs,
    '',
  ].join('\n');
}
