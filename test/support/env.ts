import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { inject } from 'vitest';
import { connectionFromEnv, type PgConnection } from '../../functions/core/libpq';
import { databaseConninfo } from '../../functions/core/pg-dump';
import { createS3Client } from '../../functions/core/s3';
import { runProcess } from './process';

/** The shared services, and environments for the tools and the code under test. */
export function services() {
  const s = inject('services');
  const s3Env = {
    AWS_ENDPOINT_URL_S3: s.s3Endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  };
  return { ...s, s3Env, env: { ...s.pgEnv, ...s3Env } };
}

/** A client of the shared S3 API server. */
export function s3Client(): S3Client {
  return createS3Client(services().s3Env);
}

/** A new, empty bucket of this test's own, so tests running side by side never see each other's dumps. */
export async function freshBucket(client = s3Client()): Promise<string> {
  const bucket = `test-${randomBytes(6).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** A client of the shared PostgreSQL (or of the server `e` names), connected to `database`. */
export async function pgClient(database = 'postgres', e = services().pgEnv): Promise<pg.Client> {
  const client = new pg.Client({
    host: e.PGHOST,
    port: Number(e.PGPORT),
    user: e.PGUSER,
    password: e.PGPASSWORD,
    database,
  });
  await client.connect();
  return client;
}

/** A server's login (the shared PostgreSQL's by default) as the core's connection settings. */
export function pgConnection(e = services().pgEnv): PgConnection {
  return connectionFromEnv(e);
}

/** Creates an empty database (any name), dropping an older one of the same name. */
export async function emptyDatabase(name: string, pgEnv?: Record<string, string>): Promise<void> {
  const admin = await pgClient('postgres', pgEnv);
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)}`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
}

/** Creates a database (any name) filled by `sql`, dropping an older one of the same name. */
export async function createDatabase(
  name: string,
  sql: string,
  pgEnv?: Record<string, string>,
): Promise<void> {
  await emptyDatabase(name, pgEnv);
  const db = await pgClient(name, pgEnv);
  try {
    await db.query(sql);
  } finally {
    await db.end();
  }
}

/** Drops the databases (any names) a test made; one already gone is no error. */
export async function dropDatabases(names: Iterable<string>, pgEnv?: Record<string, string>): Promise<void> {
  const admin = await pgClient('postgres', pgEnv);
  try {
    for (const name of names) await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
}

/** The names of a database's tables in its public schema, sorted. */
export async function publicTables(database: string, pgEnv?: Record<string, string>): Promise<string[]> {
  const db = await pgClient(database, pgEnv);
  try {
    const r = await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    return r.rows.map((row) => row.tablename as string);
  } finally {
    await db.end();
  }
}

/** Rows of a query as JSON text, for comparing a database with its restored copy. */
export async function snapshot(
  database: string,
  query: string,
  pgEnv?: Record<string, string>,
): Promise<string> {
  const db = await pgClient(database, pgEnv);
  try {
    return JSON.stringify((await db.query(query)).rows);
  } finally {
    await db.end();
  }
}

/** The bytes of an object. */
export async function getObjectBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(
    await (response.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
}

/** Every key in a bucket. */
export async function allKeys(client: S3Client, bucket: string): Promise<string[]> {
  const { listObjects } = await import('../../functions/core/catalog');
  return (await listObjects(client, bucket, '')).map((o) => o.key).sort();
}

/** Multipart uploads still open in a bucket (aborted ones are gone). */
export async function openUploads(client: S3Client, bucket: string): Promise<string[]> {
  const { ListMultipartUploadsCommand } = await import('@aws-sdk/client-s3');
  const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (page.Uploads ?? []).map((u) => u.Key ?? '');
}

/** Restores a custom-format dump into a new database with the system's pg_restore. */
export async function restoreInto(database: string, dump: Buffer): Promise<void> {
  await emptyDatabase(database);
  const { code, stderr } = await runProcess(
    'pg_restore',
    ['--no-owner', '--exit-on-error', `--dbname=${databaseConninfo(database)}`],
    { env: { ...process.env, ...services().pgEnv } },
    dump,
  );
  if (code !== 0) throw new Error(`pg_restore exited ${code}: ${stderr}`);
}

/** The rows `query` reads from `dump` restored into a scratch copy of `database`, dropped afterwards. */
export async function restoredRows(dump: Buffer, database: string, query: string): Promise<string> {
  const restored = `${database}_r_${randomBytes(2).toString('hex')}`;
  await restoreInto(restored, dump);
  try {
    return await snapshot(restored, query);
  } finally {
    await dropDatabases([restored]);
  }
}
