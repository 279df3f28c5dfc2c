/**
 * The twin: the synthesized assembly run locally. The BUNDLED Lambda assets (the asset folders'
 * index.js, not the TypeScript) run in processes of their own with the environment the template
 * gives each function; the template's Refs become local stand-ins (a fresh bucket on the S3 API
 * server, a Secrets Manager and Step Functions stand-in on loopback), its /opt paths the layer
 * folders. The state machine's own JSONata definition moves the data: plan → dump of every
 * database against the real PostgreSQL → report, and the dumps are decrypted with GnuPG and
 * restored with pg_restore to compare rows. Over 300 lines: every case reads the one synthesized,
 * esbuild-bundled assembly, the databases and the stand-ins beforeAll sets up, and the API cases
 * list what the first run stored; each file of a split would synthesize and bundle again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DumpResult } from '../../functions/core/backup';
import type { DumpRecord } from '../../functions/core/catalog';
import type { GlobalsResult } from '../../functions/core/globals';
import { checkRecordSignature } from '../../functions/core/signing';
import { DEADLINE_MARGIN_MS } from '../../functions/dump/handler';
import type { PlanOutput } from '../../functions/shared/events';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import {
  allKeys,
  createDatabase,
  dropDatabases,
  freshBucket,
  getObjectBytes,
  openUploads,
  pgClient,
  restoreInto,
  s3Client,
  snapshot,
} from '../support/env';
import { type GpgIdentity, gpgDecrypt, gpgIdentity } from '../support/gpg';
import { tempDir } from '../support/temp';
import { stateMachineDefinition } from './support';
import type { AwsStandIn } from './twin/aws-stand-in';
import {
  functionByArn,
  lambdaEnv,
  localRefs,
  startStandIn,
  synthTwin,
  type TwinTemplate,
  taskResult,
} from './twin/harness';
import { type BundledFunction, emfLines, type Invocation, invokeBundled } from './twin/lambda-twin';
import { breakStandInPgDumpall } from './twin/pg-layer';
import { runStateMachine, type TwinServices } from './twin/state-machine';

const suffix = randomBytes(3).toString('hex');
const dbA = `twin_a_${suffix}`;
// Any character PostgreSQL allows: a space, quotes, a slash, non-ASCII.
const dbB = `twin b ${suffix} "q"/ü`;
const dbBig = `twin_big_${suffix}`;
/** A role of the test server that the globals dump must recreate, attributes and all. */
const role = `twin_role_${suffix}`;
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dump-bag-twin-AbCdEf';
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:dump-bag-twin';
const QUERY_A = 'SELECT id, note, amount::text FROM items ORDER BY id';
const QUERY_B = 'SELECT k, v FROM "odd table" ORDER BY k';

let template: TwinTemplate;
let functions: BundledFunction[];
let pgLayerRoot: string;
let bucket: string;
let identity: GpgIdentity;
let standIn: AwsStandIn;
let goodSecret: Record<string, unknown>;
const invocations: Invocation[] = [];

function fn(prefix: string): BundledFunction {
  const found = functions.find((f) => f.logicalId.startsWith(prefix));
  if (!found) throw new Error(`no function ${prefix}*`);
  return found;
}

async function invoke<T>(
  f: BundledFunction,
  event: unknown,
  options: { remainingMs?: number; killAfterMs?: number } = {},
): Promise<Invocation<T>> {
  const env = lambdaEnv(f, { standIn, refs: localRefs(bucket, standIn), pgLayer: { dir: pgLayerRoot } });
  const result = await invokeBundled<T>(f, event, { env, ...options });
  invocations.push(result);
  return result;
}

interface Run {
  readonly outcome: Awaited<ReturnType<typeof runStateMachine>>;
  readonly events: { Source: string; DetailType: string; Detail: Record<string, unknown> }[];
  /** The dump function's invocations for databases. */
  readonly dumps: Invocation<DumpResult>[];
  /** The dump function's invocations for the globals (one per run). */
  readonly globals: Invocation<GlobalsResult>[];
}

type RunOutput = { results: DumpResult[]; globals: GlobalsResult };

