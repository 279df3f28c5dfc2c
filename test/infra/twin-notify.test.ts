/**
 * The notifier in the twin: a stack with `notify` (digest on) synthesized with its real bundles.
 * The backup's own state machine definition runs the plan, dump and prune bundles against the
 * real PostgreSQL (one database that exists, one that does not); each event it emits goes through
 * the template's own rule patterns to the bundled notifier, a plain Node process, which reads its
 * webhooks from the stand-in's Secrets Manager and posts to a local HTTP receiver. Over 300 lines:
 * every case reads the one synthesized, bundled assembly with its stand-ins and receiver started in
 * beforeAll; each file of a split would synthesize and bundle again.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NotifyResult } from '../../functions/notify/handler';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import { createDatabase, dropDatabases, freshBucket } from '../support/env';
import { keyFolder, stateMachineDefinition } from './support';
import type { AwsStandIn, StandInRoute } from './twin/aws-stand-in';
import { eventEnvelope, matchesPattern } from './twin/event-pattern';
import {
  functionByArn,
  lambdaEnv,
  localRefs,
  startStandIn,
  synthTwin,
  type TwinTemplate,
  taskResult,
} from './twin/harness';
import { type BundledFunction, type Invocation, invokeBundled } from './twin/lambda-twin';
import { runStateMachine } from './twin/state-machine';

const suffix = randomBytes(3).toString('hex');
const GOOD = `nt_good_${suffix}`;
const MISSING = `nt missing ${suffix}`;
const DB_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dump-bag-notify-db-AbCdEf';
const NOTIFY_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dump-bag/webhooks-XyZ123';
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:dump-bag-notify';
const EXECUTION_ARN = 'arn:aws:states:us-east-1:123456789012:execution:dump-bag-notify:run-1';
/** A webhook URL's path is its credential, as Slack's and Teams' are. */
const TOKEN = `T0KEN${suffix}WEBHOOK`;

type Json = Record<string, unknown>;
let template: TwinTemplate;
let functions: BundledFunction[];
let pgLayerRoot: string;
let bucket: string;
let standIn: AwsStandIn;
let receiver: Server;
let webhook: string;
/** What the notify secret holds, per test. */
let secretValue: string;
const bodies: Json[] = [];
/** Status codes the receiver answers, in turn; 200 once they run out. */
const answers: number[] = [];
let posts = 0;
const notifierRuns: Invocation<NotifyResult>[] = [];

const fn = (prefix: string) => functions.find((f) => f.logicalId.startsWith(prefix)) as BundledFunction;
const env = (f: BundledFunction) =>
  lambdaEnv(f, { standIn, refs: localRefs(bucket, standIn), pgLayer: { dir: pgLayerRoot } });

async function notify(event: unknown): Promise<Invocation<NotifyResult>> {
  const f = fn('NotifyHandler');
  const run = await invokeBundled<NotifyResult>(f, event, { env: env(f) });
  notifierRuns.push(run);
  return run;
}

/** An event to the notifier through every rule of the template whose pattern matches it, as EventBridge would. */
async function publish(event: Json): Promise<Invocation<NotifyResult>[]> {
  const rules = Object.values(template.Resources).filter(
    (r) => r.Type === 'AWS::Events::Rule' && (r.Properties as Json).EventPattern,
  );
  const out: Invocation<NotifyResult>[] = [];
  for (const rule of rules) {
    const p = rule.Properties as { EventPattern: Json };
    if (matchesPattern(p.EventPattern, event, localRefs(bucket, standIn))) out.push(await notify(event));
  }
  return out;
}

/** Step Functions' own event for this test's execution ending with `status`, with whatever else `fields` adds. */
const runStatusEvent = (status: string, fields: Json = {}) =>
  eventEnvelope('aws.states', 'Step Functions Execution Status Change', {
    executionArn: EXECUTION_ARN,
    stateMachineArn: STATE_MACHINE_ARN,
    status,
    ...fields,
  });

/**
 * A run's event without its error and cause (AWS's schema of it promises neither), published while
 * the stand-in answers the notifier's DescribeExecution with `describe`.
 */
