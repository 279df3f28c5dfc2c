import type pg from 'pg';
import { SettingError, wholeNumber } from './setting-parsers';

/** How to reach the server; anything left out falls back to libpq's own PG* variables. */
export interface PgConnection {
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  readonly password?: string;
  /** libpq's sslmode: disable, allow, prefer, require, verify-ca, verify-full. */
  readonly sslmode?: string;
  /** The database to connect to for listing the others. @default PGDATABASE or postgres */
  readonly maintenanceDatabase?: string;
}

type Env = Record<string, string | undefined>;

const PORT = wholeNumber(1, 65_535, '');

/** libpq's own variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE, PGDATABASE) as a connection. */
export function connectionFromEnv(env: Env = process.env): PgConnection {
  const value = (name: string) => env[name]?.trim() || undefined;
  const rawPort = value('PGPORT');
  const port = rawPort === undefined ? undefined : PORT.parse(rawPort);
  if (rawPort !== undefined && port === undefined) {
    throw new SettingError(`PGPORT must be ${PORT.accepts}, got "${rawPort}"`, 'PGPORT');
  }
  return {
    host: value('PGHOST'),
    port,
    user: value('PGUSER'),
    // Not trimmed: a password may begin or end with a blank.
    password: env.PGPASSWORD || undefined,
    sslmode: value('PGSSLMODE'),
    maintenanceDatabase: value('PGDATABASE'),
  };
}

/** The connection as libpq's variables, for a child process (pg_dump, psql); they override the parent's. */
export function libpqEnv(conn: PgConnection): Record<string, string> {
  const env: Record<string, string> = {};
  if (conn.host !== undefined) env.PGHOST = conn.host;
  if (conn.port !== undefined) env.PGPORT = String(conn.port);
  if (conn.user !== undefined) env.PGUSER = conn.user;
  if (conn.password !== undefined) env.PGPASSWORD = conn.password;
  if (conn.sslmode !== undefined) env.PGSSLMODE = conn.sslmode;
  if (conn.maintenanceDatabase !== undefined) env.PGDATABASE = conn.maintenanceDatabase;
  return env;
}

/**
 * The same connection as a `pg` client's settings, to `database` (default: the maintenance database,
 * else PGDATABASE, else postgres); sslmode as libpq reads it, with the process's PGSSLMODE as fallback.
 */
export function pgClientConfig(conn: PgConnection, database?: string): pg.ClientConfig {
  const sslmode = conn.sslmode ?? process.env.PGSSLMODE;
  let ssl: pg.ClientConfig['ssl'];
  if (sslmode === 'require' || sslmode === 'prefer' || sslmode === 'allow')
    ssl = { rejectUnauthorized: false };
  else if (sslmode === 'verify-ca' || sslmode === 'verify-full') ssl = { rejectUnauthorized: true };
  return {
    host: conn.host,
    port: conn.port,
    user: conn.user,
    password: conn.password,
    database: database ?? conn.maintenanceDatabase ?? process.env.PGDATABASE ?? 'postgres',
    ssl,
  };
}

/** The passwords a message about this connection could carry: the connection's and libpq's own. */
export function connectionSecrets(conn: PgConnection | undefined): string[] {
  return [conn?.password, process.env.PGPASSWORD].filter((s): s is string => Boolean(s));
}