/** One execution of the backup state machine as the template defines it. */
async function execute(
  input: unknown,
  options: { dumpSecret?: Record<string, unknown>; dumpKillAfterMs?: number } = {},
): Promise<Run> {
  const definition = stateMachineDefinition(Template.fromJSON(template));
  const events: Run['events'] = [];
  const dumps: Invocation<DumpResult>[] = [];
  const globals: Invocation<GlobalsResult>[] = [];
  const byArn = functionByArn(functions);
  const twin: TwinServices = {
    async invokeLambda(arn, payload) {
      const f = byArn(arn);
      const isDump = f.logicalId.startsWith('BackupDump');
      standIn.secret.value = isDump && options.dumpSecret ? options.dumpSecret : goodSecret;
      const run = await invoke(f, payload, { killAfterMs: isDump ? options.dumpKillAfterMs : undefined });
      if (isDump && (payload as { globals?: boolean }).globals === true) {
        globals.push(run as Invocation<GlobalsResult>);
      } else if (isDump) dumps.push(run as Invocation<DumpResult>);
      return taskResult(run);
    },
    putEvents(entries) {
      for (const e of entries) {
        events.push({
          Source: String(e.Source),
          DetailType: String(e.DetailType),
          Detail: JSON.parse(String(e.Detail)) as Record<string, unknown>,
        });
      }
      return Promise.resolve();
    },
  };
  const outcome = await runStateMachine(definition, input, twin);
  standIn.secret.value = goodSecret;
  return { outcome, events, dumps, globals };
}

beforeAll(async () => {
  identity = gpgIdentity('cv25519', 'twin@example.com');
  const keys = tempDir('dump-bag-twin-keys-');
  writeFileSync(join(keys, 'twin.asc'), identity.publicKey);

  await createDatabase(
    dbA,
    `CREATE TABLE items (id int PRIMARY KEY, note text, amount numeric(12,2));
     INSERT INTO items SELECT i, md5(i::text) || ' ✓', i * 1.25 FROM generate_series(1, 3000) i;`,
  );
  await createDatabase(
    dbB,
    `CREATE TABLE "odd table" (k text PRIMARY KEY, v jsonb);
     INSERT INTO "odd table" VALUES ('a''b', '{"x": [1, 2]}'), ('ü/ß', '{"y": null}');`,
  );
  // Big enough that a dump takes well over a second.
  await createDatabase(
    dbBig,
    `CREATE TABLE big AS SELECT i AS id, md5(i::text) || md5((i * 7)::text) AS note FROM generate_series(1, 1000000) i;`,
  );

  const admin = await pgClient();
  try {
    await admin.query(`CREATE ROLE ${role} WITH CREATEDB NOLOGIN CONNECTION LIMIT 7`);
  } finally {
    await admin.end();
  }

  bucket = await freshBucket();
  standIn = await startStandIn(SECRET_ARN, STATE_MACHINE_ARN);
  goodSecret = standIn.secret.value;

  const props: DumpBagStackProps = {
    keys: { folder: keys },
    // Host and port come from the secret, as with an RDS-managed secret; the local server has no TLS.
    connection: { sslMode: 'disable' },
    backup: { databases: [dbA, dbB], concurrency: 2, retention: { days: 30, keepMin: 2 } },
  };
  const twin = synthTwin('DumpBagTwin', props, { tempPrefix: 'dump-bag-twin' });
  ({ template, functions } = twin);
  pgLayerRoot = twin.standInPgLayer as string;
});

afterAll(async () => {
  await standIn?.stop();
  await dropDatabases([dbA, dbB, dbBig, `${dbA}_restored`, `${dbB}_restored`]);
  const admin = await pgClient();
  try {
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await admin.end();
  }
});

describe('the synthesized assembly', () => {
  it('holds the four functions, each bundled into one index.js with its source map', () => {
    expect(functions.map((f) => f.logicalId.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'ApiHandler',
      'BackupDump',
      'BackupPlan',
      'BackupPrune',
    ]);
    for (const f of functions) {
      expect(readdirSync(f.codeDir).sort()).toEqual(['index.js', 'index.js.map']);
    }
    // The keys layer holds exactly the key file, where DUMP_BAG_PUBLIC_KEYS points.
    const keysLayer = fn('BackupDump').layerDirs.find((d) => d !== pgLayerRoot) as string;
    expect(readdirSync(join(keysLayer, 'dump-bag-keys'))).toEqual(['twin.asc']);
  });
});

