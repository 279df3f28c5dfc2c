import pg from 'pg';

/** The benchmark's databases: the reference one, a small one to compare memory with, a tiny one for the fixed cost. */
export const WORKLOADS = {
  /** 4,000,000 rows, about 830 MB on disk. */
  reference: { database: 'dump_bag_bench', rows: 4_000_000 },
  /** About 100 MB on disk, to show that peak memory does not grow with the dump. */
  small: { database: 'dump_bag_bench_small', rows: 480_000 },
  /** 1,000 rows: what a backup costs before its first byte (start-up, keys, the server's questions). */
  tiny: { database: 'dump_bag_bench_tiny', rows: 1_000 },
} as const;

export type WorkloadSize = keyof typeof WORKLOADS;

/** libpq-style variables to a `pg` client's settings. */
function clientConfig(env: Record<string, string | undefined>, database: string): pg.ClientConfig {
  return {
    host: env.PGHOST,
    port: env.PGPORT ? Number(env.PGPORT) : undefined,
    user: env.PGUSER,
    password: env.PGPASSWORD,
    database,
  };
}

/** A `pg` client to `database` by the libpq variables in `env`, ended after `use`. */
export async function withClient<T>(
  env: Record<string, string | undefined>,
  database: string,
  use: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client(clientConfig(env, database));
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * Rows of a typical application table: a bigint id, two md5 strings of text, an int, a timestamp and a small
 * jsonb document. The values are a fixed function of the id (no random()), so every machine dumps
 * the same bytes and the figures can be compared.
 */
const FILL = `
CREATE TABLE items (
  id bigint PRIMARY KEY,
  note text NOT NULL,
  amount int NOT NULL,
  created_at timestamptz NOT NULL,
  attrs jsonb NOT NULL
);
INSERT INTO items
SELECT g,
       md5(g::text) || ' ' || md5((g * 7919)::text),
       (('x' || substr(md5((g * 31)::text), 1, 7))::bit(28)::int) % 1000000,
       timestamptz '2020-01-01 00:00:00+00'
         + (('x' || substr(md5((g * 17)::text), 1, 12))::bit(48)::bigint % 126144000000000) * interval '1 microsecond',
       jsonb_build_object(
         'status', (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
         'ref', substr(md5((g * 5)::text), 1, 12))
FROM generate_series(1::bigint, $ROWS) AS g;
`;

export interface WorkloadInfo {
  readonly database: string;
  readonly rows: number;
  /** pg_database_size: what "830 MB on disk" means. */
  readonly sizeBytes: number;
  readonly created: boolean;
}

/** Makes the workload database unless it exists with all its rows; returns its size on disk. */
export async function ensureWorkload(
  env: Record<string, string | undefined>,
  size: WorkloadSize,
  log: (line: string) => void = () => {},
): Promise<WorkloadInfo> {
  const { database, rows } = WORKLOADS[size];
  const complete = await withClient(env, 'postgres', async (admin) => {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) return false;
    return withClient(env, database, async (db) => {
      // The table is created and filled in one transaction: if it is there, it is whole.
      const count = await db
        .query<{ n: string }>('SELECT count(*) AS n FROM items')
        .catch(() => ({ rows: [{ n: '0' }] }));
      return Number(count.rows[0]?.n) === rows;
    });
  });
  if (!complete) {
    log(`creating ${database} (${rows.toLocaleString('en')} rows); this takes a few minutes once`);
    await withClient(env, 'postgres', async (admin) => {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)}`);
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    });
    await withClient(env, database, async (db) => {
      await db.query('BEGIN');
      await db.query(FILL.replace('$ROWS', String(rows)));
      await db.query('COMMIT');
      // Frozen and hinted now, so that no dump pays for setting hint bits.
      await db.query('VACUUM (FREEZE, ANALYZE) items');
      await db.query('CHECKPOINT');
    });
  }
  const sizeBytes = await withClient(env, 'postgres', async (admin) => {
    const result = await admin.query<{ size: string }>('SELECT pg_database_size($1) AS size', [database]);
    return Number(result.rows[0]?.size);
  });
  return { database, rows, sizeBytes, created: !complete };
}
