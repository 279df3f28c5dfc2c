/**
 * The Fargate runner in the twin: a stack with a VPC (so `auto` uses Fargate), synthesized with
 * its real bundles; the state machine's own JSONata routes each database; a Fargate item runs the
 * task definition's own command (the bootstrap that unpacks the layers, then the bundled entry
 * point) as a plain Node process with the task definition's environment, reporting through the
 * stand-in's recorder of SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DumpResult } from '../../functions/core/backup';
import type { DumpRecord } from '../../functions/core/catalog';
import { TASK_TOKEN_ENV } from '../../functions/dump-task/env';
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
import type { AwsStandIn, TaskReport } from './twin/aws-stand-in';
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
import { type BundledFunction, invokeBundled } from './twin/lambda-twin';
import { runStateMachine } from './twin/state-machine';

const suffix = randomBytes(3).toString('hex');
const small = `fg_small_${suffix}`;
const large = `fg large ${suffix} ü`;
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dump-bag-fargate-AbCdEf';
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:dump-bag-fargate';
const QUERY = 'SELECT id, note FROM t ORDER BY id';
// An empty database is about 7.5 MB on disk, the large one about 40 MB: 16 MB sends only it to Fargate.
const ABOVE_GB = 16 / 1024;

let template: TwinTemplate;
let functions: BundledFunction[];
let pgLayerRoot: string;
let bucket: string;
let identity: GpgIdentity;
let standIn: AwsStandIn;
let fargate: FargateTwin;
let goodSecret: Record<string, unknown>;

const env = (f: BundledFunction) =>
  lambdaEnv(f, { standIn, refs: localRefs(bucket, standIn), pgLayer: { dir: pgLayerRoot } });

interface Run {
  readonly outcome: Awaited<ReturnType<typeof runStateMachine>>;
  readonly lambdaDumps: string[];
  readonly fargateDumps: string[];
  readonly events: Record<string, unknown>[];
}

async function execute(input: unknown, options: { killLambdaDumpAfterMs?: number } = {}): Promise<Run> {
  const definition = stateMachineDefinition(Template.fromJSON(template));
  const byArn = functionByArn(functions);
  const run: Run = {
    outcome: { status: 'SUCCEEDED', output: null },
    lambdaDumps: [],
    fargateDumps: [],
    events: [],
  };
  const outcome = await runStateMachine(definition, input, {
    async invokeLambda(arn, payload) {
      const f = byArn(arn);
      const isDump = f.logicalId.startsWith('BackupDump');
      // The run's globals dump (after the Map) is the dump function's too; lambdaDumps counts databases.
      const isGlobals = (payload as { globals?: boolean }).globals === true;
      if (isDump && !isGlobals) run.lambdaDumps.push(String((payload as { database: string }).database));
      const r = await invokeBundled(f, payload, {
        env: env(f),
        // Only a database's dump is killed; the globals dump after the Map runs as it is.
        killAfterMs: isDump && !isGlobals ? options.killLambdaDumpAfterMs : undefined,
      });
      return taskResult(r);
    },
    putEvents(entries) {
      for (const e of entries) run.events.push(JSON.parse(String(e.Detail)) as Record<string, unknown>);
      return Promise.resolve();
    },
    runTask(args, token) {
      const overrides = args.Overrides as {
        ContainerOverrides: { Environment: { Name: string; Value: string }[] }[];
      };
      const env = overrides.ContainerOverrides[0]?.Environment ?? [];
      const input = JSON.parse(String(env.find((e) => e.Name === 'DUMP_BAG_TASK_INPUT')?.Value)) as {
        database: string;
      };
      run.fargateDumps.push(input.database);
      return fargate.runTask(args, token, endpointEnv(standIn));
    },
  });
  return { ...run, outcome };
}

/** The last task's only report: a SigV4-signed SendTaskFailure with this cause, and exit code 1. */
async function expectBootstrapFailure(cause: RegExp) {
  const task = fargate.runs.at(-1);
  expect(task?.exitCode, task?.stdout).toBe(1);
  const reports = standIn.taskReports.filter((r) => r.taskToken === task?.env[TASK_TOKEN_ENV]);
  expect(reports.map((r) => r.action)).toEqual(['SendTaskFailure']);
  const [report] = reports as [TaskReport];
  expect(report).toMatchObject({ error: 'BootstrapError', cause: expect.stringMatching(cause) });
  expect(await fargate.signedByTask(report)).toBe(true);
  return report;
}