describe('plan → dump → report, run from the bundles through the state machine definition', () => {
  let first: Run;

  beforeAll(async () => {
    const schedule = Object.values(template.Resources).find((r) => r.Type === 'AWS::Scheduler::Schedule') as {
      Properties: { Target: { Input: string } };
    };
    // The schedule's own input, as EventBridge Scheduler sends it.
    first = await execute(JSON.parse(schedule.Properties.Target.Input));
  });

  it('succeeds with one ok result per selected database', () => {
    expect(first.outcome.status).toBe('SUCCEEDED');
    const output = (first.outcome as { output: RunOutput }).output;
    expect(output.results.map((r) => `${r.status} ${r.database}`).sort()).toEqual(
      [`ok ${dbA}`, `ok ${dbB}`].sort(),
    );
    // The prune bundle ran after each good dump (its own role): nothing old to delete yet, and no error.
    for (const r of output.results) expect(r).toMatchObject({ pruned: [] });
    for (const r of output.results) expect(r.retentionError).toBeUndefined();
    // Plan read the secret once, each dump once: credentials are read at run time, from the template's ARN.
    expect(standIn.secretReads.filter((id) => id === SECRET_ARN).length).toBeGreaterThanOrEqual(3);
  });

  it('stores dumps that GnuPG decrypts and pg_restore restores to the same rows', async () => {
    const output = (first.outcome as { output: RunOutput }).output;
    const client = s3Client();
    for (const [database, query] of [
      [dbA, QUERY_A],
      [dbB, QUERY_B],
    ] as const) {
      const result = output.results.find((r) => r.database === database) as DumpResult;
      expect(result.key).toMatch(
        new RegExp(`^dumps/${encodeURIComponent(database).replace(/[.*()]/g, '\\$&')}/.+\\.pg\\.gpg$`),
      );
      const stored = await getObjectBytes(client, bucket, result.key as string);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(result.sha256);
      const record = JSON.parse(
        (await getObjectBytes(client, bucket, `${result.key}.json`)).toString('utf8'),
      ) as DumpRecord;
      expect(record).toMatchObject({
        database,
        trigger: 'schedule',
        encryption: 'gpg',
        sha256: result.sha256,
        bytes: stored.length,
        recipients: [{ fingerprint: identity.fingerprint }],
      });
      // Signed by the KMS key the template names (the stand-in's), as the client checks it.
      expect(checkRecordSignature(record, standIn.kmsKey.publicKey)).toEqual({ state: 'valid' });
      const plain = await gpgDecrypt(identity.home, stored);
      expect(plain.subarray(0, 5).toString()).toBe('PGDMP');
      await restoreInto(`${database}_restored`, plain);
      expect(await snapshot(`${database}_restored`, query)).toBe(await snapshot(database, query));
    }
  });

  it('sends one EventBridge event per finished dump with database, key, size and status', () => {
    const output = (first.outcome as { output: RunOutput }).output;
    expect(first.events).toHaveLength(2);
    for (const event of first.events) {
      expect(event.Source).toBe('dump-bag');
      expect(event.DetailType).toBe('Dump Finished');
      const result = output.results.find((r) => r.database === event.Detail.database) as DumpResult;
      expect(event.Detail).toMatchObject({ status: 'ok', key: result.key, bytes: result.bytes });
    }
  });

  it('emits the DumpSucceeded metric per database for the staleness alarms', () => {
    for (const dump of first.dumps) {
      const line = emfLines(dump.stdout).find((l) => l.Database === dump.result?.database);
      expect(line).toMatchObject({ DumpSucceeded: 1, Service: 'dump-bag' });
      expect(line?._aws).toMatchObject({
        CloudWatchMetrics: [{ Namespace: 'DumpBag', Dimensions: [['Database'], ['Service']] }],
      });
    }
    // The globals' own, under Database "(globals)" alone: never counted as a database's fresh dump.
    expect(first.globals).toHaveLength(1);
    const globalsLines = emfLines(first.globals[0]?.stdout ?? '');
    expect(globalsLines).toEqual([expect.objectContaining({ DumpSucceeded: 1, Database: '(globals)' })]);
    expect(globalsLines[0]?._aws).toMatchObject({
      CloudWatchMetrics: [{ Namespace: 'DumpBag', Dimensions: [['Database']] }],
    });
  });

  it('stores one globals dump, signed, whose decrypted SQL recreates a role of the server', async () => {
    const { globals } = (first.outcome as { output: RunOutput }).output;
    expect(globals).toMatchObject({ status: 'ok', pruned: [] });
    expect(globals.retentionError).toBeUndefined();
    expect(globals.key).toMatch(/^globals\/globals-\d{8}-\d{6}-\d{3}-[0-9a-f]{8}\.sql\.gpg$/);
    const client = s3Client();
    expect((await allKeys(client, bucket)).filter((k) => k.startsWith('globals/'))).toEqual([
      globals.key,
      `${globals.key}.json`,
    ]);
    const stored = await getObjectBytes(client, bucket, globals.key as string);
    const record = JSON.parse(
      (await getObjectBytes(client, bucket, `${globals.key}.json`)).toString('utf8'),
    ) as DumpRecord;
    expect(record).toMatchObject({
      database: '(globals)',
      key: globals.key,
      trigger: 'schedule',
      encryption: 'gpg',
      sha256: createHash('sha256').update(stored).digest('hex'),
      bytes: stored.length,
      recipients: [{ fingerprint: identity.fingerprint }],
    });
    expect(checkRecordSignature(record, standIn.kmsKey.publicKey)).toEqual({ state: 'valid' });
    const sql = (await gpgDecrypt(identity.home, stored)).toString('utf8');
    // --no-role-passwords: no hash ever reaches the bucket.
    expect(sql).not.toMatch(/PASSWORD '/);
    const statements = sql
      .split('\n')
      .filter((line) => line.startsWith(`CREATE ROLE ${role};`) || line.startsWith(`ALTER ROLE ${role} `));
    expect(statements).toHaveLength(2);
    const attributes = `SELECT rolcreatedb, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = '${role}'`;
    const admin = await pgClient();
    try {
      const before = (await admin.query(attributes)).rows;
      expect(before).toEqual([{ rolcreatedb: true, rolcanlogin: false, rolconnlimit: 7 }]);
      await admin.query(`DROP ROLE ${role}`);
      expect((await admin.query(attributes)).rows).toEqual([]);
      for (const statement of statements) await admin.query(statement);
      expect((await admin.query(attributes)).rows).toEqual(before);
    } finally {
      await admin.end();
    }
  });

  it('a failing globals dump fails the run but leaves the database dumps stored and recorded', async () => {
    const client = s3Client();
    const before = await allKeys(client, bucket);
    const repair = breakStandInPgDumpall(pgLayerRoot);
    const run = await execute({ databases: [dbA], trigger: 'manual' }).finally(repair);
    expect(run.outcome).toMatchObject({ status: 'FAILED', error: 'DumpsFailed' });
    const cause = (run.outcome as { cause: string }).cause;
    expect(cause).toMatch(/^failed: globals \(globals: .*permission denied for table pg_authid/);
    expect(cause).not.toContain(dbA);
    // The database's dump ran, is stored with its record, and was announced as ok.
    const [dump] = run.dumps;
    expect(dump?.result).toMatchObject({ database: dbA, status: 'ok' });
    const after = await allKeys(client, bucket);
    expect(after).toContain(dump?.result?.key);
    expect(after).toContain(`${dump?.result?.key}.json`);
    expect(run.events.map((e) => `${e.Detail.status} ${e.Detail.database}`)).toEqual([`ok ${dbA}`]);
    // No globals object of this run, and its metric says it failed.
    expect(after.filter((k) => k.startsWith('globals/'))).toEqual(
      before.filter((k) => k.startsWith('globals/')),
    );
    expect(run.globals).toHaveLength(1);
    // A result saying why, not a crashed Lambda.
    expect(run.globals[0]?.ok, run.globals[0]?.stderr.slice(-2000)).toBe(true);
    expect(run.globals[0]?.result).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/pg_authid/),
    });
    expect(emfLines(run.globals[0]?.stdout ?? '')).toEqual([
      expect.objectContaining({ DumpSucceeded: 0, Database: '(globals)' }),
    ]);
  });

  it('fails the execution naming every database whose dump failed, and stores nothing for them', async () => {
    const before = await allKeys(s3Client(), bucket);
    const run = await execute(
      { trigger: 'schedule' },
      { dumpSecret: { ...goodSecret, password: 'not-the-password-4711' } },
    );
    expect(run.outcome).toMatchObject({ status: 'FAILED', error: 'DumpsFailed' });
    const cause = (run.outcome as { cause: string }).cause;
    expect(cause).toContain(dbA);
    expect(cause).toContain(dbB);
    expect(cause).toMatch(/password authentication failed/);
    expect(cause).not.toContain('not-the-password-4711');
    // The globals dump failed with them, and says so too.
    expect(cause).toMatch(/globals \(globals: .*password authentication failed/);
    expect(run.events.map((e) => e.Detail.status)).toEqual(['failed', 'failed']);
    for (const dump of run.dumps) {
      expect(emfLines(dump.stdout)).toEqual([expect.objectContaining({ DumpSucceeded: 0 })]);
    }
    expect(await allKeys(s3Client(), bucket)).toEqual(before);
  });

  it('turns a dump Lambda that dies (timeout, crash) into a failed result, an event and a failed execution', async () => {
    const run = await execute({ databases: [dbA], trigger: 'manual' }, { dumpKillAfterMs: 1 });
    expect(run.dumps[0]?.timedOut).toBe(true);
    expect(run.outcome).toMatchObject({ status: 'FAILED', error: 'DumpsFailed' });
    expect((run.outcome as { cause: string }).cause).toMatch(
      new RegExp(`${dbA} \\(Sandbox.Timedout: .*timed out`),
    );
    expect(run.events).toEqual([
      expect.objectContaining({ Detail: expect.objectContaining({ database: dbA, status: 'failed' }) }),
    ]);
  });

  it('fails before any dump when asked for a database outside the selection', async () => {
    const run = await execute({ databases: ['postgres'], trigger: 'manual' });
    expect(run.outcome).toMatchObject({ status: 'FAILED', error: 'ValidationError' });
    expect(run.dumps).toEqual([]);
  });

  it('never writes the database password to a log', () => {
    expect(invocations.length).toBeGreaterThan(0);
    for (const i of invocations) {
      expect(i.stdout + i.stderr).not.toContain(String(goodSecret.password));
    }
  });
});

