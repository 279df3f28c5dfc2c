import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { targetFromEnv } from '../cli/context';
import { readConfig } from '../functions/core/config';
import { connectionFromEnv, libpqEnv, pgClientConfig } from '../functions/core/libpq';
import { formatSize } from '../functions/core/listing';
import { redact } from '../functions/core/redact';
import { SettingError, wholeNumber } from '../functions/core/setting-parsers';
import { defaultDoc, LIBPQ_SETTINGS, readSetting, SETTINGS, type Setting } from '../functions/core/settings';

const ALL = Object.values(SETTINGS) as Setting<unknown>[];
const WHOLE_NUMBERS = ALL.filter((s) => 'min' in s.parser) as (Setting<number> & {
  parser: { min: number; max: number };
})[];

/** A value as it would be written in the environment. */
function asEnv(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

describe('the settings table', () => {
  it("names each variable once, all DUMP_BAG_* but libpq's own whose default Dump Bag sets, each with a line of doc", () => {
    const names = ALL.map((s) => s.env);
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((n) => !n.startsWith('DUMP_BAG_'))).toEqual([...LIBPQ_SETTINGS]);
    for (const s of ALL) {
      if (!(LIBPQ_SETTINGS as readonly string[]).includes(s.env))
        expect(s.env).toMatch(/^DUMP_BAG_[A-Z0-9_]+$/);
      expect(s.doc.length).toBeGreaterThan(5);
      expect(s.doc).not.toContain('\n');
    }
    expect(WHOLE_NUMBERS.map((s) => s.env)).toContain('DUMP_BAG_PART_SIZE_MIB');
  });

  it.each(ALL.map((s) => [s.env, s] as const))(
    '%s parses its default (and is the default when unset)',
    (env, s) => {
      if (s.required) {
        expect(() => readSetting(s, {})).toThrow(new RegExp(`^${env} is not set: `));
        return;
      }
      expect(readSetting(s, {})).toEqual(s.default);
      expect(readSetting(s, { [env]: '  ' })).toEqual(s.default);
      if (s.default !== undefined) expect(readSetting(s, { [env]: asEnv(s.default) })).toEqual(s.default);
    },
  );

  it.each(WHOLE_NUMBERS.map((s) => [s.env, s] as const))(
    '%s takes its limits and refuses what lies outside',
    (env, s) => {
      const { min, max } = s.parser;
      expect(min).toBeLessThanOrEqual(s.default);
      expect(max).toBeGreaterThanOrEqual(s.default);
      expect(readSetting(s, { [env]: String(min) })).toBe(min);
      expect(readSetting(s, { [env]: ` ${max} ` })).toBe(max);
      for (const bad of ['abc', String(min - 1), String(max + 1), '1.5', '-3', '1e3', '0x10', '12abc']) {
        let caught: unknown;
        try {
          readSetting(s, { [env]: bad });
        } catch (error) {
          caught = error;
        }
        expect(caught, `${env}=${bad}`).toBeInstanceOf(SettingError);
        const error = caught as SettingError;
        expect(error.name).toBe('SettingError');
        expect(error.variable).toBe(env);
        expect(error.message).toContain(`${env} must be `);
        expect(error.message).toContain('a whole number');
        expect(error.message).toContain(`from ${min} to ${max}`);
        expect(error.message).toContain(`got "${bad}"`);
      }
    },
  );

  it('refuses an unknown encryption mode, naming the accepted ones', () => {
    expect(() => readConfig({ DUMP_BAG_BUCKET: 'b', DUMP_BAG_ENCRYPTION: 'pgp' })).toThrow(
      'DUMP_BAG_ENCRYPTION must be one of gpg, passphrase, none, got "pgp"',
    );
    expect(() => readSetting(SETTINGS.url, { DUMP_BAG_URL: 'ftp://bag' })).toThrow(
      /DUMP_BAG_URL must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/bag"/,
    );
  });

  it('never repeats the value of a secret setting in its error', () => {
    const secret: Setting<number> = {
      env: 'DUMP_BAG_TEST_SECRET',
      parser: wholeNumber(1, 9, ''),
      default: 1,
      doc: 'a test secret',
      secret: true,
      scope: 'bag',
    };
    expect(() => readSetting(secret, { DUMP_BAG_TEST_SECRET: 'hunter2' })).toThrow(
      /^DUMP_BAG_TEST_SECRET must be/,
    );
    expect(() => readSetting(secret, { DUMP_BAG_TEST_SECRET: 'hunter2' })).not.toThrow(/hunter2/);
    for (const s of [SETTINGS.token, SETTINGS.keyPassphrase, SETTINGS.passphrase])
      expect(s.secret).toBe(true);
  });

  it('the command line refuses DUMP_BAG_PART_SIZE_MIB=abc instead of uploading NaN-sized parts', () => {
    const config = readConfig({ DUMP_BAG_BUCKET: 'b', DUMP_BAG_ENCRYPTION: 'none' });
    expect(() => targetFromEnv(config, { DUMP_BAG_PART_SIZE_MIB: 'abc' })).toThrow(
      'DUMP_BAG_PART_SIZE_MIB must be a whole number of MiB from 5 to 5120, got "abc"',
    );
    expect(() => targetFromEnv(config, { DUMP_BAG_UPLOAD_CONCURRENCY: '0' })).toThrow(
      /DUMP_BAG_UPLOAD_CONCURRENCY/,
    );
    const target = targetFromEnv(config, {
      DUMP_BAG_PART_SIZE_MIB: '8',
      PGHOST: 'db.example',
      PGPORT: '5433',
    });
    expect(target.upload).toEqual({
      partSize: 8 * 1024 * 1024,
      concurrency: SETTINGS.uploadConcurrency.default,
    });
    expect(target.connection).toMatchObject({ host: 'db.example', port: 5433 });
    expect(formatSize(1500)).toBe('1.5 KB');
  });
});