async function expectRestores(result: DumpResult, database: string) {
  const stored = await getObjectBytes(s3Client(), bucket, result.key as string);
  expect(createHash('sha256').update(stored).digest('hex')).toBe(result.sha256);
  const record = JSON.parse(
    (await getObjectBytes(s3Client(), bucket, `${result.key}.json`)).toString('utf8'),
  ) as DumpRecord;
  expect(record).toMatchObject({ database, runner: result.runner, sha256: result.sha256 });
  const plain = await gpgDecrypt(identity.home, stored);
  expect(await restoredRows(plain, database, QUERY)).toBe(await snapshot(database, QUERY));
}

beforeAll(async () => {
  identity = gpgIdentity('cv25519', 'fargate@example.com');
  const keys = tempDir('dump-bag-fargate-keys-');
  writeFileSync(join(keys, 'fargate.asc'), identity.publicKey);
  await createDatabase(
    small,
    `CREATE TABLE t AS SELECT i AS id, md5(i::text) AS note FROM generate_series(1, 2000) i;`,
  );
  await createDatabase(
    large,
    `CREATE TABLE t AS SELECT i AS id, md5(i::text) || md5((i * 3)::text) AS note FROM generate_series(1, 300000) i;`,
  );
  bucket = await freshBucket();
  standIn = await startStandIn(SECRET_ARN, STATE_MACHINE_ARN);
  goodSecret = standIn.secret.value;
  const props: DumpBagStackProps = {
    keys: { folder: keys },
    connection: { sslMode: 'disable', vpcAttributes: TWIN_VPC },
    backup: { databases: [small, large], fargateAboveGb: ABOVE_GB },
  };
  const twin = synthTwin('DumpBagTwin', props, { tempPrefix: 'dump-bag-fargate' });
  ({ template, functions } = twin);
  pgLayerRoot = twin.standInPgLayer as string;
  fargate = new FargateTwin(standIn, taskDefinitionTwin(template, twin.outdir, localRefs(bucket, standIn)));
}, 600_000);

afterAll(async () => {
  await standIn?.stop();
  await dropDatabases([small, large]);
});

