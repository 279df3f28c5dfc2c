/**
 * The runtime AWS runs, not only this machine's: the plan, dump, prune and Fargate bundles of a real
 * synth (arm64, the default) run on Node.js 22 for arm64 under qemu-user, with the pg_dump layer's
 * own arm64 binaries (built by the recipe, cached under DUMP_BAG_LAYER_CACHE), against the real
 * PostgreSQL and S3 API server, through the state machine's own definition; each dump restores.
 * One database, two executions: a Lambda dump, then a Lambda dump killed and retried on Fargate.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DumpResult } from '../../functions/core/backup';
import type { DumpRecord } from '../../functions/core/catalog';
import { readPins } from '../../infra/constructs/pg-dump-layer/pins';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import {
  createDatabase,
  dropDatabases,
  freshBucket,
  getObjectBytes,
  restoredRows,
  s3Client,
  snapshot,
} from '../support/env';
import { type GpgIdentity, gpgDecrypt, gpgIdentity } from '../support/gpg';
import { tempDir } from '../support/temp';
import { stateMachineDefinition } from './support';
import { arm64Node, NODE_ARM64, qemuPgCalls, qemuPgRoot, runtimesIn } from './twin/arm64';
import type { AwsStandIn } from './twin/aws-stand-in';
import { FargateTwin, taskDefinitionTwin } from './twin/fargate-twin';
import {
  endpointEnv,
  functionByArn,
  lambdaEnv,
  localRefs,
  startStandIn,
  synthTwin,
  TWIN_VPC,
  type TwinTemplate,
  taskResult,
} from './twin/harness';
import { type BundledFunction, type Invocation, invokeBundled } from './twin/lambda-twin';
import { runStateMachine } from './twin/state-machine';

const database = `arm64 ${randomBytes(3).toString('hex')} ü`;
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dump-bag-arm64-AbCdEf';
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:dump-bag-arm64';
const QUERY = 'SELECT id, note, attrs::text FROM t ORDER BY id';
const RUNTIME = `arm64 v${NODE_ARM64.spec.split('@')[1]}`;

let template: TwinTemplate;
let functions: BundledFunction[];
let pgLayerDir: string;
let majors: string[];
let lambdaPgRoot: string;
let node: string[];
let bucket: string;
let identity: GpgIdentity;
let standIn: AwsStandIn;
let fargate: FargateTwin;
let goodSecret: Record<string, unknown>;
const invocations: Invocation[] = [];
const fargatePgRoots: string[] = [];

// The layer mounts at /opt/pg; here its tools run under qemu from the asset folder.
const env = (f: BundledFunction) =>
  lambdaEnv(f, {
    standIn,
    refs: localRefs(bucket, standIn),
    pgLayer: { dir: pgLayerDir, pgRoot: lambdaPgRoot },
  });

interface Run {
  readonly outcome: Awaited<ReturnType<typeof runStateMachine>>;
  readonly lambdaDumps: string[];
  readonly fargateDumps: string[];
}

async function execute(input: unknown, options: { killLambdaDumpAfterMs?: number } = {}): Promise<Run> {
  const definition = stateMachineDefinition(Template.fromJSON(template));
  const byArn = functionByArn(functions);
  const lambdaDumps: string[] = [];
  const fargateDumps: string[] = [];
  const outcome = await runStateMachine(definition, input, {
    async invokeLambda(arn, payload) {
      const f = byArn(arn);
      const isDump = f.logicalId.startsWith('BackupDump');
      // The run's globals dump (after the Map) is the dump function's too; lambdaDumps counts databases.
      const isGlobals = (payload as { globals?: boolean }).globals === true;
      if (isDump && !isGlobals) lambdaDumps.push(String((payload as { database: string }).database));
      const r = await invokeBundled(f, payload, {
        env: env(f),
        node,
        // Only a database's dump is killed; the globals dump after the Map runs as it is.
        killAfterMs: isDump && !isGlobals ? options.killLambdaDumpAfterMs : undefined,
      });
      invocations.push(r);
      return taskResult(r);
    },
    async putEvents() {},
    runTask(args, token) {
      fargateDumps.push(database);
      return fargate.runTask(args, token, (optDir) => {
        // The task unpacks the pg_dump layer into /opt/pg; its tools then run under qemu from there.
        const pgRoot = qemuPgRoot(join(optDir, 'pg'), majors);
        fargatePgRoots.push(pgRoot);
        return { ...endpointEnv(standIn), DUMP_BAG_PG_ROOT: pgRoot };
      });
    },
  });
  return { outcome, lambdaDumps, fargateDumps };
}

/** The stored dump matches its result and record, was made by the layer's pg_dump, and restores to the same rows. */
async function expectRestores(result: DumpResult, runner: string) {
  const stored = await getObjectBytes(s3Client(), bucket, result.key as string);
  expect(createHash('sha256').update(stored).digest('hex')).toBe(result.sha256);
  const record = JSON.parse(
    (await getObjectBytes(s3Client(), bucket, `${result.key}.json`)).toString('utf8'),
  ) as DumpRecord;
  expect(record).toMatchObject({ database, runner, sha256: result.sha256 });
  expect(record.seconds).toBeGreaterThan(0);
  // The layer's build of the chosen major (a pinned source version), not this machine's Debian pg_dump.
  const pinned = [...readPins().values()].map((p) => p.version);
  expect(pinned).toContain(record.pgDumpVersion);
  const plain = await gpgDecrypt(identity.home, stored);
  expect(await restoredRows(plain, database, QUERY)).toBe(await snapshot(database, QUERY));
}

