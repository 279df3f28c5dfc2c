import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations, AssetHashType, Aws, DockerImage, Duration, Fn, Lazy, Stack, Token } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { buildSync } from 'esbuild';
import { LAYER_PG_ROOT } from '../../functions/core/pg-dump';
import { DEFAULT_FARGATE_ABOVE_GB, RUNNER_SETTINGS, type RunnerSetting } from '../../functions/core/runner';
import { TASK_TIMEOUT_ENV } from '../../functions/dump-task/env';
import { type BagFunction, REPO_ROOT } from './bag-function';

/** A public Node.js 22 image (multi-architecture, no registry login): nothing is built, so deploying needs no Docker. */
export const DEFAULT_TASK_IMAGE = 'public.ecr.aws/docker/library/node:22-bookworm-slim';
/** Where the bundled entry point lands under /opt (the code layer's only folder). */
export const TASK_ENTRY = 'dump-task/index.js';
const BOOTSTRAP = join(REPO_ROOT, 'functions/dump-task/bootstrap.cjs');

/** The runner settings of the backup workflow, checked before anything is built. */
export interface RunnerProps {
  /** `lambda`, `fargate` (every database), or `auto` (by size, and Fargate after a Lambda timeout). @default 'auto' */
  readonly dumpRunner?: RunnerSetting;
  /** Under `auto`, databases larger than this (GB on disk) dump on Fargate. @default 5 (provisional, functions/core/runner.ts) */
  readonly fargateAboveGb?: number;
  /** Fargate task CPU units (1024 = 1 vCPU). @default 1024 */
  readonly fargateCpu?: number;
  /** Fargate task memory in MiB; must suit the CPU (1 vCPU: 2048–8192). @default 2048 */
  readonly fargateMemoryMiB?: number;
  /** Longest a Fargate dump may take; it stops itself 5 minutes before. @default Duration.hours(12) */
  readonly fargateTimeout?: Duration;
}

/** Valid Fargate memory (MiB) per CPU, the AWS table. */
const FARGATE_MEMORY: Record<number, [number, number, number]> = {
  256: [512, 2048, 1024],
  512: [1024, 4096, 1024],
  1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024],
  4096: [8192, 30720, 1024],
  8192: [16384, 61440, 4096],
  16384: [32768, 122880, 8192],
};

/** The task's CPU, memory (a pair Fargate offers) and ceiling. */
function validateTaskSize(where: string, props: RunnerProps): void {
  const cpu = props.fargateCpu ?? 1024;
  const memory = props.fargateMemoryMiB ?? 2048;
  const range = FARGATE_MEMORY[cpu];
  if (!range) {
    throw new Error(
      `${where}: \`fargateCpu\` must be one of ${Object.keys(FARGATE_MEMORY).join(', ')} (1024 = 1 vCPU), got ${cpu}`,
    );
  }
  if (!Number.isInteger(memory) || memory < range[0] || memory > range[1] || memory % range[2] !== 0) {
    throw new Error(
      `${where}: \`fargateMemoryMiB\` for fargateCpu ${cpu} must be ${range[0]}–${range[1]} in steps of ${range[2]}, got ${memory}`,
    );
  }
  const timeout = props.fargateTimeout ?? Duration.hours(12);
  if (
    !Token.isUnresolved(timeout.toSeconds()) &&
    (timeout.toSeconds() < 900 || timeout.toSeconds() > 7 * 86400)
  ) {
    throw new Error(
      `${where}: \`fargateTimeout\` must be from 15 minutes to 7 days, got ${timeout.toHumanString()}`,
    );
  }
}

/**
 * Whether Fargate is used, after checking the settings: `fargate` without a VPC is an error naming
 * the settings; `auto` without one stays Lambda-only with a warning naming them.
 */
