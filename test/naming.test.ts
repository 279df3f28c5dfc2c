import { describe, expect, it } from 'vitest';
import { newestFirst } from '../functions/core/catalog';
import { parseList, readConfig } from '../functions/core/config';
import {
  assertDatabaseName,
  databasePrefixes,
  dumpId,
  dumpKey,
  idToDate,
  isDumpId,
  parseDumpKey,
  uniqueDumpId,
} from '../functions/core/naming';
import { databaseConninfo } from '../functions/core/pg-dump';

describe('naming', () => {
  it('dump keys round-trip for any database name and never contain a raw slash in the name', () => {
    for (const name of ['plain', 'sp ace', 'sl/ash', '..', 'a=b', `q'"`, 'ünï ✓', '<script>', '%41']) {
      const key = dumpKey(name, '20261123-030000', true);
      expect(key.split('/')).toHaveLength(3);
      expect(parseDumpKey(key)).toEqual({ database: name, id: '20261123-030000', encrypted: true });
    }
    expect(dumpKey('a b', '20261123-030000', false)).toBe('dumps/a%20b/a%20b-20261123-030000.pg');
  });
  it('rejects keys that Dump Bag would not write', () => {
    for (const key of [
      'dumps/a/b-20261123-030000.pg.gpg',
      'dumps/a/a-20261399-030000.pg.gpg',
      'dumps/a/a-20261123-030000.pg.gpg.json',
      'other/a/a-20261123-030000.pg',
      'dumps/a b/a b-20261123-030000.pg',
      'dumps/%zz/%zz-20261123-030000.pg',
    ]) {
      expect(parseDumpKey(key), key).toBeUndefined();
    }
  });
  it('ids are UTC seconds and reject impossible dates', () => {
    expect(dumpId(new Date('2026-01-02T03:04:05.678Z'))).toBe('20260102-030405');
    expect(idToDate('20260102-030405')?.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(idToDate('20260230-000000')).toBeUndefined();
    expect(idToDate('latest')).toBeUndefined();
  });
  it('new ids start with the UTC second, carry milliseconds and a random part, and never repeat', () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    const id = uniqueDumpId(at, () => Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    expect(id).toBe('20260102-030405-678-deadbeef');
    expect(idToDate(id)?.toISOString()).toBe('2026-01-02T03:04:05.678Z');
    const ids = new Set(Array.from({ length: 1000 }, () => uniqueDumpId(at)));
    expect(ids.size).toBe(1000);
    for (const bad of [
      '20260102-030405-678',
      '20260102-030405-678-DEADBEEF',
      '20260102-030405-67-deadbeef',
      '20260230-030405-678-deadbeef',
      '20260102-030405-678-deadbeef0',
    ]) {
      expect(isDumpId(bad), bad).toBe(false);
    }
  });
  it('old and new ids sort together in time order, as text and by newestFirst', () => {
    const ids = [
      '20260102-030406',
      '20260102-030405-999-00000000',
      '20260102-030405',
      '20260102-030406-001-ffffffff',
      '20260102-030405-000-12345678',
    ];
    const sorted = ids
      .map((id) => ({ id, database: 'd' }))
      .sort(newestFirst)
      .map((d) => d.id);
    expect(sorted).toEqual([
      '20260102-030406-001-ffffffff',
      '20260102-030406',
      '20260102-030405-999-00000000',
      '20260102-030405-000-12345678',
      '20260102-030405',
    ]);
    const times = sorted.map((id) => idToDate(id)?.getTime() as number);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });
  it('keys with new ids parse, also for names that end in something id-like', () => {
    const id = '20261123-030000-042-0a1b2c3d';
    for (const name of ['plain', 'x-20261123-030000', 'y-20261123-030000-042-0a1b2c3d', '.', '..', '...']) {
      const key = dumpKey(name, id, false);
      expect(parseDumpKey(key), key).toEqual({ database: name, id, encrypted: false });
      expect(parseDumpKey(dumpKey(name, '20261123-030000', true)), name).toEqual({
        database: name,
        id: '20261123-030000',
        encrypted: true,
      });
    }
  });
  it('no key segment is . or ..: dot-only names are percent-encoded, and the keys of older versions still parse', () => {
    expect(dumpKey('..', '20261123-030000', true)).toBe('dumps/%2E%2E/%2E%2E-20261123-030000.pg.gpg');
    expect(dumpKey('.', '20261123-030000', true)).toBe('dumps/%2E/%2E-20261123-030000.pg.gpg');
    for (const name of ['.', '..', 'a.b', '...']) {
      expect(dumpKey(name, '20261123-030000', true).split('/').slice(1, 2), name).not.toContain('.');
      expect(dumpKey(name, '20261123-030000', true).split('/').slice(1, 2), name).not.toContain('..');
    }
    expect(parseDumpKey('dumps/../..-20261123-030000.pg.gpg')).toEqual({
      database: '..',
      id: '20261123-030000',
      encrypted: true,
    });
    expect(parseDumpKey('dumps/./.-20261123-030000.pg')?.database).toBe('.');
    expect(databasePrefixes('..')).toEqual(['dumps/%2E%2E/', 'dumps/../']);
    expect(databasePrefixes('plain')).toEqual(['dumps/plain/']);
    // Mixed spellings of one name are no key Dump Bag wrote.
    expect(parseDumpKey('dumps/%2E%2E/..-20261123-030000.pg')).toBeUndefined();
  });
  it('database names: empty, NUL and over 63 bytes are refused', () => {
    expect(() => assertDatabaseName('')).toThrow(/empty/);
    expect(() => assertDatabaseName('a\0b')).toThrow(/NUL/);
    expect(() => assertDatabaseName('é'.repeat(32))).toThrow(/63 bytes/);
    expect(() => assertDatabaseName('é'.repeat(31))).not.toThrow();
  });
  it('the database reaches pg_dump as a quoted dbname, never as a connection string', () => {
    expect(databaseConninfo('a=b')).toBe("dbname='a=b'");
    expect(databaseConninfo(`it's\\x`)).toBe("dbname='it\\'s\\\\x'");
  });
});

describe('configuration', () => {
  it('comma lists trim blanks and honour \\, inside names', () => {
    expect(parseList(' a, b ,,c\\,d ')).toEqual(['a', 'b', 'c,d']);
    expect(parseList(undefined)).toEqual([]);
  });
  it('names the variable at fault', () => {
    const base = { DUMP_BAG_BUCKET: 'b', DUMP_BAG_ENCRYPTION: 'none' };
    expect(() => readConfig({})).toThrow(/DUMP_BAG_BUCKET/);
    expect(() => readConfig({ DUMP_BAG_BUCKET: 'b' })).toThrow(/DUMP_BAG_PUBLIC_KEYS/);
    expect(() => readConfig({ ...base, DUMP_BAG_ENCRYPTION: 'rot13' })).toThrow(
      /DUMP_BAG_ENCRYPTION must be/,
    );
    expect(() => readConfig({ ...base, DUMP_BAG_ENCRYPTION: 'passphrase' })).toThrow(
      /DUMP_BAG_PASSPHRASE_FILE/,
    );
    expect(() => readConfig({ ...base, DUMP_BAG_KEEP_MIN: 'three' })).toThrow(
      /DUMP_BAG_KEEP_MIN must be a whole number/,
    );
    expect(() => readConfig({ ...base, DUMP_BAG_RETENTION_DAYS: '0' })).toThrow(
      /DUMP_BAG_RETENTION_DAYS must be at least 1/,
    );
    expect(readConfig({ ...base, DUMP_BAG_DATABASES: 'x, y', DUMP_BAG_RETENTION_DAYS: '10' })).toMatchObject({
      databases: ['x', 'y'],
      retention: { retentionDays: 10, manualRetentionDays: 7, keepMin: 3 },
    });
  });
});
