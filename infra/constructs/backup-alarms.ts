import { createHash } from 'node:crypto';
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { SETTINGS } from '../../functions/core/settings';
import {
  DATABASE_DIMENSION,
  DUMP_SUCCEEDED_METRIC,
  KEY_EXPIRES_IN_DAYS_METRIC,
  METRIC_NAMESPACE,
  SERVICE_DIMENSION,
} from '../../functions/shared/metrics';
import { checkProp, optional, wholeNumber } from './validate';

export interface BackupAlarmsProps {
  readonly stateMachine: sfn.IStateMachine;
  /** E-mail addresses subscribed to the alarm topic (each confirms by mail). @default none */
  readonly emails?: readonly string[];
  /** Alarm when there has been no successful dump for this many hours. At most 168. @default 26 */
  readonly staleAfterHours?: number;
  /** Databases watched one by one for staleness; the service as a whole is always watched. @default none */
  readonly databases?: readonly string[];
  /** The service name the dump function's metrics carry (POWERTOOLS_SERVICE_NAME). @default 'dump-bag' */
  readonly serviceName?: string;
  /** Alarm when a recipient's key expires within this many days (the plan step's KeyExpiresInDays). @default 30, as DUMP_BAG_KEY_EXPIRY_WARNING_DAYS */
  readonly keyExpiryWarningDays?: number;
}

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validateBackupAlarmsProps(scope: IConstruct, props: BackupAlarmsProps): void {
  checkProp(scope, {
    prop: 'staleAfterHours',
    value: props.staleAfterHours,
    valid: optional(wholeNumber(1, 168)),
    rule: 'must be a whole number from 1 to 168',
    fix: 'CloudWatch evaluates at most 7 days; give the hours between scheduled dumps plus a margin (context staleAfterHours)',
  });
  checkProp(scope, {
    prop: 'keyExpiryWarningDays',
    value: props.keyExpiryWarningDays,
    valid: optional(
      wholeNumber(SETTINGS.keyExpiryWarningDays.parser.min, SETTINGS.keyExpiryWarningDays.parser.max),
    ),
    rule: `must be ${SETTINGS.keyExpiryWarningDays.parser.accepts}`,
    fix: 'give the days of warning the team needs to renew a key; the plan step and the status page read the same (context keyExpiryWarningDays)',
  });
  (props.emails ?? []).forEach((email, index) => {
    checkProp(scope, {
      prop: `emails[${index}]`,
      value: email,
      valid: (address) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(address),
      rule: 'must be an e-mail address',
      fix: 'give addresses like ops@example.com (context alarmEmails)',
    });
  });
}

/**
 * Alarms to an SNS topic: an execution of the backup failed or timed out, and no successful dump
 * (of the listed databases each, and of any database at all) for `staleAfterHours`, counted from
 * the DumpSucceeded metric the dump function emits per database.
 */
export class BackupAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly failedExecutions: cloudwatch.Alarm;
  readonly stale: cloudwatch.Alarm[];
  readonly keyExpiring: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: BackupAlarmsProps) {
    super(scope, id);
    validateBackupAlarmsProps(this, props);
    const hours = props.staleAfterHours ?? 26;
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'Dump Bag alarms', enforceSSL: true });
    for (const email of props.emails ?? [])
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    const notify = new actions.SnsAction(this.topic);

    const period = Duration.minutes(5);
    this.failedExecutions = new cloudwatch.Alarm(this, 'FailedExecutions', {
      alarmDescription:
        'Dump Bag: a backup run failed or timed out; the execution names the databases that failed.',
      metric: new cloudwatch.MathExpression({
        label: 'failed or timed-out backups',
        expression: 'FILL(failed, 0) + FILL(timedOut, 0)',
        usingMetrics: {
          failed: props.stateMachine.metricFailed({ period, statistic: 'Sum' }),
          timedOut: props.stateMachine.metricTimedOut({ period, statistic: 'Sum' }),
        },
        period,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const staleAlarm = (alarmId: string, what: string, dimensions: Record<string, string>) =>
      new cloudwatch.Alarm(this, alarmId, {
        alarmDescription: `Dump Bag: no successful dump of ${what} for ${hours} hours.`,
        metric: new cloudwatch.Metric({
          namespace: METRIC_NAMESPACE,
          metricName: DUMP_SUCCEEDED_METRIC,
          dimensionsMap: dimensions,
          statistic: 'Sum',
          period: Duration.hours(1),
        }),
        // An hour without any success counts against it, whether a dump failed (0) or none ran (missing).
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: hours,
        datapointsToAlarm: hours,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
    this.stale = [
      staleAlarm('NoRecentDump', 'any database', { [SERVICE_DIMENSION]: props.serviceName ?? 'dump-bag' }),
      ...(props.databases ?? []).map((database) =>
        staleAlarm(
          // The database name may hold any character; a digest keeps the id valid and stable.
          `NoRecentDump${createHash('sha256').update(database).digest('hex').slice(0, 12)}`,
          `the database ${database}`,
          { [DATABASE_DIMENSION]: database },
        ),
      ),
    ];
    const warningDays = props.keyExpiryWarningDays ?? SETTINGS.keyExpiryWarningDays.default;
    this.keyExpiring = new cloudwatch.Alarm(this, 'KeyExpiring', {
      alarmDescription: `Dump Bag: a recipient's key expires within ${warningDays} days; backups fail closed from then on. The plan step's log names the key and the gpg --quick-set-expire command that renews it.`,
      metric: new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName: KEY_EXPIRES_IN_DAYS_METRIC,
        dimensionsMap: { [SERVICE_DIMENSION]: props.serviceName ?? 'dump-bag' },
        statistic: 'Minimum',
        period: Duration.days(1),
      }),
      threshold: warningDays,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      // No plan ran today: the staleness alarms speak for that.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of [this.failedExecutions, ...this.stale, this.keyExpiring]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}
