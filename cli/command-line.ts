import { parseArgs } from 'node:util';
import { DumpBagError } from '../functions/core/errors';

/** One option of a command: parseArgs reads its type, short and default; the help text its value and doc. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly default?: string | boolean;
  /** The option may be given several times (its value is then a list). */
  readonly multiple?: boolean;
  /** The value's placeholder in the usage line (FILE, URL, N); a string option only. */
  readonly value?: string;
  readonly doc: string;
}

export interface PositionalSpec {
  /** As the usage line shows it: `<database>`, `<id>|latest`. */
  readonly name: string;
  readonly optional?: boolean;
  readonly doc: string;
}

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  readonly name: string;
  readonly summary: string;
  readonly positionals: readonly PositionalSpec[];
  readonly options: O;
  /** Lines after the options: rules between them, where settings come from. */
  readonly notes?: readonly string[];
}

/** The command line was malformed: exit status 2, and the message points at the command's help. */
export class UsageError extends DumpBagError {
  override name = 'UsageError';
}

/** Keeps the literal option types, so that `values` is typed as precisely as parseArgs' own. */
export function command<const O extends Record<string, OptionSpec>>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

type Config<O extends Record<string, OptionSpec>> = { options: O; allowPositionals: true; strict: true };
export type Parsed<O extends Record<string, OptionSpec>> = {
  readonly values: ReturnType<typeof parseArgs<Config<O>>>['values'];
  readonly positionals: string[];
};

const HELP: OptionSpec = { type: 'boolean', short: 'h', doc: 'print this help and exit' };

function optionUsage(name: string, o: OptionSpec): string {
  const flag = o.short ? `-${o.short}` : `--${name}`;
  return o.type === 'boolean' ? `[${flag}]` : `[${flag} ${o.value ?? 'VALUE'}]`;
}

function positionalUsage(p: PositionalSpec): string {
  return p.optional ? `[${p.name}]` : p.name;
}

/** The one-line synopsis: `dump-bag get <database> [<id>|latest] [-o FILE] …`. */
export function usageLine(spec: CommandSpec): string {
  return [
    `dump-bag ${spec.name}`,
    ...spec.positionals.map(positionalUsage),
    ...Object.entries(spec.options).map(([name, o]) => optionUsage(name, o)),
  ].join(' ');
}

function table(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, doc]) => `  ${left.padEnd(width)}   ${doc}`);
}

/** What `dump-bag <command> --help` prints. */
export function helpText(spec: CommandSpec): string {
  const options = Object.entries({ ...spec.options, help: HELP }).map(([name, o]) => {
    const flags = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const fallback = o.default !== undefined && o.type === 'string' ? ` (default ${o.default})` : '';
    return [flags, `${o.doc}${fallback}`] as const;
  });
  const lines = [`usage: ${usageLine(spec)}`, '', spec.summary];
  if (spec.positionals.length > 0) {
    lines.push('', 'arguments:', ...table(spec.positionals.map((p) => [positionalUsage(p), p.doc] as const)));
  }
  lines.push('', 'options:', ...table(options));
  if (spec.notes?.length) lines.push('', ...spec.notes);
  return lines.join('\n');
}

function isParseArgsError(error: unknown): error is Error & { code: string } {
  return (
    error instanceof TypeError && String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
  );
}

/**
 * Parses a command's arguments by its spec. Returns 'help' when -h/--help was given; throws a
 * UsageError for an unknown option, a missing value or argument, or one argument too many.
 */
export function parseCommand<O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  argv: readonly string[],
): Parsed<O> | 'help' {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...spec.options, help: HELP },
      allowPositionals: true,
      strict: true,
    });
  } catch (error: unknown) {
    // A --help anywhere wins over what else is wrong on the line.
    if (argv.includes('--help') || argv.includes('-h')) return 'help';
    if (isParseArgsError(error)) throw new UsageError(error.message);
    throw error;
  }
  if (parsed.values.help === true) return 'help';
  const required = spec.positionals.filter((p) => !p.optional);
  const missing = required[parsed.positionals.length];
  if (missing) throw new UsageError(`missing ${missing.name}`);
  if (parsed.positionals.length > spec.positionals.length) {
    const extra = parsed.positionals.slice(spec.positionals.length).join(' ');
    throw new UsageError(`unexpected argument${extra.includes(' ') ? 's' : ''} "${extra}"`);
  }
  const { help: _, ...values } = parsed.values;
  return { values, positionals: parsed.positionals } as Parsed<O>;
}
