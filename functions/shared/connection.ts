import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError, errorMessage } from '../core/errors';
import { connectionFromEnv, type PgConnection } from '../core/libpq';
import { setting } from '../core/settings';

type Env = Record<string, string | undefined>;

/**
 * The fields Dump Bag reads from the secret: the layout RDS uses for its managed secrets,
 * so an RDS secret can be referenced as it is.
 */
interface DatabaseSecret {
  readonly username?: unknown;
  readonly password?: unknown;
  readonly host?: unknown;
  readonly port?: unknown;
  readonly dbname?: unknown;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/**
 * The database connection: host, port, sslmode and sslrootcert from the environment (libpq's names) when set,
 * the login (and, for an RDS secret, the host) from Secrets Manager, read at every call so a
 * rotated password applies at once. Without DUMP_BAG_DB_SECRET_ARN the PG* variables hold everything.
 * Error messages name the secret, never its value.
 */
export async function readConnection(
  env: Env = process.env,
  client: SecretsManagerClient = new SecretsManagerClient({}),
): Promise<PgConnection> {
  const secretId = setting('dbSecretArn', env);
  const fromEnv = connectionFromEnv(env);
  if (!secretId) return fromEnv;
  let secretString: string | undefined;
  try {
    secretString = (await client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString;
  } catch (error: unknown) {
    throw new ConfigError(`cannot read the database secret ${secretId}: ${errorMessage(error)}`);
  }
  let secret: DatabaseSecret;
  try {
    secret = JSON.parse(secretString ?? '') as DatabaseSecret;
  } catch {
    throw new ConfigError(
      `the database secret ${secretId} is not JSON: store {"username": …, "password": …} (the RDS layout)`,
    );
  }
  const user = text(secret.username);
  const password = text(secret.password);
  if (!user || !password) {
    throw new ConfigError(`the database secret ${secretId} lacks "username" or "password"`);
  }
  const host = fromEnv.host ?? text(secret.host);
  if (!host) {
    throw new ConfigError(
      `no database host: set the stack's connection host (context dbHost) or put "host" in the secret ${secretId}`,
    );
  }
  const port = fromEnv.port ?? (text(secret.port) ? Number(secret.port) : undefined);
  return {
    host,
    port,
    user,
    password,
    sslmode: fromEnv.sslmode,
    sslrootcert: fromEnv.sslrootcert,
    maintenanceDatabase: fromEnv.maintenanceDatabase ?? text(secret.dbname),
  };
}
