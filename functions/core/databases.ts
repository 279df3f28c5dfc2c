import pg from 'pg';
import { explainConnectError } from './db-tls';
import { connectionTls, type PgConnection, pgClientConfig } from './libpq';

export type { PgConnection } from './libpq';

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

function clientConfig(conn: PgConnection): pg.ClientConfig {
  return { ...pgClientConfig(conn), connectionTimeoutMillis: 15_000, application_name: 'dump-bag' };
}

/** Lists the databases to dump, their sizes and the server's version. */
export async function planBackup(conn: PgConnection, selection: DatabaseSelection = {}): Promise<BackupPlan> {
  const client = new pg.Client(clientConfig(conn));
  await client.connect().catch((error: unknown) => {
    throw explainConnectError(error, connectionTls(conn));
  });
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