describe('the dump stops itself before the Lambda timeout', () => {
  it('aborts the upload and reports that time ran out, leaving nothing behind', async () => {
    const client = s3Client();
    const plan = await invoke<PlanOutput>(fn('BackupPlan'), { trigger: 'schedule' });
    expect(plan.ok).toBe(true);
    const uploadsBefore = await openUploads(client, bucket);
    const remainingMs = DEADLINE_MARGIN_MS + 400;
    const dump = await invoke<DumpResult>(
      fn('BackupDump'),
      { database: dbBig, server: plan.result?.server, trigger: 'schedule', sizeBytes: 100_000_000 },
      { remainingMs },
    );
    expect(dump.ok).toBe(true);
    expect(dump.result).toMatchObject({ database: dbBig, status: 'failed' });
    expect(dump.result?.error).toMatch(/time ran out/);
    // It answered while Lambda would still have been waiting for it.
    expect(dump.ms).toBeLessThan(remainingMs);
    expect(await openUploads(client, bucket)).toEqual(uploadsBefore);
    expect((await allKeys(client, bucket)).filter((k) => k.startsWith(`dumps/${dbBig}/`))).toEqual([]);
  });
});

describe('the API bundle with its template environment', () => {
  const event = (method: string, path: string, query = '') => ({
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: query,
    headers: { host: 'twin.execute-api.us-east-1.amazonaws.com', 'user-agent': 'twin' },
    requestContext: {
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'twin' },
      requestId: randomBytes(8).toString('hex'),
      stage: '$default',
    },
    isBase64Encoded: false,
  });
  type ApiResult = { statusCode: number; body: string };

  it('serves the keys layer on GET /keys', async () => {
    const res = await invoke<ApiResult>(fn('ApiHandler'), event('GET', '/keys'));
    expect(res.result?.statusCode).toBe(200);
    expect(res.result?.body).toContain(identity.fingerprint);
    expect(res.result?.body).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
  });

  it('lists the dumps of the bucket the template names', async () => {
    const res = await invoke<ApiResult>(fn('ApiHandler'), event('GET', '/dumps', `database=${dbA}`));
    expect(res.result?.statusCode).toBe(200);
    expect(res.result?.body).toContain(`dumps/${dbA}/${dbA}-`);
  });

  it('POST /dumps/{database} starts the state machine with the input the plan takes, which dumps it', async () => {
    const res = await invoke<ApiResult>(fn('ApiHandler'), event('POST', `/dumps/${dbA}`));
    expect(res.result?.statusCode).toBe(202);
    const started = standIn.executions.at(-1);
    expect(started).toEqual({
      stateMachineArn: STATE_MACHINE_ARN,
      input: { databases: [dbA], trigger: 'manual' },
    });
    // While it runs, a second on-demand dump of the database is refused, naming the running one.
    const again = await invoke<ApiResult>(fn('ApiHandler'), event('POST', `/dumps/${dbA}`));
    expect(again.result?.statusCode).toBe(409);
    expect(JSON.parse(String(again.result?.body)).error).toContain(
      `already running (execution ${standIn.runs.at(-1)?.name}`,
    );
    expect(standIn.executions.at(-1)).toBe(started);
    const run = await execute(started?.input);
    standIn.finishExecutions();
    expect(run.outcome.status).toBe('SUCCEEDED');
    const [result] = (run.outcome as { output: { results: DumpResult[] } }).output.results;
    const record = JSON.parse(
      (await getObjectBytes(s3Client(), bucket, `${result?.key}.json`)).toString('utf8'),
    ) as DumpRecord;
    expect(record).toMatchObject({ database: dbA, trigger: 'manual' });
  });
});