beforeAll(async () => {
  node = arm64Node();
  identity = gpgIdentity('cv25519', 'arm64@example.com');
  const keys = tempDir('dump-bag-arm64-keys-');
  writeFileSync(join(keys, 'arm64.asc'), identity.publicKey);
  await createDatabase(
    database,
    `CREATE TABLE t AS SELECT i AS id, md5(i::text) || ' ✓' AS note, jsonb_build_object('n', i) AS attrs
       FROM generate_series(1, 20000) i;`,
  );
  bucket = await freshBucket();
  standIn = await startStandIn(SECRET_ARN, STATE_MACHINE_ARN);
  goodSecret = standIn.secret.value;
  const props: DumpBagStackProps = {
    keys: { folder: keys },
    connection: { sslMode: 'disable', vpcAttributes: TWIN_VPC },
    backup: { databases: [database] },
  };
  // A real synth: the pg_dump layer is the recipe's arm64 build (compiled once, then copied from the cache).
  const twin = synthTwin('DumpBagArm64', props, { tempPrefix: 'dump-bag-arm64', recipeLayer: true });
  ({ template, functions } = twin);
  const task = taskDefinitionTwin(template, twin.outdir, localRefs(bucket, standIn));
  pgLayerDir = [...task.layerDirs].find(([id]) => id.startsWith('PgDump'))?.[1] as string;
  majors = readdirSync(join(pgLayerDir, 'pg')).filter((m) => /^\d+$/.test(m));
  lambdaPgRoot = qemuPgRoot(join(pgLayerDir, 'pg'), majors);
  fargate = new FargateTwin(standIn, task, node);
}, 900_000);

afterAll(async () => {
  await standIn?.stop();
  await dropDatabases([database]);
});

describe('the bundles on Node.js 22 for arm64 with the layer’s arm64 pg_dump', () => {
  it('runs plan, dump and prune on Lambda’s runtime; the dump restores', async () => {
    const run = await execute({ trigger: 'schedule' });
    expect(run.outcome.status, JSON.stringify(run.outcome)).toBe('SUCCEEDED');
    expect(run.lambdaDumps).toEqual([database]);
    expect(run.fargateDumps).toEqual([]);
    const [result, ...others] = (run.outcome as { output: { results: DumpResult[] } }).output.results;
    expect(others).toEqual([]);
    expect(result).toMatchObject({ database, status: 'ok', runner: 'lambda' });
    // Every function process was arm64 Node 22: plan, dump, prune.
    expect(invocations.map((i) => runtimesIn(i.stderr))).toEqual(invocations.map(() => [RUNTIME]));
    expect(invocations.length).toBeGreaterThanOrEqual(3);
    // The layer's own pg_dump ran, arm64 under qemu (pg_dumpall too, once a Lambda dumps the globals).
    expect(qemuPgCalls(lambdaPgRoot).filter((c) => c.endsWith(' pg_dump')).length).toBeGreaterThanOrEqual(1);
    await expectRestores(result as DumpResult, 'lambda');
  }, 600_000);

  it('retries a Lambda dump that ran out of time on Fargate, whose task runs on arm64 Node 22; the dump restores', async () => {
    const run = await execute({ databases: [database], trigger: 'manual' }, { killLambdaDumpAfterMs: 1 });
    const task = fargate.runs.at(-1);
    expect(run.outcome.status, `${JSON.stringify(run.outcome)} ${task?.stdout} ${task?.stderr}`).toBe(
      'SUCCEEDED',
    );
    expect(run.lambdaDumps).toEqual([database]);
    expect(run.fargateDumps).toEqual([database]);
    const [result] = (run.outcome as { output: { results: DumpResult[] } }).output.results;
    expect(result).toMatchObject({ database, status: 'ok', runner: 'fargate' });
    expect(task?.exitCode).toBe(0);
    // One process: the bootstrap unpacked the layers (hashes checked), then ran the entry point in it.
    expect(runtimesIn(task?.stderr ?? '')).toEqual([RUNTIME]);
    expect(new Set(fargate.layerRequests).size).toBe(3);
    expect(qemuPgCalls(fargatePgRoots.at(-1) as string).some((c) => c.endsWith(' pg_dump'))).toBe(true);
    await expectRestores(result as DumpResult, 'fargate');
    expect(JSON.stringify(task?.env)).not.toContain(String(goodSecret.password));
  }, 600_000);
});