export function validateRunnerProps(scope: Construct, props: RunnerProps, hasVpc: boolean): boolean {
  const where = scope.node.path;
  const runner = props.dumpRunner ?? 'auto';
  if (!RUNNER_SETTINGS.includes(runner)) {
    throw new Error(`${where}: \`dumpRunner\` must be one of ${RUNNER_SETTINGS.join(', ')}, got "${runner}"`);
  }
  const gb = props.fargateAboveGb ?? DEFAULT_FARGATE_ABOVE_GB;
  if (!Number.isFinite(gb) || gb < 0 || gb > 100_000) {
    throw new Error(`${where}: \`fargateAboveGb\` must be a number of GB from 0 to 100000, got ${gb}`);
  }
  validateTaskSize(where, props);
  const settings = 'vpc (context vpcId, subnetIds; optionally securityGroupIds, routeTableIds)';
  if (runner === 'fargate' && !hasVpc) {
    throw new Error(
      `${where}: \`dumpRunner\` "fargate" needs the database's VPC: set ${settings}, or use dumpRunner lambda`,
    );
  }
  if (runner === 'auto' && !hasVpc) {
    Annotations.of(scope).addWarningV2(
      'dump-bag:fargate-off',
      `dumpRunner auto runs on Lambda only: Fargate needs the database's VPC; set ${settings} to send large databases and Lambda timeouts to Fargate`,
    );
  }
  return runner !== 'lambda' && hasVpc;
}

export interface FargateDumpProps extends RunnerProps {
  /** The Lambda dump: its environment and its role's policy are the task's, by construction. */
  readonly dumpFunction: BagFunction;
  /** The layers the dump function mounts (pg_dump, keys), unpacked into /opt by the task. */
  readonly layers: readonly lambda.ILayerVersion[];
  readonly architecture: lambda.Architecture;
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default DEFAULT_TASK_IMAGE */
  readonly image?: string;
}

/**
 * The Fargate runner: a cluster (Fargate only), a task definition running a public Node.js image
 * whose command unpacks the dump's layers plus a layer holding the bundled entry point
 * (functions/dump-task), a task role holding the dump role's own policy, and a log group.
 */
export class FargateDump extends Construct {
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly taskRole: iam.Role;
  readonly codeLayer: lambda.LayerVersion;
  readonly logGroup: logs.LogGroup;
  readonly timeout: Duration;
  /** Where the task runs: the dump function's subnets and security groups. */
  readonly subnets?: ec2.SubnetSelection;
  readonly securityGroups?: ec2.ISecurityGroup[];

