import { ArnFormat, Duration, Stack, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { DUMPS_PREFIX } from '../../functions/core/naming';
import { SETTINGS } from '../../functions/core/settings';
import { DIGEST_ACTION, EXECUTION_EVENT } from '../../functions/notify/events';
import { DUMP_EVENT_DETAIL_TYPE, DUMP_EVENT_SOURCE } from './backup-workflow';
import { BagFunction, type FunctionDefaults } from './bag-function';
import type { DumpBucket } from './dump-bucket';
import { checkProp } from './validate';

/** Daily at 08:00 UTC: the morning after the default 03:00 backup. */
export const DIGEST_SCHEDULE = 'cron(0 8 * * ? *)';

/** The stack's `notify` setting. */
export interface NotifySettings {
  /**
   * The Secrets Manager secret holding the webhook URLs (Slack, Teams, any JSON endpoint): a JSON
   * list of URLs, or one URL. Its complete ARN (as create-secret prints it) or its name; the URLs
   * themselves never reach the template.
   */
  readonly secret: string;
  /** Also a daily message listing the databases backed up in the last 24 hours. @default false */
  readonly digest?: boolean;
}

export interface NotifierProps extends NotifySettings, FunctionDefaults {
  /** The digest lists its dumps (s3:ListBucket under dumps/ only), and its name titles every message. */
  readonly bucket: DumpBucket;
  /** Whose Dump Finished events and failed executions are told. */
  readonly stateMachine: sfn.IStateMachine;
  /** The alarm topic: staleness and key-expiry alarms are told. */
  readonly alarmTopic: sns.ITopic;
}

/** A complete secret ARN ends in the six characters Secrets Manager appends to the name. */
const SECRET_ARN =
  /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
/** Secrets Manager's own rule for names. */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const CREATE_SECRET =
  'aws secretsmanager create-secret --name dump-bag/webhooks --secret-string \'["https://hooks.slack.com/services/…"]\'';

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validateNotifierProps(scope: IConstruct, props: NotifySettings): void {
  const isUrl = typeof props.secret === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(props.secret.trim());
  checkProp(scope, {
    prop: 'notify.secret',
    // A webhook URL is a credential: the message must not repeat it.
    value: isUrl ? '(a URL, not repeated here)' : props.secret,
    valid: !isUrl,
    rule: 'must name a Secrets Manager secret, not hold a webhook URL',
    fix: `keep the URLs out of the template: ${CREATE_SECRET}, then give its name (context notify)`,
  });
  checkProp(scope, {
    prop: 'notify.secret',
    value: props.secret,
    valid: (s) => typeof s === 'string' && (SECRET_ARN.test(s) || SECRET_NAME.test(s)),
    rule: 'must be the complete ARN of a Secrets Manager secret (ending in -AbCdEf) or its name',
    fix: `give the ARN that ${CREATE_SECRET} prints, or the name (context notify)`,
  });
  checkProp(scope, {
    prop: 'notify.digest',
    value: props.digest,
    valid: (d) => d === undefined || typeof d === 'boolean',
    rule: 'must be true or false',
    fix: 'true adds a daily message listing the databases backed up (context notify: {"secret": …, "digest": true})',
  });
}

/**
 * A small function that tells the team's webhooks: each failed database (the backup's Dump Finished
 * events), a run that failed before its databases (Step Functions' status events), the staleness
 * and key-expiry alarms (subscribed to the alarm topic), and optionally a daily digest. Its role
 * may read the one webhook secret and, for the digest, list dumps/; nothing else.
 */
export class Notifier extends Construct {
  readonly function: BagFunction;
  /** The one secret the role may read: its ARN, or `…:secret:<name>-??????` for a name. */
  readonly secretArnForPolicy: string;
  readonly rules: events.Rule[];
  /** The daily digest's schedule, with digest on. */
  readonly digestRule?: events.Rule;

  constructor(scope: Construct, id: string, props: NotifierProps) {
    super(scope, id);
    validateNotifierProps(this, props);
    this.secretArnForPolicy =
      Token.isUnresolved(props.secret) || props.secret.startsWith('arn:')
        ? props.secret
        : // Secrets Manager appends six characters to the name in the ARN.
          Stack.of(this).formatArn({
            service: 'secretsmanager',
            resource: 'secret',
            resourceName: `${props.secret}-??????`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          });

    this.function = new BagFunction(this, 'Handler', {
      entry: 'functions/notify/handler.ts',
      description: "Dump Bag: tells the team's webhooks of failed databases, stale dumps and expiring keys",
      architecture: props.architecture,
      memorySize: 256,
      // Each webhook: three tries of at most 10 s; a few webhooks fit with room.
      timeout: Duration.minutes(3),
      logRetention: props.logRetention,
      serviceName: props.serviceName,
      environment: {
        // As given: GetSecretValue takes the ARN or the name; the value is read at run time only.
        [SETTINGS.notifySecret.env]: props.secret,
        [SETTINGS.bucket.env]: props.bucket.bucket.bucketName,
        [SETTINGS.stateMachineArn.env]: props.stateMachine.stateMachineArn,
        ...(props.digest ? { [SETTINGS.notifyDigest.env]: 'true' } : {}),
      },
    });
    // GetSecretValue alone: grantRead would add DescribeSecret, which the function never calls.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.secretArnForPolicy],
      }),
    );

    // A failed run's event may lack its error and cause; the notifier asks for them. grantRead would add
    // ListExecutions and the state machine itself: this is DescribeExecution on its executions only.
    props.stateMachine.grantExecution(this.function, 'states:DescribeExecution');
    NagSuppressions.addResourceSuppressions(
      this.function.role as iam.IRole,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            "DescribeExecution of any execution of the backup's one state machine (execution:<name>:*): the notifier reads the error and cause of the failed run it is told of, whose name it cannot know in advance.",
          appliesTo: [
            {
              regex:
                '/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:[^*]+:\\*$/g',
            },
          ],
        },
      ],
      true,
    );

    const target = new targets.LambdaFunction(this.function, { retryAttempts: 2 });
    this.rules = [
      new events.Rule(this, 'FailedDumps', {
        description: 'Dump Bag: a database whose dump failed, told by the notifier',
        eventPattern: {
          source: [DUMP_EVENT_SOURCE],
          detailType: [DUMP_EVENT_DETAIL_TYPE],
          detail: {
            stateMachine: [props.stateMachine.stateMachineArn],
            status: events.Match.anythingBut('ok'),
          },
        },
        targets: [target],
      }),
      new events.Rule(this, 'FailedRuns', {
        description: 'Dump Bag: a backup run that failed, timed out or was stopped, told by the notifier',
        eventPattern: {
          source: [EXECUTION_EVENT.source],
          detailType: [EXECUTION_EVENT.detailType],
          detail: {
            stateMachineArn: [props.stateMachine.stateMachineArn],
            status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
          },
        },
        targets: [target],
      }),
    ];
    props.alarmTopic.addSubscription(new subscriptions.LambdaSubscription(this.function));

    if (props.digest) {
      iam.Grant.addToPrincipal({
        grantee: this.function,
        actions: ['s3:ListBucket'],
        resourceArns: [props.bucket.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${DUMPS_PREFIX}*`] } },
      });
      // A rule's schedule invokes through the function's resource policy: no role to hold `<function>:*`.
      this.digestRule = new events.Rule(this, 'Digest', {
        description: 'Dump Bag: the daily digest of the databases backed up',
        schedule: events.Schedule.expression(DIGEST_SCHEDULE),
        targets: [
          new targets.LambdaFunction(this.function, {
            event: events.RuleTargetInput.fromObject({ action: DIGEST_ACTION }),
            retryAttempts: 2,
          }),
        ],
      });
    }
  }
}
