/**
 * The pg_dump layer's recipe as data: the pinned sources (versions.txt), the Debian library list,
 * and the asset hash, which covers exactly the recipe's files (README.md and this TypeScript are not
 * recipe: editing them rebuilds nothing).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type LayerArchitecture = 'arm64' | 'x86_64';

/** The one recipe folder: the recipe's data, scripts and C source, plus its README. */
export const PG_DUMP_RECIPE_DIR = fileURLToPath(new URL('../../../layers/pg-dump/', import.meta.url));

/** What the layer is built from, and so what its asset hash covers. */
export const RECIPE_FILES = [
  'Dockerfile',
  'build.sh',
  'debian-libraries.txt',
  'debian-sources.list',
  'stdout-buffer.c',
  'versions.txt',
] as const;
/** Files of the recipe folder that document it without changing what gets built. */
export const RECIPE_DOCS = ['README.md'] as const;

/** Where the local path takes a pinned tarball from Debian's archive. */
export type DebianOrigin =
  /** `apt-get source postgresql-<major>=<Debian version>`. */
  | { readonly kind: 'package'; readonly spec: string }
  /** A path in the archive's pool, for a version the archive serves but no index lists any more. */
  | { readonly kind: 'pool'; readonly path: string };

export interface SourcePin {
  readonly major: number;
  readonly version: string;
  readonly sha256: string;
  readonly debian: DebianOrigin;
}

/** The local path cannot build the layer; the message says why and what would fix it. */
export class LayerBuildError extends Error {
  override name = 'LayerBuildError';
}

/** A recipe data file's lines without comments and blank lines, numbered from 1. */
function dataLines(recipeDir: string, file: string): { line: string; number: number; raw: string }[] {
  return readFileSync(join(recipeDir, file), 'utf8')
    .split('\n')
    .map((raw, index) => ({ raw, number: index + 1, line: raw.replace(/#.*/, '').trim() }))
    .filter(({ line }) => line !== '');
}

function parseOrigin(major: string, version: string, column: string): DebianOrigin | undefined {
  if (column.startsWith(`postgresql-${major}=`)) return { kind: 'package', spec: column };
  const pool = `pool/main/p/postgresql-${major}/postgresql-${major}_${version}.orig.tar.bz2`;
  return column === pool ? { kind: 'pool', path: column } : undefined;
}

/** The pinned sources of versions.txt, by major; a malformed line throws. */
export function readPins(recipeDir: string = PG_DUMP_RECIPE_DIR): Map<number, SourcePin> {
  const pins = new Map<number, SourcePin>();
  for (const { line, number, raw } of dataLines(recipeDir, 'versions.txt')) {
    const [major, version, sha256, column, ...rest] = line.split(/\s+/);
    const debian =
      major !== undefined && version !== undefined && column !== undefined
        ? parseOrigin(major, version, column)
        : undefined;
    const ok =
      /^\d+$/.test(major ?? '') &&
      version?.startsWith(`${major}.`) &&
      /^[0-9a-f]{64}$/.test(sha256 ?? '') &&
      rest.length === 0 &&
      !pins.has(Number(major));
    if (!ok || version === undefined || sha256 === undefined || debian === undefined) {
      throw new LayerBuildError(
        `versions.txt line ${number} is not "<major> <major>.<minor> <sha256> postgresql-<major>=<Debian version>|pool/main/p/postgresql-<major>/postgresql-<major>_<version>.orig.tar.bz2" (once per major): ${raw}`,
      );
    }
    pins.set(Number(major), { major: Number(major), version, sha256, debian });
  }
  return pins;
}

/** The Debian packages (names only) the local path unpacks for the target architecture. */
export function readDebianLibraries(recipeDir: string = PG_DUMP_RECIPE_DIR): string[] {
  return dataLines(recipeDir, 'debian-libraries.txt').map(({ line, number }) => {
    if (!/^[a-z0-9][a-z0-9.+-]*$/.test(line)) {
      throw new LayerBuildError(`debian-libraries.txt line ${number} is not a Debian package name: ${line}`);
    }
    return line;
  });
}

/** Files in the recipe folder that are neither recipe nor its README: they would be left out of the hash. */
export function strayRecipeFiles(recipeDir: string): string[] {
  const known = new Set<string>([...RECIPE_FILES, ...RECIPE_DOCS]);
  return readdirSync(recipeDir, { recursive: true, withFileTypes: true })
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name).slice(recipeDir.replace(/\/?$/, '/').length))
    .filter((path) => !known.has(path))
    .sort();
}

/** sha256 over the recipe's files (name and bytes, in a fixed order), the architecture and the majors. */
export function recipeHash(
  recipeDir: string,
  architecture: LayerArchitecture,
  majors: readonly number[],
): string {
  const missing = RECIPE_FILES.filter((file) => !existsSync(join(recipeDir, file)));
  if (missing.length > 0) {
    throw new LayerBuildError(
      `the pg_dump recipe folder ${recipeDir} lacks ${missing.join(', ')}: copy them from the repository's layers/pg-dump`,
    );
  }
  const hash = createHash('sha256');
  for (const file of RECIPE_FILES) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(recipeDir, file)));
    hash.update('\0');
  }
  hash.update(`${architecture}\0${[...majors].sort((a, b) => a - b).join(',')}`);
  return hash.digest('hex');
}