  constructor(scope: Construct, id: string, props: FargateDumpProps) {
    super(scope, id);
    this.timeout = props.fargateTimeout ?? Duration.hours(12);
    this.subnets = props.vpcSubnets;
    this.securityGroups = props.securityGroups;
    this.codeLayer = new lambda.LayerVersion(this, 'Code', {
      description:
        'Dump Bag: the Fargate dump entry point, bundled (unpacked by the task, never mounted by a function)',
      code: lambda.Code.fromAsset(join(REPO_ROOT, 'functions/dump-task'), {
        // The bundle's own hash: the entry point pulls in functions/core, outside this folder.
        assetHashType: AssetHashType.OUTPUT,
        bundling: {
          image: DockerImage.fromRegistry(DEFAULT_TASK_IMAGE),
          local: { tryBundle: bundleEntryPoint },
        },
      }),
    });
    const layers = [this.codeLayer, ...props.layers];

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      enableFargateCapacityProviders: false,
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: "Dump Bag: the Fargate dump, with the Lambda dump role's own policy",
    });
    // One policy for both roles: whatever the dump function may do, the task may do, and no more.
    const dumpPolicy = props.dumpFunction.role?.node.tryFindChild('DefaultPolicy');
    if (!(dumpPolicy instanceof iam.Policy))
      throw new Error(`${this.node.path}: the dump function's role has no policy`);
    dumpPolicy.attachToRole(this.taskRole);
    this.taskRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:GetLayerVersion'],
        resources: layers.map((l) => l.layerVersionArn),
      }),
    );
    const executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Dump Bag: starts the Fargate dump (public image, logs only)',
    });

    const architecture =
      props.architecture.name === lambda.Architecture.X86_64.name
        ? ecs.CpuArchitecture.X86_64
        : ecs.CpuArchitecture.ARM64;
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.fargateCpu ?? 1024,
      memoryLimitMiB: props.fargateMemoryMiB ?? 2048,
      runtimePlatform: {
        cpuArchitecture: architecture,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole: this.taskRole,
      executionRole,
    });
    this.container = this.taskDefinition.addContainer('Dump', {
      image: ecs.ContainerImage.fromRegistry(props.image ?? DEFAULT_TASK_IMAGE),
      command: ['node', '-e', readFileSync(BOOTSTRAP, 'utf8')],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'dump', logGroup: this.logGroup }),
      essential: true,
    });
    const own: Record<string, string> = {
      AWS_REGION: Aws.REGION,
      DUMP_BAG_LAYERS: Fn.join(
        ',',
        layers.map((l) => l.layerVersionArn),
      ),
      DUMP_BAG_ENTRY: TASK_ENTRY,
      // Where the bootstrap unpacks the pg_dump layer, as Lambda mounts it.
      DUMP_BAG_PG_ROOT: LAYER_PG_ROOT,
      [TASK_TIMEOUT_ENV]: String(this.timeout.toSeconds()),
    };
    const dumpEnvironment = props.dumpFunction.node.defaultChild as lambda.CfnFunction;
    // The dump function's environment as rendered at synth (after every bind…), then the task's own.
    (this.taskDefinition.node.defaultChild as ecs.CfnTaskDefinition).addPropertyOverride(
      'ContainerDefinitions.0.Environment',
      Lazy.any({
        produce: () => {
          // The L1 property as the Function renders it: `{ variables }`, camelCase until CloudFormation.
          const rendered = Stack.of(this).resolve(dumpEnvironment.environment) as
            | { variables?: Record<string, unknown> }
            | undefined;
          if (!rendered?.variables?.DUMP_BAG_BUCKET) {
            throw new Error(
              `${this.node.path}: the dump function's environment has no DUMP_BAG_BUCKET to copy`,
            );
          }
          const all = { ...rendered.variables, ...Stack.of(this).resolve(own) };
          return Object.keys(all)
            .sort()
            .map((name) => ({ Name: name, Value: all[name] }));
        },
      }),
    );

    NagSuppressions.addResourceSuppressions(this.taskDefinition, [
      {
        id: 'AwsSolutions-ECS2',
        reason:
          'The same settings the dump function has as environment variables (bucket, secret ARN, host, layer ARNs); the database password is read from Secrets Manager at run time, never put here.',
      },
    ]);
    NagSuppressions.addResourceSuppressions(this.cluster, [
      {
        id: 'AwsSolutions-ECS4',
        reason:
          'One short task per large database and run; the task logs and the DumpSucceeded metric say how it went, Container Insights would bill metrics for nothing more.',
      },
    ]);
  }

  /** The task role may report its result, fail, and beat its heart to this state machine, nothing else on it. */
  allowReportsTo(stateMachine: sfn.IStateMachine): void {
    stateMachine.grantTaskResponse(this.taskRole);
  }
}

/** esbuild, as the functions are bundled (CommonJS, Node.js 22, minified, source map); never Docker. */
function bundleEntryPoint(outputDir: string): boolean {
  buildSync({
    entryPoints: [join(REPO_ROOT, 'functions/dump-task/main.ts')],
    outfile: join(outputDir, TASK_ENTRY),
    bundle: true,
    platform: 'node',
    // As the functions: packages' ES module builds where they have one, so unused SDK code is left out.
    mainFields: ['module', 'main'],
    target: 'node22',
    format: 'cjs',
    minify: true,
    sourcemap: true,
    external: ['pg-native'],
    define: { 'import.meta.url': '__bundleFileUrl' },
    banner: { js: "const __bundleFileUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'error',
  });
  return true;
}
