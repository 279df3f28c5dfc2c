/**
 * What every twin test sets up alike: the AWS stand-in holding the test server's login, a real
 * synth of the stack with its bundles, and each function's Lambda environment with the template's
 * Refs made local. Each test file keeps only its own stack props, databases and runs.
 */
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { DumpBagStack, type DumpBagStackProps } from '../../../infra/dump-bag-stack';
import { services } from '../../support/env';
import { tempDir } from '../../support/temp';
import { cdkJsonContext } from '../support';
import { AwsStandIn } from './aws-stand-in';
import { type BundledFunction, bundledFunctions, type Invocation, resolveEnvironment } from './lambda-twin';
import { stageStandInPgLayer } from './pg-layer';
import type { TaskError } from './state-machine';

type Json = Record<string, unknown>;
export type TwinTemplate = Json & { Resources: Record<string, Json> };

/** The test server's login in the layout of an RDS-managed secret, as the functions read it. */
export function serverSecret(): Record<string, unknown> {
  const { pgEnv } = services();
  return {
    username: pgEnv.PGUSER,
    password: pgEnv.PGPASSWORD,
    host: pgEnv.PGHOST,
    port: Number(pgEnv.PGPORT),
    dbname: 'postgres',
    engine: 'postgres',
  };
}

/** The stand-in for Secrets Manager (the server's login under `secretArn`), Step Functions and KMS, listening. */
export async function startStandIn(secretArn: string, stateMachineArn: string): Promise<AwsStandIn> {
  const standIn = new AwsStandIn({ arn: secretArn, value: serverSecret() }, stateMachineArn);
  await standIn.start();
  return standIn;
}

/** An existing VPC by its attributes: with one, the stack's `auto` runner sends large databases to Fargate. */
export const TWIN_VPC = {
  vpcId: 'vpc-0a1b2c3d4e5f60718',
  availabilityZones: ['us-east-1a'],
  privateSubnetIds: ['subnet-0a1b2c3d4e5f6071a'],
  privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f6071a'],
};

export interface SynthesizedTwin {
  /** The assembly's folder (a temporary one, removed with the test's temporaries). */
  readonly outdir: string;
  readonly template: TwinTemplate;
  readonly functions: BundledFunction[];
  /** The staged stand-in pg_dump layer's folder; undefined when the layer is the recipe's own build. */
  readonly standInPgLayer?: string;
}

/**
 * A real synth of stack `name` with its bundles. By default a stand-in pg_dump layer (this
 * machine's pg_dump) is staged first, so nothing is compiled; `recipeLayer` builds the recipe's
 * arm64 layer instead (once, then copied from DUMP_BAG_LAYER_CACHE).
 */
export function synthTwin(
  name: string,
  props: DumpBagStackProps,
  options: { readonly tempPrefix: string; readonly recipeLayer?: boolean },
): SynthesizedTwin {
  const outdir = tempDir(`${options.tempPrefix}-cdk-`);
  const standInPgLayer = options.recipeLayer ? undefined : stageStandInPgLayer(outdir, props);
  const context = { ...cdkJsonContext(), ...(options.recipeLayer ? { layerBundling: 'local' } : {}) };
  const app = new App({ outdir, context });
  new DumpBagStack(app, name, props);
  const template = app.synth().getStackByName(name).template as TwinTemplate;
  return { outdir, template, functions: bundledFunctions(outdir, template), standInPgLayer };
}

/** The local stand-in of each resource the template's environments and event patterns Ref, by logical id prefix. */
export function localRefs(bucket: string, standIn: AwsStandIn): Record<string, string> {
  return {
    DumpsBucket: bucket,
    DatabaseSecret: standIn.secret.arn,
    BackupStateMachine: standIn.stateMachineArn,
    SigningKey: standIn.kmsKeyId,
  };
}

/** The SDK's own per-service endpoints: S3 on the local S3 API server, the rest on the stand-in. */
export function endpointEnv(standIn: AwsStandIn): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: services().s3Endpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: standIn.endpoint,
    AWS_ENDPOINT_URL_SFN: standIn.endpoint,
    AWS_ENDPOINT_URL_KMS: standIn.endpoint,
  };
}

export interface LambdaLocals {
  readonly standIn: AwsStandIn;
  /** See localRefs. */
  readonly refs: Record<string, string>;
  /** The pg_dump layer's folder, and the DUMP_BAG_PG_ROOT in place of /opt/pg. @default its `pg` folder */
  readonly pgLayer: { readonly dir: string; readonly pgRoot?: string };
}

/** Exactly what Lambda would set, plus the template's environment with its Refs made local. */
export function lambdaEnv(f: BundledFunction, locals: LambdaLocals): Record<string, string> {
  const { dir, pgRoot = join(dir, 'pg') } = locals.pgLayer;
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    TZ: ':UTC',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_LAMBDA_FUNCTION_NAME: f.logicalId,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(f.memoryMb),
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    LAMBDA_TASK_ROOT: f.codeDir,
    _HANDLER: 'index.handler',
    ...endpointEnv(locals.standIn),
    ...resolveEnvironment(f, locals.refs),
    // The pg_dump layer mounts at /opt/pg; here its tools run from the asset folder.
    ...(f.layerDirs.includes(dir) ? { DUMP_BAG_PG_ROOT: pgRoot } : {}),
  };
}

/** Finds the bundled function a state's (rendered) Lambda ARN names; one the template lacks fails the run. */
export function functionByArn(functions: Iterable<BundledFunction>): (arn: string) => BundledFunction {
  const byArn = new Map([...functions].map((f) => [`<${f.logicalId}.Arn>`, f]));
  return (arn) => {
    const f = byArn.get(arn);
    if (!f) throw new Error(`the state machine invokes ${arn}, which the template does not define`);
    return f;
  };
}

/** An invocation as a Lambda task state sees it: the result, or the error with Lambda's JSON cause. */
export function taskResult(run: Invocation): { ok: true; payload: unknown } | TaskError {
  return run.ok
    ? { ok: true, payload: run.result }
    : {
        ok: false,
        error: run.errorType ?? 'Error',
        cause: JSON.stringify({ errorType: run.errorType, errorMessage: run.errorMessage }),
      };
}
