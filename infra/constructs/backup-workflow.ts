// Over 300 lines: the state machine's states are one definition, read as the flow they form.
import { Duration } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { MAX_DATABASE_NAME_BYTES } from '../../functions/core/naming';
import { DEFAULT_FARGATE_ABOVE_GB, DUMP_RUNNER_ENV, FARGATE_ABOVE_GB_ENV } from '../../functions/core/runner';
import { SETTINGS } from '../../functions/core/settings';
import { TASK_HEARTBEAT_SECONDS, TASK_INPUT_ENV, TASK_TOKEN_ENV } from '../../functions/dump-task/env';
import { BagFunction, type FunctionDefaults, type RetentionSettings } from './bag-function';
import type { DatabaseConnection } from './database-connection';
import type { DumpBucket } from './dump-bucket';
import { FargateDump, type RunnerProps, validateRunnerProps } from './fargate-dump';
import type { PgDumpLayer } from './pg-dump-layer';
import type { PublicKeys } from './public-keys';
import type { SigningKey } from './signing-key';
import { checkProp, optional, wholeNumber } from './validate';

/** The EventBridge `source` and `detail-type` of the event sent for every finished dump. */
export const DUMP_EVENT_SOURCE = 'dump-bag';
export const DUMP_EVENT_DETAIL_TYPE = 'Dump Finished';
/** Daily at 03:00 UTC. */
export const DEFAULT_SCHEDULE = 'cron(0 3 * * ? *)';
/** What the dump keeps back from its timeout to abort cleanly (functions/dump/handler.ts DEADLINE_MARGIN_MS), plus room to dump. */
const MIN_DUMP_TIMEOUT = Duration.minutes(1);

/** The functions take the pg_dump layer's architecture, so it is no prop of its own. */
export interface BackupWorkflowProps extends RunnerProps, Omit<FunctionDefaults, 'architecture'> {
  /** Where the dumps and their records go; the dump role may only add, the prune role only delete. */
  readonly bucket: DumpBucket;
  /** The server, its login secret, and the VPC settings the plan, dump and Fargate task reach it with. */
  readonly connection: DatabaseConnection;
  /** The recipients' public keys (a layer) the dumps are encrypted for. */
  readonly keys: PublicKeys;
  /** Signs every record the dump function writes (kms:Sign for the dump role only). */
  readonly signingKey: SigningKey;
  /** The pg_dump binaries; the dump function takes the layer's architecture. */
  readonly pgDump: PgDumpLayer;
  /** EventBridge Scheduler expressions (`cron(…)`, `rate(…)`), UTC; empty for on-demand dumps only. @default ['cron(0 3 * * ? *)'] */
  readonly schedules?: readonly string[];
  /** Databases to dump. @default every database that allows connections and is not a template */
  readonly databases?: readonly string[];
  /** Databases never to dump. @default none */
  readonly exclude?: readonly string[];
  /** @default 30 days, manual dumps 7 days, keep at least 3 */
  readonly retention?: RetentionSettings;
  /** Databases dumped at the same time. @default 2 */
  readonly concurrency?: number;
  /** Memory of the dump function in MB (1769 MB is one full vCPU). @default 1769 */
  readonly dumpMemorySize?: number;
  /** Time one database's dump may take; it stops itself 10 s before. At most 15 minutes. @default Duration.minutes(15) */
  readonly dumpTimeout?: Duration;
  /** pg_dump's --compress. @default the core's: gzip level 1 */
  readonly compression?: string;
  /** Longest a whole backup run may take. @default Duration.hours(6), with Fargate its timeout plus an hour */
  readonly executionTimeout?: Duration;
}

/** A crashed prune's input: the result it was given and the error. */
const PRUNE_CAUGHT = '{% {"result": $states.input, "error": $states.errorOutput} %}';
/** What a crashed prune adds to the result it was given: nothing pruned, the error named. */
const PRUNE_FAILED =
  '{"pruned": [], "retentionError": $states.input.error.Error & ": " & $states.input.error.Cause}';

