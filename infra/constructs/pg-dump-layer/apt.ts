/**
 * What the local path takes from Debian's archive, through an apt-get of its own (lists and cache
 * under the layer cache; the machine's apt is left alone): the pinned PostgreSQL tarballs and the
 * target architecture's libraries, unpacked, never installed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type LayerArchitecture, LayerBuildError, type SourcePin } from './pins';

export const TRIPLES: Record<LayerArchitecture, string> = {
  arm64: 'aarch64-linux-gnu',
  x86_64: 'x86_64-linux-gnu',
};
const DEBIAN_ARCH: Record<LayerArchitecture, string> = { arm64: 'arm64', x86_64: 'amd64' };

export function note(message: string): void {
  process.stderr.write(`pg-dump layer: ${message}\n`);
}

export function run(command: string, args: readonly string[], cwd?: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function stderrOf(error: unknown): string {
  const stderr = (error as { stderr?: string }).stderr?.trim() ?? '';
  return stderr.split('\n').slice(-4).join(' | ') || (error as Error).message;
}

type PrivateApt = { apt(args: readonly string[], cwd?: string): string; update(): void };
const privateApts = new Map<string, PrivateApt>();

/** apt-get with its own source list, lists and cache under dir, read once per process. */
function privateApt(dir: string, lines: readonly string[], architecture?: string): PrivateApt {
  const key = `${dir}\0${lines.join('\n')}\0${architecture ?? ''}`;
  const known = privateApts.get(key);
  if (known) return known;
  const options = [
    ...['-o', `Dir::Etc::SourceList=${join(dir, 'sources.list')}`, '-o', 'Dir::Etc::SourceParts=/dev/null'],
    ...['-o', `Dir::State::Lists=${join(dir, 'lists')}`, '-o', `Dir::Cache=${join(dir, 'cache')}`],
    ...['-o', 'Dir::State::status=/dev/null', '-o', 'Debug::NoLocking=1'],
    // Downloads land in our own folder; apt's sandbox user may not write there.
    ...['-o', 'APT::Sandbox::User=root'],
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
      throw new LayerBuildError(`apt-get ${args.join(' ')} failed: ${stderrOf(error)}`);
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

/** The archive roots named by the deb-src lines, in order and once each. */
export function sourceArchives(sourcesList: string): string[] {
  const roots = sourcesList
    .split('\n')
    .filter((line) => line.startsWith('deb-src '))
    .map((line) => line.replace(/^deb-src\s+(\[[^\]]*\]\s+)?/, '').split(/\s+/)[0] ?? '')
    .filter((url) => /^https?:\/\//.test(url))
    .map((url) => url.replace(/\/+$/, ''));
  return [...new Set(roots)];
}

/** Downloads a pool path from the first archive that serves it (one 404 is no proof: try them all). */
function fetchFromPool(pin: SourcePin, path: string, sourcesList: string, download: string): string {
  const file = join(download, path.slice(path.lastIndexOf('/') + 1));
  const failures: string[] = [];
  for (const root of sourceArchives(sourcesList)) {
    note(`downloading ${root}/${path}`);
    try {
      run('curl', ['-fsSL', '--retry', '2', '--max-time', '900', '-o', file, `${root}/${path}`]);
      return file;
    } catch (error: unknown) {
      failures.push(`${root}: ${stderrOf(error)}`);
    }
  }
  throw new LayerBuildError(
    `Debian's archive does not serve ${path} (${failures.join('; ') || 'no deb-src line in debian-sources.list'}); pin a version it serves in versions.txt for PostgreSQL ${pin.major}`,
  );
}

/** The pinned tarball from Debian's source archive, checked against versions.txt's sha256. */
export function fetchSource(pin: SourcePin, sourcesList: string, cacheDir: string): string {
  const dir = join(cacheDir, 'sources');
  const tarball = join(dir, `postgresql-${pin.version}.tar.bz2`);
  if (existsSync(tarball) && sha256File(tarball) === pin.sha256) return tarball;
  const download = join(dir, `download-${pin.version}-${process.pid}`);
  rmSync(download, { recursive: true, force: true });
  mkdirSync(download, { recursive: true });
  try {
    let orig: string;
    if (pin.debian.kind === 'pool') {
      orig = fetchFromPool(pin, pin.debian.path, sourcesList, download);
    } else {
      const lines = sourcesList.split('\n').filter((line) => line.startsWith('deb-src '));
      const apt = privateApt(join(cacheDir, 'apt-src'), lines);
      apt.update();
      note(`downloading ${pin.debian.spec} from Debian's source archive`);
      try {
        apt.apt(['source', '--download-only', '-qq', pin.debian.spec], download);
      } catch (error: unknown) {
        throw new LayerBuildError(
          `Debian's archive does not serve ${pin.debian.spec} (${(error as Error).message}); pin a version it serves in versions.txt (apt-cache showsrc postgresql-${pin.major})`,
        );
      }
      const name = readdirSync(download).find((file) => file.endsWith(`_${pin.version}.orig.tar.bz2`));
      if (!name) throw new LayerBuildError(`${pin.debian.spec} has no .orig.tar.bz2 of ${pin.version}`);
      orig = join(download, name);
    }
    const actual = sha256File(orig);
    if (actual !== pin.sha256) {
      throw new LayerBuildError(
        `${orig} has sha256 ${actual}, versions.txt pins ${pin.sha256} for PostgreSQL ${pin.version}`,
      );
    }
    renameSync(orig, tarball);
    return tarball;
  } finally {
    rmSync(download, { recursive: true, force: true });
  }
}

/**
 * The libraries of the target architecture, unpacked (never installed) into a folder with
 * usr/include and usr/lib/<triple>, kept for later builds.
 */
export function fetchLibraries(
  architecture: LayerArchitecture,
  packages: readonly string[],
  sourcesList: string,
  cacheDir: string,
): string {
  // Keyed by the list too: another list gets its own folder, never one a running build reads.
  const list = createHash('sha256').update(packages.join('\n')).digest('hex').slice(0, 12);
  const dir = join(cacheDir, `deps-${architecture}-${list}`);
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
  note(`downloading ${packages.join(' ')} for ${DEBIAN_ARCH[architecture]}`);
  apt.apt(['download', '-qq', ...packages], debs);
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