describe("the README's Configuration table", () => {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const lines = readme.split('\n');
  const header = lines.findIndex((l) => /^\|\s*variable\s*\|\s*default\s*\|\s*meaning\s*\|/.test(l));
  const rows: string[] = [];
  for (let i = header + 2; header >= 0 && lines[i]?.startsWith('|'); i++) rows.push(lines[i] as string);
  /** Cells of a row, the `|` inside backticks (none today) not expected. */
  const cells = (row: string) =>
    row
      .slice(1, -1)
      .split(' | ')
      .map((c) => c.trim());
  const documented = new Map(
    rows
      .map(cells)
      .filter(([name]) => /^`(DUMP_BAG_[A-Z0-9_]+|PGSSLMODE|PGSSLROOTCERT)`$/.test(name ?? ''))
      .map(([name, def, meaning]) => [(name as string).slice(1, -1), { def, meaning }]),
  );

  it('lists exactly the settings of the table', () => {
    expect(header).toBeGreaterThanOrEqual(0);
    expect([...documented.keys()].sort()).toEqual(ALL.map((s) => s.env).sort());
  });

  it('gives each the same default and its line of doc', () => {
    for (const s of ALL) {
      const row = documented.get(s.env);
      expect(row?.def, s.env).toBe(defaultDoc(s));
      expect(row?.meaning?.startsWith(s.doc), `${s.env}: "${row?.meaning}" starts with "${s.doc}"`).toBe(
        true,
      );
    }
  });
});

describe('one redact(), one libpq builder', () => {
  it('redact blanks every occurrence of every secret and ignores empty ones', () => {
    expect(redact('password "s3cr3t" for s3cr3t@host, pw2', ['s3cr3t', undefined, '', 'pw2'])).toBe(
      'password "***" for ***@host, ***',
    );
    expect(redact('nothing here', [])).toBe('nothing here');
  });

  it('reads libpq variables and writes them back for a child process', () => {
    const env = {
      PGHOST: ' db.example ',
      PGPORT: '6543',
      PGUSER: 'dump',
      PGPASSWORD: ' pass word ',
      PGSSLMODE: 'verify-full',
      PGDATABASE: 'maint',
    };
    const connection = connectionFromEnv(env);
    expect(connection).toEqual({
      host: 'db.example',
      port: 6543,
      user: 'dump',
      password: ' pass word ',
      sslmode: 'verify-full',
      maintenanceDatabase: 'maint',
    });
    // A checked certificate needs a CA file for pg_dump: the RDS bundle unless PGSSLROOTCERT names one.
    expect(libpqEnv(connection)).toEqual({
      ...env,
      PGHOST: 'db.example',
      PGSSLROOTCERT: expect.stringMatching(/rds-ca-bundle\.pem$/),
    });
    expect(pgClientConfig(connection)).toMatchObject({
      host: 'db.example',
      port: 6543,
      database: 'maint',
      ssl: { rejectUnauthorized: true },
    });
    expect(pgClientConfig({ sslmode: 'require' }, 'shop')).toMatchObject({
      database: 'shop',
      ssl: { rejectUnauthorized: false },
    });
    expect(pgClientConfig({ sslmode: 'disable' }).ssl).toBeUndefined();
    expect(libpqEnv(connectionFromEnv({}))).toEqual({});
  });

  it('refuses a PGPORT that is not a port, naming it', () => {
    for (const bad of ['abc', '0', '65536']) {
      expect(() => connectionFromEnv({ PGPORT: bad })).toThrow(
        `PGPORT must be a whole number from 1 to 65535, got "${bad}"`,
      );
    }
  });
});
