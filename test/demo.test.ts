import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/temp';

const cli = join(import.meta.dirname, '..', 'bin', 'dump-bag.js');

/** The environment of a newcomer: nothing of ours, no PG* or AWS* settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(PG|AWS_|DUMP_BAG_)/.test(k)),
  ) as NodeJS.ProcessEnv;
}

describe('npm start (dump-bag demo)', () => {
  it('backs up the demo databases and prints commands that really decrypt a dump', () => {
    const cwd = tempDir('dump-bag-demo-');
    chmodSync(cwd, 0o755); // so the embedded server keeps its data here, removed below
    const run = spawnSync(process.execPath, [cli, 'demo'], {
      cwd,
      env: cleanEnv(),
      encoding: 'utf8',
      timeout: 170_000,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/ok {6}shop /);
    expect(run.stdout).toMatch(/ok {6}café "analytics" /);
    expect(run.stdout).toMatch(/peak RSS of this process \d+ MiB/);

    // Run the printed decrypt commands exactly as a user would paste them.
    const commands = run.stdout
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.startsWith('gpg '));
    expect(commands).toHaveLength(2);
    for (const command of commands) execFileSync('sh', ['-c', command], { cwd, stdio: 'pipe' });
    const list = execFileSync('pg_restore', ['--list', join(cwd, 'shop.pgdump')], { encoding: 'utf8' });
    expect(list).toMatch(/TABLE DATA public customers/);
    expect(list).toMatch(/TABLE DATA public orders/);
    rmSync(cwd, { recursive: true, force: true });
  }, 180_000);
});
