import type pg from 'pg';
import { libpqTlsEnv, pgSsl, resolveTls } from './db-tls';
import { SettingError, wholeNumber } from './setting-parsers';
import { setting } from './settings';

/** How to reach the server; anything left out falls back to libpq's own PG* variables. */
export interface PgConnection {
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  readonly password?: string;
  /** libpq's sslmode: disable, allow, prefer, require, verify-ca, verify-full. */
  readonly sslmode?: string;
  /** libpq's sslrootcert: the CAs the verify modes trust. @default the Amazon RDS bundle */
  readonly sslrootcert?: string;
  /** The database to connect to for listing the others. @default PGDATABASE or postgres */
  readonly maintenanceDatabase?: string;
}

type Env = Record<string, string | undefined>;

const PORT = wholeNumber(1, 65_535, '');

/** libpq's own variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT, PGDATABASE) as a connection. */
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
    sslmode: setting('sslMode', env),
    sslrootcert: setting('sslRootCert', env),
    maintenanceDatabase: value('PGDATABASE'),
  };
}

/** The connection's TLS, the process's PGSSLMODE and PGSSLROOTCERT filling in what it leaves out. */
export function connectionTls(conn: PgConnection) {
  return resolveTls({
    host: conn.host ?? process.env.PGHOST,
    sslmode: conn.sslmode ?? setting('sslMode'),
    sslrootcert: conn.sslrootcert ?? setting('sslRootCert'),
  });
}

/**
 * The connection as libpq's variables, for a child process (pg_dump, psql); they override the parent's.
 * TLS as connectionTls decides: PGSSLMODE and, when the certificate is checked, PGSSLROOTCERT.
 */
export function libpqEnv(conn: PgConnection): Record<string, string> {
  const env: Record<string, string> = {};
  if (conn.host !== undefined) env.PGHOST = conn.host;
  if (conn.port !== undefined) env.PGPORT = String(conn.port);
  if (conn.user !== undefined) env.PGUSER = conn.user;
  if (conn.password !== undefined) env.PGPASSWORD = conn.password;
  Object.assign(env, libpqTlsEnv(connectionTls(conn)));
  if (conn.maintenanceDatabase !== undefined) env.PGDATABASE = conn.maintenanceDatabase;
  return env;
}

/**
 * The same connection as a `pg` client's settings, to `database` (default: the maintenance database,
 * else PGDATABASE, else postgres), with the same TLS checks libpq makes (connectionTls).
 */
export function pgClientConfig(conn: PgConnection, database?: string): pg.ClientConfig {
  const ssl = pgSsl(connectionTls(conn));
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