describe('the Fargate runner, from the bundles through the state machine definition', () => {
  it('sends the large database to Fargate and the small one to Lambda; both dumps restore', async () => {
    const run = await execute({ trigger: 'schedule' });
    const last = fargate.runs.at(-1);
    expect(run.outcome.status, `${JSON.stringify(run.outcome)} ${last?.stdout} ${last?.stderr}`).toBe(
      'SUCCEEDED',
    );
    expect(run.lambdaDumps).toEqual([small]);
    expect(run.fargateDumps).toEqual([large]);
    const results = (run.outcome as { output: { results: DumpResult[] } }).output.results;
    expect(results.map((r) => `${r.database} ${r.status} ${r.runner}`).sort()).toEqual(
      [`${large} ok fargate`, `${small} ok lambda`].sort(),
    );
    for (const r of results) await expectRestores(r, r.database);
    expect(run.events.map((e) => `${e.database} ${e.runner}`).sort()).toEqual(
      [`${large} fargate`, `${small} lambda`].sort(),
    );
    // The task unpacked the three layers (entry point, pg_dump, keys), each request signed with its credentials.
    expect(new Set(fargate.layerRequests).size).toBe(3);
    expect(await Promise.all(fargate.signatures)).not.toContain(false);
    // It beat its heart before reporting, and reported once.
    const token = fargate.runs[0]?.env.DUMP_BAG_TASK_TOKEN;
    expect(standIn.taskReports.filter((r) => r.taskToken === token).map((r) => r.action)).toEqual([
      'SendTaskHeartbeat',
      'SendTaskSuccess',
    ]);
    expect(fargate.runs[0]?.exitCode).toBe(0);
    // The task definition's own settings: the dump function's environment plus the layers, nothing secret.
    expect(fargate.task.environment).toMatchObject({
      DUMP_BAG_BUCKET: bucket,
      DUMP_BAG_DB_SECRET_ARN: SECRET_ARN,
    });
    expect(JSON.stringify(fargate.runs[0]?.env)).not.toContain(String(goodSecret.password));
  });

  it('retries a Lambda dump that ran out of time on Fargate, once, in the same execution', async () => {
    const run = await execute({ databases: [small], trigger: 'manual' }, { killLambdaDumpAfterMs: 1 });
    expect(run.lambdaDumps).toEqual([small]);
    expect(run.fargateDumps).toEqual([small]);
    expect(run.outcome.status).toBe('SUCCEEDED');
    const [result] = (run.outcome as { output: { results: DumpResult[] } }).output.results;
    expect(result).toMatchObject({ database: small, status: 'ok', runner: 'fargate' });
    await expectRestores(result as DumpResult, small);
  });

  it('fails only the database whose Fargate task failed (a layer whose hash does not match is refused)', async () => {
    fargate.corruptLayer = [...fargate.task.layerDirs.keys()].find((id) => id.startsWith('PgDump'));
    try {
      const run = await execute({ trigger: 'schedule' });
      expect(run.outcome).toMatchObject({ status: 'FAILED', error: 'DumpsFailed' });
      const cause = (run.outcome as { cause: string }).cause;
      expect(cause).toContain(large);
      expect(cause).not.toContain(small);
      expect(fargate.runs.at(-1)?.stdout).toMatch(/SHA-256 .* is not the .* Lambda recorded; not run/);
      expect(run.events.map((e) => `${e.database} ${e.status}`).sort()).toEqual(
        [`${large} failed`, `${small} ok`].sort(),
      );
      // Reported by the bootstrap itself, not left to the heartbeat timeout.
      const failure = await expectBootstrapFailure(
        /^layer arn:aws:lambda:\S+PgDump\S+: SHA-256 \S+ is not the \S+ Lambda recorded; not run; the download was altered or cut short: run again, and if it repeats, redeploy the stack/,
      );
      expect(run.events.find((e) => e.database === large)?.error).toBe(`BootstrapError: ${failure.cause}`);
    } finally {
      fargate.corruptLayer = undefined;
    }
  });

  it('reports a layer download that fails (404) with SendTaskFailure at once, naming the layer and the fix, and exits 1', async () => {
    fargate.missingLayer = [...fargate.task.layerDirs.keys()].find((id) => id.startsWith('PgDump'));
    try {
      const run = await execute({ databases: [large], trigger: 'manual' });
      expect(run.fargateDumps).toEqual([large]);
      expect(run.outcome).toMatchObject({ status: 'FAILED', error: 'DumpsFailed' });
      const failure = await expectBootstrapFailure(
        /^layer arn:aws:lambda:\S+PgDump\S+: download HTTP 404; the layer version is gone or its URL expired: redeploy the stack \(npx cdk deploy\)/,
      );
      // The item's error is the bootstrap's report; without one the twin (as Step Functions) has only States.HeartbeatTimeout.
      expect(run.events).toEqual([
        expect.objectContaining({
          database: large,
          status: 'failed',
          error: `BootstrapError: ${failure.cause}`,
        }),
      ]);
    } finally {
      fargate.missingLayer = undefined;
    }
  });
});