/** A PostgreSQL database name: 1 to MAX_DATABASE_NAME_BYTES bytes, no NUL. */
function isDatabaseName(name: string): boolean {
  return name.length > 0 && Buffer.byteLength(name) <= MAX_DATABASE_NAME_BYTES && !name.includes('\0');
}

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validateBackupWorkflowProps(scope: IConstruct, props: BackupWorkflowProps): void {
  (props.schedules ?? []).forEach((expression, index) => {
    checkProp(scope, {
      prop: `schedules[${index}]`,
      value: expression,
      valid: (e) => /^(cron|rate|at)\(.+\)$/.test(e.trim()),
      rule: 'must be a schedule expression',
      fix: 'write cron(0 3 * * ? *) or rate(12 hours) (context schedules)',
    });
  });
  validateSelection(scope, props);
  validateDump(scope, props);
  for (const [prop, value] of Object.entries(props.retention ?? {})) {
    checkProp(scope, {
      prop: `retention.${prop}`,
      value,
      valid: optional(wholeNumber(1)),
      rule: 'must be a whole number of at least 1',
      fix: 'give days (a count, for keepMin) of 1 or more (context retentionDays, manualRetentionDays, keepMin)',
    });
  }
}

function validateSelection(scope: IConstruct, props: BackupWorkflowProps): void {
  const databases = props.databases ?? [];
  const exclude = props.exclude ?? [];
  for (const [prop, names] of [
    ['databases', databases],
    ['exclude', exclude],
  ] as const) {
    names.forEach((name, index) => {
      checkProp(scope, {
        prop: `${prop}[${index}]`,
        value: name,
        valid: isDatabaseName,
        rule: `must be a PostgreSQL database name (1 to ${MAX_DATABASE_NAME_BYTES} bytes, no NUL)`,
        fix: `give the database's name as the server lists it (context ${prop})`,
      });
    });
  }
  checkProp(scope, {
    prop: 'exclude',
    value: exclude.filter((name) => databases.includes(name)),
    valid: (both) => both.length === 0,
    rule: 'must not name a database that `databases` selects',
    fix: 'remove each of them from `databases` or from `exclude` (context databases / exclude)',
  });
}

/** The dump function's limits: what Lambda allows, and what pg_dump with encryption needs. */
function validateDump(scope: IConstruct, props: BackupWorkflowProps): void {
  checkProp(scope, {
    prop: 'concurrency',
    value: props.concurrency,
    valid: optional(wholeNumber(1, 40)),
    rule: 'must be a whole number from 1 to 40',
    fix: 'each dump at the same time is a database connection and a Lambda (context concurrency)',
  });
  checkProp(scope, {
    prop: 'dumpTimeout',
    value: props.dumpTimeout,
    valid: optional((t) => t.toSeconds() <= 900 && t.toSeconds() >= MIN_DUMP_TIMEOUT.toSeconds()),
    rule: "must be from 1 to 15 minutes (Lambda's limit)",
    fix: 'a database that needs longer needs a bigger dumpMemorySize or a task outside Lambda (context dumpTimeoutMinutes)',
  });
  checkProp(scope, {
    prop: 'dumpMemorySize',
    value: props.dumpMemorySize,
    valid: optional(wholeNumber(512, 10240)),
    rule: 'must be from 512 to 10240 MB',
    fix: 'pg_dump, encryption and upload buffers need at least 512 (context dumpMemoryMb)',
  });
}

/**
 * The backup: EventBridge schedules start a Step Functions state machine that plans (lists the
 * databases), dumps each database in its own Lambda invocation with bounded concurrency, prunes
 * that database's old dumps after a good dump (in a role of its own), sends an
 * EventBridge event per finished dump, dumps the globals once, and fails the execution naming
 * the databases (and the globals) that failed.
 */
/** The databases to dump and to skip, as the core's comma lists (a comma inside a name is written `\\,`). */
function selectionEnv(databases: readonly string[], exclude: readonly string[]): Record<string, string> {
  const list = (names: readonly string[]) =>
    names.map((n) => n.replace(/\\/g, '\\\\').replace(/,/g, '\\,')).join(',');
  return {
    ...(databases.length > 0 ? { [SETTINGS.databases.env]: list(databases) } : {}),
    ...(exclude.length > 0 ? { [SETTINGS.exclude.env]: list(exclude) } : {}),
  };
}