async function publishBareRunEvent(
  status: string,
  describe: StandInRoute,
): Promise<Invocation<NotifyResult>[]> {
  standIn.routes.set('AWSStepFunctions.DescribeExecution', describe);
  try {
    return await publish(runStatusEvent(status));
  } finally {
    standIn.routes.delete('AWSStepFunctions.DescribeExecution');
  }
}

/** An SNS delivery of a CloudWatch alarm message to the notifier, as the topic's subscription makes it. */
const snsEvent = (message: string) => ({
  Records: [
    {
      EventSource: 'aws:sns',
      EventVersion: '1.0',
      Sns: { Type: 'Notification', Subject: 'ALARM', Message: message, TopicArn: 'arn:aws:sns:…:Alarms' },
    },
  ],
});

/** The CloudWatch alarm message for one of the template's alarms, built from its own metric. */
function alarmMessage(metricName: string, state: string, reason: string, database?: string): string {
  const alarm = Object.values(template.Resources).find(
    (r) =>
      r.Type === 'AWS::CloudWatch::Alarm' &&
      (r.Properties as Json).MetricName === metricName &&
      JSON.stringify((r.Properties as Json).Dimensions ?? []).includes(database ?? 'Service'),
  );
  if (!alarm) throw new Error(`no alarm on ${metricName} ${database ?? ''}`);
  const p = alarm.Properties as Json;
  return JSON.stringify({
    AlarmName: `DumpBagNotify-${metricName}-${suffix}`,
    AlarmDescription: p.AlarmDescription,
    NewStateValue: state,
    NewStateReason: reason,
    StateChangeTime: new Date().toISOString(),
    Trigger: {
      MetricName: p.MetricName,
      Namespace: p.Namespace,
      Statistic: String(p.Statistic).toUpperCase(),
      Dimensions: (p.Dimensions as { Name: string; Value: string }[]).map((d) => ({
        name: d.Name,
        value: d.Value,
      })),
      Threshold: p.Threshold,
    },
  });
}

