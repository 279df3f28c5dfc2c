/**
 * The custom-format archive's version (the three bytes after `PGDMP`) and the oldest pg_restore
 * major that reads it. A pg_restore refuses archives newer than its own format ("unsupported version
 * (1.16) in file header"), so a reader learns before downloading which pg_restore it needs.
 */

/** Bytes of the archive header that carry the magic and the version. */
export const ARCHIVE_HEAD_BYTES = 8;
const MAGIC = Buffer.from('PGDMP');

/**
 * Archive version → the first PostgreSQL major whose pg_dump writes it (pg_backup_archiver.h:
 * K_VERS_1_14 tableam in 12, K_VERS_1_15 compression algorithm in 16, K_VERS_1_16 BLOB METADATA in
 * 17; test/majors.test.ts checks the versions the real pg_dump 14–18 write).
 */
const FIRST_READER: ReadonlyMap<string, number> = new Map([
  ['1.12', 9],
  ['1.13', 11],
  ['1.14', 12],
  ['1.15', 16],
  ['1.16', 17],
]);

/** `major.minor.rev` from an archive's first bytes, or undefined when they are not a custom-format header. */
export function parseArchiveVersion(head: Buffer): string | undefined {
  if (head.length < ARCHIVE_HEAD_BYTES || !head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  return `${head[5]}.${head[6]}.${head[7]}`;
}

/**
 * The oldest pg_restore major that reads an archive: from the table, else (a format newer than the
 * table knows) the major of the pg_dump that wrote it, which always reads its own archives.
 */
export function minimumRestoreMajor(archiveVersion: string, pgDumpMajor?: number): number | undefined {
  const known = FIRST_READER.get(archiveVersion.split('.').slice(0, 2).join('.'));
  return known ?? pgDumpMajor;
}

/** The major of a version text such as "15.18 (Debian 15.18-0+deb12u1)" or "18.1". */
export function majorOf(version: string | undefined): number | undefined {
  const match = /(\d+)(?:\.\d+)?/.exec(version ?? '');
  if (!match) return undefined;
  const major = Number(match[1]);
  return Number.isSafeInteger(major) && major > 0 && major < 1000 ? major : undefined;
}

/** How to get the pg_restore of a major, for the messages that ask for it. */
export function installHint(major: number): string {
  return `install pg_restore ${major} or newer (Debian/Ubuntu: the postgresql-client-${major} package from apt.postgresql.org; macOS: brew install postgresql@${major}) and put it first on the PATH`;
}