export class BackupWorkflow extends Construct {
  readonly planFunction: BagFunction;
  readonly dumpFunction: BagFunction;
  /** Retention after each good dump, in a role of its own: no database, no secret, delete under dumps/ only. */
  readonly pruneFunction: BagFunction;
  /** The Fargate runner, when dumpRunner and the VPC allow it. */
  readonly fargate?: FargateDump;
  readonly stateMachine: sfn.StateMachine;
  readonly schedules: scheduler.Schedule[];

  constructor(scope: Construct, id: string, props: BackupWorkflowProps) {
    super(scope, id);
    validateBackupWorkflowProps(this, props);
    const schedules = props.schedules ?? [DEFAULT_SCHEDULE];
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const architecture = props.pgDump.architecture;
    const { connection } = props;
    const fargateOn = validateRunnerProps(this, props, Boolean(connection.vpc));
    const selection = selectionEnv(props.databases ?? [], props.exclude ?? []);

    const placement = {
      vpc: connection.vpc,
      vpcSubnets: connection.vpcSubnets,
      securityGroups: connection.securityGroups,
    };
    this.planFunction = new BagFunction(this, 'Plan', {
      entry: 'functions/plan/handler.ts',
      description: 'Dump Bag: checks the keys and lists the databases to dump',
      architecture,
      timeout: Duration.minutes(1),
      logRetention,
      serviceName: props.serviceName,
      // The bucket's name only (the core's settings require one); the plan gets no right on it.
      environment: {
        ...selection,
        [SETTINGS.bucket.env]: props.bucket.bucket.bucketName,
        [DUMP_RUNNER_ENV]: fargateOn ? (props.dumpRunner ?? 'auto') : 'lambda',
        [FARGATE_ABOVE_GB_ENV]: String(props.fargateAboveGb ?? DEFAULT_FARGATE_ABOVE_GB),
      },
      ...placement,
    });
    connection.bind(this.planFunction);
    props.keys.bind(this.planFunction);

    this.dumpFunction = new BagFunction(this, 'Dump', {
      entry: 'functions/dump/handler.ts',
      description: 'Dump Bag: pg_dump of one database, encrypted, into S3',
      architecture,
      memorySize: props.dumpMemorySize ?? 1769,
      timeout: props.dumpTimeout ?? Duration.minutes(15),
      logRetention,
      serviceName: props.serviceName,
      environment: {
        ...selection,
        ...(props.compression ? { [SETTINGS.compression.env]: props.compression } : {}),
      },
      ...placement,
    });
    this.dumpFunction.addLayers(props.pgDump.layer);
    this.dumpFunction.bindDumpWriter(props.bucket);
    connection.bind(this.dumpFunction);
    props.keys.bind(this.dumpFunction);
    props.signingKey.bindSigner(this.dumpFunction);

    // Outside the VPC on purpose: it talks to S3 only, never to the database.
    this.pruneFunction = new BagFunction(this, 'Prune', {
      entry: 'functions/prune/handler.ts',
      description: "Dump Bag: retention of one database's dumps after a good dump",
      architecture,
      timeout: Duration.minutes(2),
      logRetention,
      serviceName: props.serviceName,
    });
    this.pruneFunction.bindPruner(props.bucket).bindRetention(props.retention ?? {});
    this.fargate = fargateOn ? this.fargateRunner(props, logRetention) : undefined;
    // Long enough for the slowest runner: a Fargate dump's ceiling and an hour for the rest.
    const executionTimeout =
      props.executionTimeout ?? this.fargate?.timeout.plus(Duration.hours(1)) ?? Duration.hours(6);

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'Dump Bag backup: plan, dump and prune each database, dump the globals, report',
      queryLanguage: sfn.QueryLanguage.JSONATA,
      definitionBody: sfn.DefinitionBody.fromChainable(this.definition(props.concurrency ?? 2)),
      timeout: executionTimeout,
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, 'ExecutionLogs', { retention: logRetention }),
        level: sfn.LogLevel.ALL,
        includeExecutionData: true,
      },
    });

    this.fargate?.allowReportsTo(this.stateMachine);

    this.schedules = schedules.map(
      (expression, index) =>
        new scheduler.Schedule(this, `Schedule${index + 1}`, {
          description: `Dump Bag: scheduled backup (${expression} UTC)`,
          schedule: scheduler.ScheduleExpression.expression(expression.trim()),
          target: new schedulerTargets.StepFunctionsStartExecution(this.stateMachine, {
            input: scheduler.ScheduleTargetInput.fromObject({ trigger: 'schedule' }),
            retryAttempts: 2,
          }),
        }),
    );

    NagSuppressions.addResourceSuppressions(
      this.stateMachine,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Generated by CDK: invoking the plan and dump functions with any version or alias (`<function arn>:*`), and CloudWatch log delivery and X-Ray, whose actions take no resource.',
          appliesTo: [{ regex: '/^Resource::<.+\\.Arn>:\\*$/g' }, 'Resource::*'],
        },
      ],
      true,
    );
  }

  /** The Fargate runner, in the dump function's VPC with its layers, the keys' and the CA's. */
  private fargateRunner(
    props: BackupWorkflowProps,
    logRetention: logs.RetentionDays,
  ): FargateDump | undefined {
    const { connection } = props;
    if (!connection.vpc) return undefined;
    return new FargateDump(this, 'Fargate', {
      ...props,
      dumpFunction: this.dumpFunction,
      layers: [
        props.pgDump.layer,
        ...(props.keys.layer ? [props.keys.layer] : []),
        ...(connection.caLayer ? [connection.caLayer] : []),
      ],
      architecture: props.pgDump.architecture,
      vpc: connection.vpc,
      vpcSubnets: connection.vpcSubnets,
      securityGroups: connection.securityGroups,
      logRetention,
    });
  }

  private definition(concurrency: number): sfn.IChainable {
    // The execution's input as it is: {"trigger":"schedule"} or {"databases":[…],"trigger":"manual"}.
    const plan = this.invoke(
      'Plan databases',
      this.planFunction,
      '{% $states.result.Payload %}',
      '{% $states.input %}',
    );

    const dump = this.invoke('Dump database', this.dumpFunction, '{% $states.result.Payload %}');
    // A dump that crashed or hit the Lambda timeout still becomes a failed result, so the others go on.
    const crashed = this.onError(dump, 'Dump crashed', {
      caught: '{% {"database": $states.input.database, "error": $states.errorOutput} %}',
      result:
        '{% {"database": $states.input.database, "status": "failed", "runner": "lambda", "outOfTime": $states.input.error.Error = "Sandbox.Timedout", "error": $states.input.error.Error & ": " & $states.input.error.Cause} %}',
    });
    const announce = tasks.EventBridgePutEvents.jsonata(this, 'Announce dump', {
      entries: [
        {
          source: DUMP_EVENT_SOURCE,
          detailType: DUMP_EVENT_DETAIL_TYPE,
          detail: sfn.TaskInput.fromText(
            '{% $string({"database": $states.input.database, "status": $states.input.status, "runner": $states.input.runner, "key": $states.input.key, "bytes": $states.input.bytes, "sha256": $states.input.sha256, "seconds": $states.input.seconds, "error": $states.input.error, "stateMachine": $states.context.StateMachine.Id, "execution": $states.context.Execution.Id}) %}',
          ),
        },
      ],
      // The event is news for others; the result of the dump is what goes on.
      outputs: '{% $states.input %}',
    });
    this.onError(announce, 'Event not sent', {
      caught: '{% $states.input %}',
      result: '{% $states.input %}',
    });

    const afterDump = this.pruneIfOk(announce);

    const eachDatabase = sfn.Map.jsonata(this, 'Dump each database', {
      items: sfn.ProvideItems.jsonata('{% $states.input.databases %}'),
      jsonataItemSelector:
        '{% {"database": $states.context.Map.Item.Value.name, "sizeBytes": $states.context.Map.Item.Value.sizeBytes, "runner": $states.context.Map.Item.Value.runner, "server": $states.input.server, "trigger": $states.input.trigger} %}',
      maxConcurrency: concurrency,
      // The plan's server and trigger go on to the globals dump after the Map.
      outputs:
        '{% {"results": $states.result, "server": $states.input.server, "trigger": $states.input.trigger} %}',
    });
    if (this.fargate) {
      eachDatabase.itemProcessor(this.runnerChoice(this.fargate, dump, crashed, afterDump));
    } else {
      eachDatabase.itemProcessor(dump.next(afterDump));
      crashed.next(announce);
    }

    const failed = sfn.Fail.jsonata(this, 'Some dumps failed', {
      error: 'DumpsFailed',
      cause:
        '{% "failed: " & $join($append($states.input.results[status != "ok"].(database & " (" & error & ")"), $states.input.globals.status != "ok" ? ["globals (" & $states.input.globals.error & ")"] : []), "; ") %}',
    });
    const report = sfn.Choice.jsonata(this, 'Report')
      .when(
        sfn.Condition.jsonata(
          '{% $count($states.input.results[status != "ok"]) > 0 or $states.input.globals.status != "ok" %}',
        ),
        failed,
      )
      .otherwise(sfn.Succeed.jsonata(this, 'All dumped', { outputs: '{% $states.input %}' }));

    return plan.next(eachDatabase).next(this.globalsStep(report));
  }

  /** A Lambda step whose output is `outputs`; Lambda's own service errors are retried. @default payload the state's input */
  private invoke(
    id: string,
    lambdaFunction: BagFunction,
    outputs: string,
    payload?: string,
  ): tasks.LambdaInvoke {
    return tasks.LambdaInvoke.jsonata(this, id, {
      lambdaFunction,
      payload: payload === undefined ? undefined : sfn.TaskInput.fromText(payload),
      outputs,
      retryOnServiceExceptions: true,
    });
  }

  /**
   * Catches every error of `task` (after its retries) into a Pass state `id` that turns it into a
   * result, so the run goes on: `caught` is the Pass state's input (default: the error output),
   * `result` its output.
   */
  private onError(
    task: sfn.TaskStateBase,
    id: string,
    states: { caught?: string; result: string },
  ): sfn.Pass {
    const pass = sfn.Pass.jsonata(this, id, { outputs: states.result });
    task.addCatch(pass, { errors: [sfn.Errors.ALL], outputs: states.caught });
    return pass;
  }

  /**
   * The run's one globals dump (pg_dumpall by the dump function, which has the layer, the database
   * and the signer), after the Map so it never holds a database back; then, if good, retention of
   * the globals in the prune role. A failure or crash becomes `globals.status = "failed"`, which
   * the report turns into a failed execution; the databases' results stay as they are.
   */
  private globalsStep(report: sfn.IChainable): sfn.IChainable {
    const dumpGlobals = this.invoke(
      'Dump globals',
      this.dumpFunction,
      '{% {"results": $states.input.results, "globals": $states.result.Payload} %}',
      '{% {"globals": true, "server": $states.input.server, "trigger": $states.input.trigger} %}',
    );
    const globalsCrashed = this.onError(dumpGlobals, 'Globals dump crashed', {
      caught: '{% {"results": $states.input.results, "error": $states.errorOutput} %}',
      result:
        '{% {"results": $states.input.results, "globals": {"status": "failed", "error": "globals: " & $states.input.error.Error & ": " & $states.input.error.Cause}} %}',
    });
    const pruneGlobals = this.pruneStep('Prune globals', 'Globals prune crashed', {
      payload: '{% {"globals": true, "key": $states.input.globals.key} %}',
      outputs:
        '{% {"results": $states.input.results, "globals": $merge([$states.input.globals, $states.result.Payload])} %}',
      crashed: `{% {"results": $states.input.result.results, "globals": $merge([$states.input.result.globals, ${PRUNE_FAILED}])} %}`,
    });
    const ok = this.pruneIf('Globals ok?', '{% $states.input.globals.status = "ok" %}', pruneGlobals, report);
    globalsCrashed.next(report);
    dumpGlobals.next(ok);
    return dumpGlobals;
  }

  /**
   * Retention per database right after that database's dump succeeded (inside the Map, so it
   * never waits for the slowest database and never runs for a failed one); its outcome joins the
   * dump's result. A prune that fails or crashes leaves the result ok with a retentionError.
   */
  private pruneIfOk(next: sfn.IChainable): sfn.IChainable {
    const prune = this.pruneStep('Prune database', 'Prune crashed', {
      payload: '{% {"database": $states.input.database, "key": $states.input.key} %}',
      outputs: '{% $merge([$states.input, $states.result.Payload]) %}',
      crashed: `{% $merge([$states.input.result, ${PRUNE_FAILED}]) %}`,
    });
    return this.pruneIf('Dump ok?', '{% $states.input.status = "ok" %}', prune, next);
  }

  /** A prune step and its catch: a prune that fails or crashes leaves its result ok, with a retentionError. */
  private pruneStep(
    id: string,
    crashedId: string,
    expressions: { payload: string; outputs: string; crashed: string },
  ): { task: tasks.LambdaInvoke; crashed: sfn.Pass } {
    const task = this.invoke(id, this.pruneFunction, expressions.outputs, expressions.payload);
    const crashed = this.onError(task, crashedId, { caught: PRUNE_CAUGHT, result: expressions.crashed });
    return { task, crashed };
  }

  /** Prunes only when `ok` holds (the dump was good); pruned, crashed or skipped, the run goes on to `next`. */
  private pruneIf(
    id: string,
    ok: string,
    prune: { task: tasks.LambdaInvoke; crashed: sfn.Pass },
    next: sfn.IChainable,
  ): sfn.Choice {
    prune.task.next(next);
    prune.crashed.next(next);
    return sfn.Choice.jsonata(this, id).when(sfn.Condition.jsonata(ok), prune.task).otherwise(next);
  }

  /**
   * Per item: the plan's runner picks Lambda or Fargate; a Lambda dump that ran out of time (it says
   * so, or Lambda killed it) goes to Fargate once; a Fargate failure is that database's failed result.
   */
  private runnerChoice(
    fargate: FargateDump,
    dump: sfn.TaskStateBase,
    crashed: sfn.Pass,
    afterDump: sfn.IChainable,
  ): sfn.IChainable {
    const keep = sfn.Pass.jsonata(this, 'Keep the item', { assign: { item: '{% $states.input %}' } });
    const onFargate = tasks.EcsRunTask.jsonata(this, 'Dump on Fargate', {
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      cluster: fargate.cluster,
      taskDefinition: fargate.taskDefinition,
      launchTarget: new tasks.EcsFargateLaunchTarget({ platformVersion: ecs.FargatePlatformVersion.LATEST }),
      subnets: fargate.subnets,
      securityGroups: fargate.securityGroups,
      containerOverrides: [
        {
          containerDefinition: fargate.container,
          environment: [
            { name: TASK_TOKEN_ENV, value: '{% $states.context.Task.Token %}' },
            { name: TASK_INPUT_ENV, value: '{% $string($item) %}' },
          ],
        },
      ],
      taskTimeout: sfn.Timeout.duration(fargate.timeout),
      heartbeatTimeout: sfn.Timeout.duration(Duration.seconds(TASK_HEARTBEAT_SECONDS)),
      outputs: '{% $states.result %}',
    });
    const fargateFailed = this.onError(onFargate, 'Fargate dump failed', {
      result:
        '{% {"database": $item.database, "status": "failed", "runner": "fargate", "error": $states.input.Error & ": " & $states.input.Cause} %}',
    });
    onFargate.next(afterDump);
    fargateFailed.next(afterDump);
    const outOfTime = sfn.Choice.jsonata(this, 'Out of time on Lambda?')
      .when(
        sfn.Condition.jsonata('{% $states.input.status = "failed" and $states.input.outOfTime = true %}'),
        onFargate,
      )
      .otherwise(afterDump);
    dump.next(outOfTime);
    crashed.next(outOfTime);
    const runner = sfn.Choice.jsonata(this, 'Which runner')
      .when(sfn.Condition.jsonata('{% $states.input.runner = "fargate" %}'), onFargate)
      .otherwise(dump);
    return keep.next(runner);
  }
}
