import { ConfigError } from './errors';

/** The parsers the settings table (settings.ts) is written with, and the error they raise. */

/** A setting's value is malformed or missing; the message names the variable and what it accepts. */
export class SettingError extends ConfigError {
  override name = 'SettingError';
  constructor(
    message: string,
    /** The environment variable at fault. */
    readonly variable: string,
  ) {
    super(message);
  }
}

/** Turns a non-blank raw value into the setting's value, or undefined when it is not accepted. */
export interface Parser<T> {
  /** What the setting accepts, for error messages: "a whole number from 1 to 43200 (seconds)". */
  readonly accepts: string;
  parse(raw: string): T | undefined;
  /** A sharper phrase than `accepts` for a refused value, e.g. "at least 1 (…)". */
  refusal?(raw: string): string | undefined;
}

export interface WholeNumberLimits {
  readonly min: number;
  readonly max: number;
}

/** A whole number within limits, e.g. days or seconds. */
export function wholeNumber(min: number, max: number, unit: string): Parser<number> & WholeNumberLimits {
  const accepts = `a whole number ${unit ? `of ${unit} ` : ''}from ${min} to ${max}`;
  return {
    min,
    max,
    accepts,
    parse(raw) {
      const text = raw.trim();
      if (!/^\d{1,15}$/.test(text)) return undefined;
      const value = Number(text);
      return value >= min && value <= max ? value : undefined;
    },
    refusal(raw) {
      const text = raw.trim();
      return /^\d{1,15}$/.test(text) && Number(text) < min ? `at least ${min} (${accepts})` : undefined;
    },
  };
}

/** A number within limits that may have a fraction, e.g. a size in GB. */
export function decimal(min: number, max: number, unit: string): Parser<number> {
  return {
    accepts: `a number of ${unit} from ${min} to ${max}`,
    parse(raw) {
      const text = raw.trim();
      if (!/^\d{1,15}(\.\d{1,15})?$/.test(text)) return undefined;
      const value = Number(text);
      return value >= min && value <= max ? value : undefined;
    },
  };
}

/** One of a fixed list of words. */
export function oneOf<const V extends string>(
  values: readonly V[],
): Parser<V> & { readonly values: readonly V[] } {
  return {
    values,
    accepts: `one of ${values.join(', ')}`,
    parse: (raw) => values.find((v) => v === raw.trim()),
  };
}

/** Any non-blank text, trimmed: a path, a name, an ARN or a URL checked where it is used. */
export function text(what: string): Parser<string | undefined> {
  return { accepts: what, parse: (raw) => raw.trim() };
}

/** Text kept exactly as given (a passphrase may begin or end with a blank). */
export function secretText(what: string): Parser<string | undefined> {
  return { accepts: what, parse: (raw) => raw };
}

/** An on/off switch: 1, true, 0 or false. */
export const flag: Parser<boolean | undefined> = {
  accepts: '1, true, 0 or false',
  parse(raw) {
    const value = raw.trim();
    if (value === '1' || value === 'true') return true;
    if (value === '0' || value === 'false') return false;
    return undefined;
  },
};

/** An http(s) URL. */
export const httpUrl: Parser<string> = {
  accepts: 'an http:// or https:// URL',
  parse(raw) {
    try {
      const url = new URL(raw.trim());
      return url.protocol === 'http:' || url.protocol === 'https:' ? raw.trim() : undefined;
    } catch {
      return undefined;
    }
  },
};

/** Splits a comma list; `\,` keeps a comma inside a name, blanks around entries are dropped. */
export function parseList(value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') return [];
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      current += value[++i];
    } else if (c === ',') {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  out.push(current);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

/** A comma list (`\,` for a comma inside an entry). */
export const commaList: Parser<readonly string[]> = {
  accepts: 'a comma list',
  parse: (raw) => parseList(raw),
};
