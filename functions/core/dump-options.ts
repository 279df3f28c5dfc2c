import { ConfigError } from './errors';

/**
 * pg_dump options a bag may add (DUMP_BAG_DUMP_OPTIONS, the stack's `dumpOptions`): only flags that
 * change *what* is dumped. Anything touching the format, the output, the connection, or running
 * commands would break the pipeline's checks or widen what the dump role can do, so it is refused.
 */

/** A flag that takes a pattern (`--flag=VALUE` or `--flag VALUE`). */
const WITH_VALUE = new Set(['--exclude-table', '--exclude-table-data', '--schema', '--exclude-schema']);
/** A flag that stands alone. */
const SWITCHES = new Set([
  '--no-comments',
  '--no-publications',
  '--no-subscriptions',
  '--no-security-labels',
  '--no-tablespaces',
  '--no-large-objects',
]);
/** PostgreSQL identifiers are 63 bytes; a qualified pattern with quotes and wildcards fits in this. */
const MAX_VALUE_LENGTH = 300;
/** Options per database (all + its own), far beyond any sensible list. */
const MAX_OPTIONS = 100;
/** The key that applies to every database. */
export const ALL_DATABASES = '*';

/** The options of one database, already validated, in pg_dump's `--flag=value` form. */
export type DumpOptions = readonly string[];

/** Options by database; `*` applies to all, a database's own come after. */
export type DumpOptionsByDatabase = Readonly<Record<string, DumpOptions>>;

/** A dump option is not on the allow-list, or its value is malformed; the message names it and the fix. */
export class DumpOptionError extends ConfigError {
  override name = 'DumpOptionError';
}

function refuse(option: string, why: string): never {
  throw new DumpOptionError(
    `pg_dump option ${JSON.stringify(option.slice(0, 80))} ${why}; allowed: ${[...WITH_VALUE].map((f) => `${f}=PATTERN`).join(', ')}, ${[...SWITCHES].join(', ')}`,
  );
}

function checkValue(flag: string, value: string): string {
  if (value.length === 0) refuse(flag, 'needs a pattern');
  if (value.length > MAX_VALUE_LENGTH)
    refuse(flag, `has a pattern longer than ${MAX_VALUE_LENGTH} characters`);
  // A NUL cannot reach an argv; a newline or other control character is no part of a name pattern.
  if (/[\p{Cc}]/u.test(value)) refuse(flag, 'has a control character (NUL, newline…) in its pattern');
  return value;
}

/**
 * Validates a list of pg_dump arguments and returns them as `--flag=value` / `--flag`. A value may be
 * the next element (`["--exclude-table", "logs"]`). Throws a DumpOptionError naming the first bad one.
 */
export function validateDumpOptions(args: readonly unknown[]): DumpOptions {
  if (args.length > MAX_OPTIONS) throw new DumpOptionError(`more than ${MAX_OPTIONS} pg_dump options`);
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const { option, tookNext } = readOption(args, i);
    out.push(option);
    if (tookNext) i++;
  }
  return out;
}

/** The option at `args[i]` as `--flag` or `--flag=value`; `tookNext` when its value was the next element. */
function readOption(args: readonly unknown[], i: number): { option: string; tookNext: boolean } {
  const arg = args[i];
  if (typeof arg !== 'string') throw new DumpOptionError('each pg_dump option must be a string');
  const eq = arg.indexOf('=');
  const flag = eq === -1 ? arg : arg.slice(0, eq);
  if (SWITCHES.has(flag)) {
    if (eq !== -1) refuse(arg, 'takes no value');
    return { option: flag, tookNext: false };
  }
  if (WITH_VALUE.has(flag)) {
    // `--flag value` takes the next element; `--flag=value` carries its own.
    const joined = eq !== -1;
    const value = patternOf(flag, joined ? arg.slice(eq + 1) : args[i + 1], joined);
    return { option: `${flag}=${value}`, tookNext: !joined };
  }
  return refuse(
    arg,
    arg.startsWith('-')
      ? "changes the archive's format, its output or the connection, runs commands, or is unknown: it is refused"
      : 'is not an option (a value must follow the flag that takes it)',
  );
}

/** The checked pattern of a flag that takes one; a separate element must not be a flag slipped in as one. */
function patternOf(flag: string, value: unknown, joined: boolean): string {
  if (typeof value !== 'string') refuse(flag, 'needs a pattern');
  // `--schema --file=x` must not slip a flag in as the pattern.
  if (!joined && value.startsWith('-'))
    refuse(flag, `is followed by ${JSON.stringify(value.slice(0, 40))}, not a pattern`);
  return checkValue(flag, value);
}

/** Validates the whole setting: an array (for every database) or an object keyed by database name or `*`. */
export function validateDumpOptionsSetting(value: unknown): DumpOptionsByDatabase {
  if (Array.isArray(value)) return { [ALL_DATABASES]: validateDumpOptions(value) };
  if (value === null || typeof value !== 'object') {
    throw new DumpOptionError(
      'dump options must be a list of pg_dump flags, or an object of such lists keyed by database name or "*"',
    );
  }
  const out: Record<string, DumpOptions> = {};
  for (const [database, list] of Object.entries(value)) {
    if (!Array.isArray(list))
      throw new DumpOptionError(`dump options for ${JSON.stringify(database)} must be a list`);
    try {
      out[database] = validateDumpOptions(list);
    } catch (error: unknown) {
      if (error instanceof DumpOptionError) {
        throw new DumpOptionError(`dump options for ${JSON.stringify(database)}: ${error.message}`);
      }
      throw error;
    }
  }
  return out;
}

/** Parses DUMP_BAG_DUMP_OPTIONS (JSON); undefined when it is not JSON or not valid. */
export function parseDumpOptionsText(raw: string): DumpOptionsByDatabase {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new DumpOptionError(
      'dump options must be JSON: ["--exclude-table=logs"] or {"*": [...], "shop": [...]}',
    );
  }
  return validateDumpOptionsSetting(parsed);
}

/** The options one database is dumped with: those for all, then its own. */
export function optionsFor(byDatabase: DumpOptionsByDatabase | undefined, database: string): DumpOptions {
  if (!byDatabase) return [];
  return [
    ...(byDatabase[ALL_DATABASES] ?? []),
    ...(Object.hasOwn(byDatabase, database) ? (byDatabase[database] ?? []) : []),
  ];
}
