import { randomBytes } from 'node:crypto';
import { ValidationError } from './errors';

/** Every dump lives under this prefix; nothing outside it is ever written or deleted. */
export const DUMPS_PREFIX = 'dumps/';
/** The catalog record of a dump is stored next to it under the dump's key plus this suffix. */
export const RECORD_SUFFIX = '.json';

/** `YYYYMMDD-HHMMSS`, then (ids written since ids became unique) `-mmm-` milliseconds and 8 random hex digits. */
const ID_PATTERN = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})(?:-(\d{3})-[0-9a-f]{8})?$/;
const ID_SOURCE = String.raw`\d{8}-\d{6}(?:-\d{3}-[0-9a-f]{8})?`;
/** The folder and the file name carry the same encoded name (`\2`), so a name with `-<digits>` parses one way only. */
const KEY_PATTERN = new RegExp(String.raw`^dumps\/([^/]+)\/\1-(${ID_SOURCE})\.pg(\.gpg)?$`);

/** PostgreSQL's own limit on identifiers, in bytes. */
export const MAX_DATABASE_NAME_BYTES = 63;

/** The UTC second every id starts with, `YYYYMMDD-HHMMSS`; ids written before ids became unique are exactly this. */
export function dumpId(date: Date): string {
  const iso = date.toISOString(); // 2026-11-23T18:46:55.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

/**
 * A new dump's id: `YYYYMMDD-HHMMSS-mmm-<8 hex>`. Two runs in the same millisecond still differ (and
 * the conditional writes refuse the rest), while ids of one length sort in time order as text.
 */
export function uniqueDumpId(date: Date, random: () => Buffer = () => randomBytes(4)): string {
  const suffix = random().toString('hex').slice(0, 8).padStart(8, '0');
  return `${dumpId(date)}-${date.toISOString().slice(20, 23)}-${suffix}`;
}

export function isDumpId(value: string): boolean {
  return idToDate(value) !== undefined;
}

/** The time a dump id stands for (to the millisecond when it says), or undefined when it is not a valid id. */
export function idToDate(id: string): Date | undefined {
  const m = ID_PATTERN.exec(id);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s, Number(m[7] ?? 0)));
  // Reject ids such as 20261399-256199 that Date.UTC would silently roll over.
  return dumpId(date) === id.slice(0, 15) ? date : undefined;
}

/** Throws unless `name` is something PostgreSQL could call a database. */
export function assertDatabaseName(name: string): void {
  if (name.length === 0) throw new ValidationError('database name is empty');
  if (name.includes('\0')) throw new ValidationError('database name contains a NUL byte');
  if (Buffer.byteLength(name, 'utf8') > MAX_DATABASE_NAME_BYTES) {
    throw new ValidationError(`database name is longer than ${MAX_DATABASE_NAME_BYTES} bytes`);
  }
}

/**
 * A database name as one key segment: percent-encoded, and `.` or `..` as `%2E`/`%2E%2E`, since
 * URL clients and presigned GETs resolve a literal dot segment instead of sending it.
 */
export function encodeDatabase(database: string): string {
  return /^\.{1,2}$/.test(database) ? database.replace(/\./g, '%2E') : encodeURIComponent(database);
}

/** How keys written before dot-only names were encoded (`dumps/../..-<id>.pg.gpg`); still read, never written. */
function legacyEncodeDatabase(database: string): string {
  return encodeURIComponent(database);
}

/** The folder of one database's dumps: `dumps/<db>/`, `<db>` percent-encoded. */
export function databasePrefix(database: string): string {
  return `${DUMPS_PREFIX}${encodeDatabase(database)}/`;
}

/** Every folder a database's dumps may be in: today's, and the one older versions wrote for `.` and `..`. */
export function databasePrefixes(database: string): string[] {
  const legacy = `${DUMPS_PREFIX}${legacyEncodeDatabase(database)}/`;
  return legacy === databasePrefix(database) ? [legacy] : [databasePrefix(database), legacy];
}

/** `dumps/<db>/<db>-<id>.pg.gpg` (`.pg` when unencrypted). */
export function dumpKey(database: string, id: string, encrypted: boolean): string {
  const db = encodeDatabase(database);
  return `${DUMPS_PREFIX}${db}/${db}-${id}.pg${encrypted ? '.gpg' : ''}`;
}

export interface ParsedDumpKey {
  database: string;
  id: string;
  encrypted: boolean;
}

/** The parts of a dump key, or undefined for any key that is not exactly one Dump Bag writes (or wrote). */
export function parseDumpKey(key: string): ParsedDumpKey | undefined {
  const m = KEY_PATTERN.exec(key);
  if (!m) return undefined;
  const [, folder, id, gpg] = m as unknown as [string, string, string, string | undefined];
  if (!isDumpId(id)) return undefined;
  let database: string;
  try {
    database = decodeURIComponent(folder);
  } catch {
    return undefined;
  }
  if (encodeDatabase(database) !== folder && legacyEncodeDatabase(database) !== folder) return undefined;
  return { database, id, encrypted: gpg !== undefined };
}

export function recordKey(dumpObjectKey: string): string {
  return `${dumpObjectKey}${RECORD_SUFFIX}`;
}
