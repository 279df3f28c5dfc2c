import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The daemons GnuPG starts on its own for a home (`gpgconf --kill all` stops them all). */
const GNUPG_DAEMONS = /(^|\/)(gpg-agent|dirmngr|keyboxd|scdaemon)$/;

export interface GnupgDaemon {
  readonly pid: number;
  readonly command: string;
  readonly homedir: string;
}

function isInside(path: string, folder: string): boolean {
  const rel = relative(resolve(folder), resolve(path));
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
}

/** GnuPG daemons running for a home inside `folder`, read from /proc (their command line names it). */
export function gnupgDaemonsIn(folder: string): GnupgDaemon[] {
  const found: GnupgDaemon[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(join('/proc', entry, 'cmdline'), 'utf8').split('\0');
    } catch {
      continue; // It exited meanwhile.
    }
    const [command = '', ...args] = argv;
    if (!GNUPG_DAEMONS.test(command)) continue;
    const at = args.indexOf('--homedir');
    const homedir = at >= 0 ? args[at + 1] : undefined;
    if (homedir && isInside(homedir, folder)) found.push({ pid: Number(entry), command, homedir });
  }
  return found;
}

/** Stops every GnuPG daemon of a home inside `folder`, and waits (up to 5 s) for them to be gone. */
export async function stopGnupgDaemons(folder: string): Promise<void> {
  const daemons = gnupgDaemonsIn(folder);
  for (const home of new Set(daemons.map((d) => d.homedir))) {
    try {
      execFileSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // The home may be gone already; the daemon is then killed by its pid below.
    }
  }
  const deadline = Date.now() + 5000;
  for (const d of daemons) {
    while (existsSync(`/proc/${d.pid}`) && Date.now() < deadline) {
      await sleep(50);
    }
    if (existsSync(`/proc/${d.pid}`)) {
      try {
        process.kill(d.pid, 'SIGTERM');
      } catch {
        // Gone between the check and the kill.
      }
    }
  }
}

/** Removes a temporary folder after stopping the GnuPG daemons of any home inside it. */
export async function removeTemp(folder: string): Promise<void> {
  await stopGnupgDaemons(folder);
  rmSync(folder, { recursive: true, force: true });
}

const made = new Set<string>();

/**
 * A new folder under the temporary folder, removed (its GnuPG daemons stopped first) when the test
 * file ends, passed or failed: test/support/cleanup-setup.ts runs removeAllTemps in afterAll.
 */
export function tempDir(prefix = 'dump-bag-tmp-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}

/** A new, private GnuPG home (gpg refuses a home others can read), removed like tempDir's. */
export function gnupgHome(prefix = 'dump-bag-gpg-'): string {
  const home = tempDir(prefix);
  chmodSync(home, 0o700);
  return home;
}

/** Removes every folder tempDir made in this test file; a folder that cannot be removed is reported. */
export async function removeAllTemps(): Promise<void> {
  const failures: string[] = [];
  for (const dir of made) {
    try {
      await removeTemp(dir);
      made.delete(dir);
    } catch (error: unknown) {
      failures.push(`${dir}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (failures.length) throw new Error(`temporary folders not removed:\n  ${failures.join('\n  ')}`);
}

export interface Leftovers {
  /** `dump-bag-*` entries still in the folder. */
  readonly folders: string[];
  readonly daemons: GnupgDaemon[];
}

/** What a run left in its temporary folder: the end-of-suite check fails the run unless both are empty. */
export function leftovers(root: string): Leftovers {
  const folders = existsSync(root)
    ? readdirSync(root)
        .filter((name) => name.startsWith('dump-bag-'))
        .map((name) => join(root, name))
        .sort()
    : [];
  return { folders, daemons: gnupgDaemonsIn(root) };
}

/** A report of leftovers, one line each, or undefined when there are none. */
export function describeLeftovers({ folders, daemons }: Leftovers): string | undefined {
  if (folders.length === 0 && daemons.length === 0) return undefined;
  return [
    `the tests left ${folders.length} temporary folder(s) and ${daemons.length} GnuPG daemon(s) behind (use tempDir/gnupgHome from test/support/temp.ts, stop what a test starts in afterAll or finally):`,
    ...folders.map((f) => `  folder ${f}`),
    ...daemons.map((d) => `  ${d.command} pid ${d.pid} for --homedir ${d.homedir}`),
  ].join('\n');
}

/** Fails (listing them) if the tests left temporary folders or GnuPG daemons in `root`; removes them all. */
export async function checkAndRemoveTempRoot(root: string): Promise<void> {
  const report = describeLeftovers(leftovers(root));
  await removeTemp(root);
  if (report) throw new Error(report);
}
