import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import { SETTINGS } from '../../functions/core/settings';
import type { DumpBucket } from './dump-bucket';

/** The repository root: entries are given relative to it, and esbuild bundles from it. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Retention of dumps, as the dump function applies it and the API reports it. */
export interface RetentionSettings {
  /** Days scheduled dumps are kept. @default SETTINGS.retentionDays.default (30) */
  readonly days?: number;
  /** Days manual (on-demand) dumps are kept. @default SETTINGS.manualRetentionDays.default (7) */
  readonly manualDays?: number;
  /** Never keep fewer good dumps of a database than this. @default SETTINGS.keepMin.default (3) */
  readonly keepMin?: number;
}

/** What a construct hands on alike to every function it makes. */
export interface FunctionDefaults {
  /** Must match the architecture of any binary layer. @default lambda.Architecture.ARM_64 */
  readonly architecture?: lambda.Architecture;
  /** How long the functions' log groups, and the construct's other logs (API access, executions), keep their logs. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Powertools' service name, in every log line and metric. @default 'dump-bag' */
  readonly serviceName?: string;
}

export interface BagFunctionProps extends FunctionDefaults {
  /** The handler's TypeScript file, relative to the repository root; it exports `handler`. */
  readonly entry: string;
  /** What the function does, shown in the console. */
  readonly description: string;
  /** Memory in MB; CPU share grows with it. @default 512 */
  readonly memorySize?: number;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** More environment variables. @default none */
  readonly environment?: Record<string, string>;
  /** A VPC to run in (for a private database). @default not in a VPC */
  readonly vpc?: ec2.IVpc;
  /** Subnets within the VPC. @default the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Security groups within the VPC. @default none (give them with the VPC) */
  readonly securityGroups?: ec2.ISecurityGroup[];
}

/**
 * The one way Dump Bag makes a Lambda function: Node.js 22 bundled by esbuild with source maps,
 * arm64, a log group with retention, Powertools' environment, and a role that holds nothing but
 * its own log group until a `bind…` helper adds a resource together with its variable.
 */
export class BagFunction extends NodejsFunction {
  /** The function's own log group. */
  readonly functionLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: BagFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    // A role of our own: the default one carries AWSLambdaBasicExecutionRole, which may write to any log group.
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (Dump Bag)`,
      inlinePolicies: props.vpc
        ? {
            // Checked by Lambda when the function is created, so it must be part of the role itself.
            vpcAccess: new iam.PolicyDocument({
              statements: [
                new iam.PolicyStatement({
                  actions: [
                    'ec2:CreateNetworkInterface',
                    'ec2:DescribeNetworkInterfaces',
                    'ec2:DescribeSubnets',
                    'ec2:DeleteNetworkInterface',
                    'ec2:AssignPrivateIpAddresses',
                    'ec2:UnassignPrivateIpAddresses',
                  ],
                  resources: ['*'],
                }),
              ],
            }),
          }
        : undefined,
    });
    super(scope, id, {
      entry: join(REPO_ROOT, props.entry),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: props.architecture ?? lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      logGroup,
      role,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? props.vpcSubnets : undefined,
      securityGroups: props.securityGroups,
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName ?? 'dump-bag',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.CJS,
        target: 'node22',
        minify: true,
        sourceMap: true,
        // The SDK goes into the bundle: the code runs with the versions it was tested with, not the runtime's.
        bundleAwsSDK: true,
        // Packages' ES module builds where they have one (the SDK's dist-es), so that esbuild leaves out
        // what the function never imports: a smaller bundle that starts with less CPU.
        mainFields: ['module', 'main'],
        // pg's optional native binding, never loaded.
        externalModules: ['pg-native'],
        // ESM packages bundled into CommonJS (openpgp calls createRequire(import.meta.url)) need
        // import.meta.url, which CommonJS lacks: give them the bundle's own file URL.
        define: { 'import.meta.url': '__bundleFileUrl' },
        banner: "const __bundleFileUrl = require('node:url').pathToFileURL(__filename).href;",
      },
    });
    this.functionLogGroup = logGroup;
    logGroup.grantWrite(role);
    if (props.vpc) {
      NagSuppressions.addResourceSuppressions(
        role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'Lambda creates and deletes the network interfaces of a VPC function itself; these EC2 actions do not support resource-level permissions.',
            appliesTo: ['Resource::*'],
          },
        ],
        true,
      );
    }
    NagSuppressions.addResourceSuppressions(this, [
      {
        id: 'AwsSolutions-L1',
        reason:
          'Node.js 22 is the runtime Dump Bag is built and tested for (its code also runs on Node.js 20); moving to a newer one is a deliberate change.',
      },
    ]);
  }

  /** DUMP_BAG_BUCKET, with the dump function's rights: write under dumps/, read only the records, never delete. */
  bindDumpWriter(bucket: DumpBucket): this {
    this.addEnvironment(SETTINGS.bucket.env, bucket.bucket.bucketName);
    bucket.grantDumpWrite(this);
    return this;
  }

  /** DUMP_BAG_BUCKET, with the prune function's rights: read the records and delete under dumps/, nothing else. */
  bindPruner(bucket: DumpBucket): this {
    this.addEnvironment(SETTINGS.bucket.env, bucket.bucket.bucketName);
    bucket.grantPrune(this);
    return this;
  }

  /** DUMP_BAG_BUCKET, with the API's rights: read and list under dumps/, nothing else. */
  bindDumpReader(bucket: DumpBucket): this {
    this.addEnvironment(SETTINGS.bucket.env, bucket.bucket.bucketName);
    bucket.grantDumpRead(this);
    return this;
  }

  /** DUMP_BAG_DB_SECRET_ARN, with the right to read that one secret. */
  bindDatabaseSecret(secret: secretsmanager.ISecret): this {
    this.addEnvironment(SETTINGS.dbSecretArn.env, secret.secretArn);
    secret.grantRead(this);
    return this;
  }

  /** DUMP_BAG_STATE_MACHINE_ARN, with the right to start executions of it and list them (to refuse a second on-demand dump). */
  bindStateMachine(stateMachine: sfn.IStateMachine): this {
    this.addEnvironment(SETTINGS.stateMachineArn.env, stateMachine.stateMachineArn);
    stateMachine.grantStartExecution(this);
    stateMachine.grant(this, 'states:ListExecutions');
    return this;
  }

  /** DUMP_BAG_RETENTION_DAYS, DUMP_BAG_MANUAL_RETENTION_DAYS and DUMP_BAG_KEEP_MIN. */
  bindRetention(retention: RetentionSettings): this {
    const { retentionDays, manualRetentionDays, keepMin } = SETTINGS;
    this.addEnvironment(retentionDays.env, String(retention.days ?? retentionDays.default));
    this.addEnvironment(manualRetentionDays.env, String(retention.manualDays ?? manualRetentionDays.default));
    this.addEnvironment(keepMin.env, String(retention.keepMin ?? keepMin.default));
    return this;
  }
}