beforeAll(async () => {
  await createDatabase(GOOD, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);');
  bucket = await freshBucket();
  const keys = await keyFolder();

  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts++;
      const status = answers.shift() ?? 200;
      if (
        status === 200 &&
        req.url === `/hooks/${TOKEN}` &&
        req.headers['content-type'] === 'application/json'
      )
        bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
      res.writeHead(status);
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/${TOKEN}`;

  standIn = await startStandIn(DB_SECRET_ARN, STATE_MACHINE_ARN);
  // The stand-in's Secrets Manager, holding the webhook secret beside the database login.
  standIn.routes.set('secretsmanager.GetSecretValue', (_req, body) => {
    const id = String((JSON.parse(body) as Json).SecretId);
    standIn.secretReads.push(id);
    if (id === NOTIFY_SECRET_ARN) return { status: 200, body: { ARN: id, SecretString: secretValue } };
    if (id === DB_SECRET_ARN)
      return { status: 200, body: { ARN: id, SecretString: JSON.stringify(standIn.secret.value) } };
    return { status: 400, body: { __type: 'ResourceNotFoundException', message: 'no such secret' } };
  });

  const props: DumpBagStackProps = {
    keys: { folder: keys.folder },
    connection: { sslMode: 'disable' },
    backup: { databases: [GOOD, MISSING], concurrency: 2 },
    notify: { secret: NOTIFY_SECRET_ARN, digest: true },
  };
  const twin = synthTwin('DumpBagTwin', props, { tempPrefix: 'dump-bag-notify' });
  ({ template, functions } = twin);
  pgLayerRoot = twin.standInPgLayer as string;
});

afterAll(async () => {
  await standIn?.stop();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
  await dropDatabases([GOOD]);
});

beforeEach(() => {
  bodies.length = 0;
  answers.length = 0;
  posts = 0;
  secretValue = JSON.stringify([webhook]);
});

describe('a backup run with a failed database, through the rules to the notifier bundle', () => {
  it('posts one well-formed message for the failed database, none for the one that succeeded', async () => {
    const definition = stateMachineDefinition(Template.fromJSON(template));
    const byArn = functionByArn(functions);
    const emitted: Json[] = [];
    const outcome = await runStateMachine(
      definition,
      { trigger: 'schedule' },
      {
        async invokeLambda(arn, payload) {
          const f = byArn(arn);
          return taskResult(await invokeBundled(f, payload, { env: env(f) }));
        },
        putEvents(entries) {
          for (const e of entries)
            emitted.push(eventEnvelope(String(e.Source), String(e.DetailType), JSON.parse(String(e.Detail))));
          return Promise.resolve();
        },
      },
      { Execution: { Id: EXECUTION_ARN }, StateMachine: { Id: STATE_MACHINE_ARN } },
    );
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'DumpsFailed' });
    expect(emitted.map((e) => (e.detail as Json).status).sort()).toEqual(['failed', 'ok']);

    const runs = [];
    for (const event of emitted) runs.push(...(await publish(event)));
    // Step Functions' own event for the failed execution: its databases were told one by one already.
    const failedRun = runStatusEvent('FAILED', {
      error: 'DumpsFailed',
      cause: (outcome as { cause: string }).cause,
    });
    const fromRun = await publish(failedRun);
    expect(fromRun).toHaveLength(1);
    expect(fromRun[0]?.result?.notices).toEqual([]);
    // AWS's schema of that event promises no error or cause: without them the notifier asks Step Functions.
    const described: string[] = [];
    const bare = await publishBareRunEvent('FAILED', (_req, body) => {
      const { executionArn } = JSON.parse(body) as { executionArn: string };
      described.push(executionArn);
      return executionArn === EXECUTION_ARN
        ? { status: 200, body: { executionArn, stateMachineArn: STATE_MACHINE_ARN, ...outcome } }
        : { status: 400, body: { __type: 'ExecutionDoesNotExist', message: 'Execution Does Not Exist' } };
    });
    expect(described).toEqual([EXECUTION_ARN]);
    expect(bare).toHaveLength(1);
    expect(bare[0]).toMatchObject({ ok: true, result: { notices: [] } });

    // Only the failed database's event matched a rule; the good one never woke the notifier.
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ ok: true, result: { notices: ['database-failed'] } });
    expect(bodies).toHaveLength(1);
    const [message] = bodies;
    expect(message).toMatchObject({
      kind: 'database-failed',
      bag: bucket,
      details: { kind: 'database-failed', database: MISSING, cause: expect.stringMatching(/\S/) },
    });
    const link = (message as { details: Json }).details.executionLink as string;
    expect(link).toBe(
      `https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/${encodeURIComponent(EXECUTION_ARN)}`,
    );
    expect(message?.text).toContain(`the backup of ${MISSING} failed: `);
    expect(message?.text).toContain(link);
    expect(JSON.stringify(message)).not.toContain(TOKEN);
    expect(standIn.secretReads).toContain(NOTIFY_SECRET_ARN);
  });

  it('with the digest on, the daily schedule posts one message naming the database backed up', async () => {
    const schedule = Object.values(template.Resources).find(
      (r) => r.Type === 'AWS::Events::Rule' && (r.Properties as Json).ScheduleExpression,
    ) as { Properties: { Targets: { Input: string }[] } };
    // The rule's own input, as EventBridge sends it.
    const run = await notify(JSON.parse(String(schedule.Properties.Targets[0]?.Input)));
    expect(run).toMatchObject({ ok: true, result: { notices: ['digest'] } });
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({ kind: 'digest', bag: bucket });
    const digest = bodies[0] as { details: { databases: { database: string; bytes: number }[] } };
    const listed = digest.details.databases;
    expect(listed.map((d) => d.database)).toEqual([GOOD]);
    expect(listed[0]?.bytes).toBeGreaterThan(0);
  });
});

describe("a failed run's event without its error", () => {
  it('is told once with its status when DescribeExecution is refused, and the log says why', async () => {
    const runs = await publishBareRunEvent('TIMED_OUT', () => ({
      status: 400,
      body: {
        __type: 'AccessDeniedException',
        message: 'not authorized to perform: states:DescribeExecution',
      },
    }));
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ ok: true, result: { notices: ['database-failed'] } });
    expect(bodies).toHaveLength(1);
    expect(bodies[0]?.details).toMatchObject({ database: '(every database)', cause: 'TIMED_OUT' });
    expect(`${runs[0]?.stdout}${runs[0]?.stderr}`).toContain(
      `DescribeExecution of ${EXECUTION_ARN} failed (not authorized to perform: states:DescribeExecution)`,
    );
  });
});

describe('alarms from the topic', () => {
  it('a stale database and a key about to expire become one message each', async () => {
    const stale = await notify(
      snsEvent(
        alarmMessage('DumpSucceeded', 'ALARM', 'Threshold Crossed: 26 datapoints were less than 1.0', GOOD),
      ),
    );
    expect(stale).toMatchObject({ ok: true, result: { notices: ['bag-stale'] } });
    const key = await notify(
      snsEvent(
        alarmMessage(
          'KeyExpiresInDays',
          'ALARM',
          'Threshold Crossed: 1 datapoint [12.0 (02/12/26 03:00:00)] was less than the threshold (30.0).',
        ),
      ),
    );
    expect(key).toMatchObject({ ok: true, result: { notices: ['key-expiring'] } });
    expect(bodies.map((b) => b.kind)).toEqual(['bag-stale', 'key-expiring']);
    expect(bodies[0]?.text).toContain(`no fresh dump of ${GOOD}`);
    expect(bodies[1]?.details).toMatchObject({ kind: 'key-expiring', daysLeft: 12 });
    expect(bodies[1]?.text).toMatch(/expires in 12 day\(s\).*gpg --quick-set-expire/);
  });

  it('tells nothing for an OK state, the failed-execution alarm, or a message that is not an alarm', async () => {
    const hostile = [
      alarmMessage('DumpSucceeded', 'OK', 'Threshold Crossed: back to normal', GOOD),
      JSON.stringify({ AlarmName: 'FailedExecutions', NewStateValue: 'ALARM', Trigger: { Metrics: [] } }),
      'not json {',
      JSON.stringify(['an', 'array']),
      JSON.stringify({ AlarmName: 42, NewStateValue: 'ALARM', Trigger: 'x' }),
      'x'.repeat(300 * 1024),
    ];
    for (const message of hostile) {
      const run = await notify(snsEvent(message));
      expect(run.ok, run.errorMessage).toBe(true);
      expect(run.result?.notices).toEqual([]);
    }
    expect(posts).toBe(0);
  });
});

describe('delivery and the secret', () => {
  it('retries a failing webhook, then logs it by number; the invocation still succeeds', async () => {
    answers.push(500, 500, 500);
    const run = await notify(snsEvent(alarmMessage('DumpSucceeded', 'ALARM', 'no dump for 26 hours', GOOD)));
    expect(run.ok).toBe(true);
    expect(run.result?.deliveries).toEqual([
      { webhook: 1, delivered: false, attempts: 3, error: 'HTTP 500' },
    ]);
    expect(posts).toBe(3);
    expect(run.stdout + run.stderr).toMatch(/webhook #1 did not take the bag-stale message after 3 attempts/);
  });

  it('takes one URL as the whole value, and names a malformed secret without repeating it', async () => {
    secretValue = webhook;
    const one = await notify(snsEvent(alarmMessage('DumpSucceeded', 'ALARM', 'stale', GOOD)));
    expect(one.result?.deliveries).toEqual([{ webhook: 1, delivered: true, attempts: 1 }]);
    secretValue = `{"url": "${webhook}"}`;
    const bad = await notify(snsEvent(alarmMessage('DumpSucceeded', 'ALARM', 'stale', GOOD)));
    expect(bad).toMatchObject({ ok: false, errorType: 'NotifyConfigError' });
    expect(bad.errorMessage).toContain(NOTIFY_SECRET_ARN);
    expect(bad.errorMessage).not.toContain(TOKEN);
  });

  it('never writes the webhook URL to a log', () => {
    expect(notifierRuns.length).toBeGreaterThan(5);
    for (const run of notifierRuns) expect(run.stdout + run.stderr).not.toContain(TOKEN);
  });
});
