import { ValidationError } from './errors';

/** Every dump lives under this prefix; nothing outside it is ever written or deleted. */
export const DUMPS_PREFIX = 'dumps/';
/** The catalog record of a dump is stored next to it under the dump's key plus this suffix. */
export const RECORD_SUFFIX = '.json';

const ID_PATTERN = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/;
const KEY_PATTERN = /^dumps\/([^/]+)\/([^/]+)-(\d{8}-\d{6})\.pg(\.gpg)?$/;

/** PostgreSQL's own limit on identifiers, in bytes. */
export const MAX_DATABASE_NAME_BYTES = 63;

/** A dump's id: its start time in UTC as `YYYYMMDD-HHMMSS`. */
export function dumpId(date: Date): string {
  const iso = date.toISOString(); // 2026-11-23T18:46:55.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

export function isDumpId(value: string): boolean {
  return idToDate(value) !== undefined;
}

/** The time a dump id stands for, or undefined when it is not a valid id. */
export function idToDate(id: string): Date | undefined {
  const m = ID_PATTERN.exec(id);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Reject ids such as 20261399-256199 that Date.UTC would silently roll over.
  return dumpId(date) === id ? date : undefined;
}

/** Throws unless `name` is something PostgreSQL could call a database. */
export function assertDatabaseName(name: string): void {
  if (name.length === 0) throw new ValidationError('database name is empty');
  if (name.includes('\0')) throw new ValidationError('database name contains a NUL byte');
  if (Buffer.byteLength(name, 'utf8') > MAX_DATABASE_NAME_BYTES) {
    throw new ValidationError(`database name is longer than ${MAX_DATABASE_NAME_BYTES} bytes`);
  }
}

/** The folder of one database's dumps: `dumps/<db>/`, `<db>` percent-encoded. */
export function databasePrefix(database: string): string {
  return `${DUMPS_PREFIX}${encodeURIComponent(database)}/`;
}

/** `dumps/<db>/<db>-<YYYYMMDD-HHMMSS>.pg.gpg` (`.pg` when unencrypted). */
export function dumpKey(database: string, id: string, encrypted: boolean): string {
  const db = encodeURIComponent(database);
  return `${DUMPS_PREFIX}${db}/${db}-${id}.pg${encrypted ? '.gpg' : ''}`;
}

export interface ParsedDumpKey {
  database: string;
  id: string;
  encrypted: boolean;
}

/** The parts of a dump key, or undefined for any key that is not exactly one Dump Bag writes. */
export function parseDumpKey(key: string): ParsedDumpKey | undefined {
  const m = KEY_PATTERN.exec(key);
  if (!m) return undefined;
  const [, folder, file, id, gpg] = m as unknown as [string, string, string, string, string | undefined];
  if (folder !== file || !isDumpId(id)) return undefined;
  let database: string;
  try {
    database = decodeURIComponent(folder);
  } catch {
    return undefined;
  }
  if (encodeURIComponent(database) !== folder) return undefined;
  return { database, id, encrypted: gpg !== undefined };
}

export function recordKey(dumpObjectKey: string): string {
  return `${dumpObjectKey}${RECORD_SUFFIX}`;
}
