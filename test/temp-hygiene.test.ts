import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startLocalPostgres } from '../cli/local/services';
import {
  checkAndRemoveTempRoot,
  gnupgDaemonsIn,
  gnupgHome,
  leftovers,
  removeAllTemps,
  tempDir,
} from './support/temp';

/** Starts a real gpg-agent for a home, as gpg does on first use. */
function launchAgent(home: string): void {
  execFileSync('gpgconf', ['--homedir', home, '--launch', 'gpg-agent'], { stdio: 'ignore' });
}

describe('the end-of-suite check for leftovers', () => {
  it('fails listing a dump-bag-* folder and the gpg-agent of a home in it, then removes both', async () => {
    const root = tempDir('dump-bag-hygiene-');
    const left = mkdtempSync(join(root, 'dump-bag-left-'));
    const home = join(left, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    launchAgent(home);
    const found = leftovers(root);
    expect(found.folders).toEqual([left]);
    expect(found.daemons.map((d) => [d.command.split('/').pop(), d.homedir])).toEqual([['gpg-agent', home]]);
    const failure = checkAndRemoveTempRoot(root);
    await expect(failure).rejects.toThrow(/left 1 temporary folder\(s\) and 1 GnuPG daemon\(s\)/);
    await expect(failure).rejects.toThrow(`folder ${left}`);
    await expect(failure).rejects.toThrow(`--homedir ${home}`);
    expect(existsSync(root)).toBe(false);
    expect(gnupgDaemonsIn(home)).toEqual([]);
    const pid = found.daemons[0]?.pid;
    expect(pid && existsSync(`/proc/${pid}`)).toBe(false);
  });

  it('passes over a folder holding nothing of the tests', async () => {
    const root = tempDir('dump-bag-hygiene-');
    mkdirSync(join(root, 'cdk.out-not-ours'));
    expect(leftovers(root)).toEqual({ folders: [], daemons: [] });
    await expect(checkAndRemoveTempRoot(root)).resolves.toBeUndefined();
    expect(existsSync(root)).toBe(false);
  });

  it("removes a test file's tempDir and gnupgHome folders and stops their agents when the file ends", async () => {
    const dir = tempDir();
    const home = gnupgHome();
    launchAgent(home);
    const [agent] = gnupgDaemonsIn(home);
    expect(agent?.homedir).toBe(home);
    await removeAllTemps(); // what cleanup-setup.ts runs in afterAll
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(home)).toBe(false);
    expect(existsSync(`/proc/${agent?.pid}`)).toBe(false);
  });
});

describe('a throwaway PostgreSQL (the suite’s own)', () => {
  it('leaves no folder behind once stopped, also where root had its data moved out of a private folder', async () => {
    const serverFolders = () => readdirSync(tmpdir()).filter((name) => name.startsWith('dump-bag-postgres-'));
    const before = serverFolders();
    const postgres = await startLocalPostgres(join(tempDir('dump-bag-hygiene-pg-'), 'postgres'), {
      persistent: false,
    });
    try {
      expect(postgres.port).toBeGreaterThan(0);
    } finally {
      await postgres.stop();
    }
    expect(serverFolders()).toEqual(before);
  }, 120_000);
});
