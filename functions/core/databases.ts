import pg from 'pg';

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

export interface ServerInfo {
  /** `SHOW server_version`, e.g. "15.8". */
  readonly version: string;
  /** The major version, e.g. 15. */
  readonly major: number;
}

export interface DatabaseInfo {
  readonly name: string;
  /** Size on disk; undefined for a database that was asked for but does not exist. */
  readonly sizeBytes?: number;
}

export interface BackupPlan {
  readonly server: ServerInfo;
  readonly databases: DatabaseInfo[];
}

export interface DatabaseSelection {
  /** Exactly these, in this order; undefined means every connectable non-template database. */
  readonly databases?: readonly string[];
  readonly exclude?: readonly string[];
}

/** The same connection as environment variables for libpq (pg_dump, psql): PGHOST, PGPORT… */
export function libpqEnv(conn: PgConnection): Record<string, string> {
  const env: Record<string, string> = {};
  if (conn.host !== undefined) env.PGHOST = conn.host;
  if (conn.port !== undefined) env.PGPORT = String(conn.port);
  if (conn.user !== undefined) env.PGUSER = conn.user;
  if (conn.password !== undefined) env.PGPASSWORD = conn.password;
  if (conn.sslmode !== undefined) env.PGSSLMODE = conn.sslmode;
  return env;
}

function clientConfig(conn: PgConnection): pg.ClientConfig {
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
    database: conn.maintenanceDatabase ?? process.env.PGDATABASE ?? 'postgres',
    ssl,
    connectionTimeoutMillis: 15_000,
    application_name: 'dump-bag',
  };
}

/** Lists the databases to dump, their sizes and the server's version. */
export async function planBackup(conn: PgConnection, selection: DatabaseSelection = {}): Promise<BackupPlan> {
  const client = new pg.Client(clientConfig(conn));
  await client.connect();
  try {
    const version = (
      await client.query<{ v: string; n: string }>(
        "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n",
      )
    ).rows[0];
    if (!version) throw new Error('the server did not report its version');
    const server: ServerInfo = {
      version: version.v.split(' ')[0] ?? version.v,
      major: Math.floor(Number(version.n) / 10000),
    };
    const { rows } = await client.query<{ name: string; allowed: boolean; size: string | null }>(
      `SELECT datname AS name, (datallowconn AND NOT datistemplate) AS allowed,
              CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END AS size
         FROM pg_database ORDER BY datname`,
    );
    const exclude = new Set(selection.exclude ?? []);
    const known = new Map(rows.map((r) => [r.name, r]));
    const names = selection.databases
      ? [...new Set(selection.databases)]
      : rows.filter((r) => r.allowed).map((r) => r.name);
    const databases = names
      .filter((name) => !exclude.has(name))
      .map((name) => {
        const size = known.get(name)?.size;
        return { name, sizeBytes: size == null ? undefined : Number(size) };
      });
    return { server, databases };
  } finally {
    await client.end().catch(() => {});
  }
}
