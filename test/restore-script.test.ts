import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { OpeningSettingsFilter, restoreAsScript } from '../cli/client/restore-script';
import { createDatabase, services, snapshot } from './support/env';

const OPENING = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  '',
  // pg_dump 17.6 and later open the script with psql's \restrict.
  '\\restrict 8Vd2m0aKcZ',
  '',
  'SET statement_timeout = 0;',
  'SET lock_timeout = 0;',
  'SET idle_in_transaction_session_timeout = 0;',
  'SET transaction_timeout = 0;',
  "SELECT pg_catalog.set_config('search_path', '', false);",
  '',
].join('\n');
const BODY = [
  'CREATE TABLE public.t (note text);',
  'COPY public.t (note) FROM stdin;',
  'SET transaction_timeout = 0;',
  '\\.',
  '',
].join('\n');

/** The script cut into pieces of `size` bytes, through the filter. */
function filtered(script: string, size: number): Promise<string> {
  const pieces: Buffer[] = [];
  for (let at = 0; at < script.length; at += size)
    pieces.push(Buffer.from(script.slice(at, at + size), 'latin1'));
  return text(Readable.from(pieces).pipe(new OpeningSettingsFilter()));
}

describe('the script filter for servers older than pg_restore 17', () => {
  it.each([1, 7, 64, 100_000])(
    'drops only the opening transaction_timeout line, in pieces of %i bytes',
    async (size) => {
      const out = await filtered(OPENING + BODY, size);
      expect(out).toBe(OPENING.replace('SET transaction_timeout = 0;\n', '') + BODY);
      // The same text inside the data, past the opening settings, is data and stays.
      expect(out.split('\n').filter((l) => l === 'SET transaction_timeout = 0;')).toHaveLength(1);
    },
  );

  it('passes a script without the line, and one without a final newline, unchanged', async () => {
    const plain = 'SET lock_timeout = 0;\nCREATE TABLE x ();';
    expect(await filtered(plain, 5)).toBe(plain);
  });

  it('a refused end (pg_restore failed) fails the stream instead of ending it', async () => {
    const filter = new OpeningSettingsFilter(() => Promise.reject(new Error('pg_restore failed')));
    await expect(text(Readable.from([Buffer.from('SET a = 1;\n')]).pipe(filter))).rejects.toThrow(
      'pg_restore failed',
    );
  });
});

describe('a restore as a script', () => {
  const SOURCE = 'script restore source';
  const ROWS = 'SELECT id, note FROM items ORDER BY id';
  /** libpq's conninfo of a database on the tests' server. */
  const conninfo = (database: string) => {
    const e = services().pgEnv as Record<string, string>;
    const q = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    return `host=${q(e.PGHOST ?? '')} port=${q(e.PGPORT ?? '')} user=${q(e.PGUSER ?? '')} password=${q(e.PGPASSWORD ?? '')} dbname=${q(database)}`;
  };
  const archive = async () => {
    await createDatabase(
      SOURCE,
      `CREATE TABLE items (id int PRIMARY KEY, note text);
       INSERT INTO items SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 20000) AS i;`,
    );
    return execFileSync('pg_dump', ['--format=custom', '--compress=0', `--dbname=${conninfo(SOURCE)}`], {
      maxBuffer: 64 * 1024 * 1024,
    });
  };

  it('restores the whole archive in one transaction, and a source that fails half-way restores nothing', async () => {
    const dump = await archive();
    await createDatabase('script restore whole', 'SELECT 1');
    const whole = await restoreAsScript(
      Readable.from([dump]),
      conninfo('script restore whole'),
      [],
      () => {},
    );
    expect(whole).toEqual({ ok: true });
    expect(await snapshot('script restore whole', ROWS)).toBe(await snapshot(SOURCE, ROWS));

    await createDatabase('script restore cut', 'SELECT 1');
    const cut = Readable.from(
      (async function* () {
        yield dump.subarray(0, Math.floor(dump.length * 0.6));
        await new Promise((r) => setTimeout(r, 200));
        throw new Error('the download failed its check');
      })(),
    );
    const failed = await restoreAsScript(cut, conninfo('script restore cut'), [], () => {});
    expect(failed.ok).toBe(false);
    expect(String(failed.streamError)).toContain('the download failed its check');
    // psql was killed before it could read an end: its transaction never committed.
    expect(
      await snapshot(
        'script restore cut',
        "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'items'",
      ),
    ).toBe('[{"n":0}]');
  });
});
