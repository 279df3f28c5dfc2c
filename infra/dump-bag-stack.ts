import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import { SETTINGS } from '../functions/core/settings';
import { BackupAlarms, type BackupAlarmsProps } from './constructs/backup-alarms';
import { BackupWorkflow, type BackupWorkflowProps } from './constructs/backup-workflow';
import { DatabaseConnection, type DatabaseConnectionProps } from './constructs/database-connection';
import { DumpApi, type DumpApiProps } from './constructs/dump-api';
import { DumpBucket, type DumpBucketProps } from './constructs/dump-bucket';
import { Notifier, type NotifySettings } from './constructs/notifier';
import { PgDumpLayer, type PgDumpLayerProps } from './constructs/pg-dump-layer';
import { PublicKeys, type PublicKeysProps } from './constructs/public-keys';
import { RekeyPolicy } from './constructs/rekey-policy';
import { SigningKey } from './constructs/signing-key';

export interface DumpBagStackProps extends StackProps {
  /** Whose public keys the dumps are encrypted for: a folder in the repository or a central bag's URLs. */
  readonly keys: PublicKeysProps;
  /** Where the PostgreSQL server is and how to log in. @default a created secret, the host taken from it */
  readonly connection?: DatabaseConnectionProps;
  /** @default S3-managed encryption, noncurrent versions kept as long as the backup's retention, no Object Lock */
  readonly bucket?: DumpBucketProps;
  /** Schedules, database selection, retention, concurrency, memory and timeout. @default daily at 03:00 UTC, every database */
  readonly backup?: Omit<
    BackupWorkflowProps,
    'bucket' | 'connection' | 'keys' | 'pgDump' | 'serviceName' | 'signingKey'
  >;
  /** Authorization, URL expiry, throttling. @default IAM, 15-minute URLs */
  readonly api?: Omit<
    DumpApiProps,
    | 'bucket'
    | 'stateMachine'
    | 'keys'
    | 'signingKey'
    | 'retention'
    | 'architecture'
    | 'serviceName'
    | 'logRetention'
  >;
  /** E-mail addresses and staleness. @default no subscriptions, 26 hours; the listed backup databases watched each */
  readonly alarms?: Omit<BackupAlarmsProps, 'stateMachine' | 'serviceName' | 'keyExpiryWarningDays'>;
  /** Warn this many days before a recipient's key expires: the plan step's log and metric, the alarm, the status page. @default 30 */
  readonly keyExpiryWarningDays?: number;
  /** Webhooks told of failed databases, stale dumps and expiring keys, from a Secrets Manager secret. @default no notifier */
  readonly notify?: NotifySettings;
  /** Majors and bundling of the pg_dump layer. @default every pinned major, 'auto' bundling */
  readonly pgDump?: Omit<PgDumpLayerProps, 'architecture'>;
  /** Architecture of every function and of the pg_dump binaries. @default lambda.Architecture.ARM_64 */
  readonly architecture?: lambda.Architecture;
  /** Powertools service name, in logs and metrics. @default 'dump-bag' */
  readonly serviceName?: string;
}

/** Dump Bag: the dump bucket, the scheduled backup, the API and the alarms, composed. */
export class DumpBagStack extends Stack {
  readonly bucket: DumpBucket;
  readonly backup: BackupWorkflow;
  readonly api: DumpApi;
  readonly alarms: BackupAlarms;
  readonly connection: DatabaseConnection;
  readonly signingKey: SigningKey;
  /** Present when `notify` is set. */
  readonly notifier?: Notifier;

  constructor(scope: Construct, id: string, props: DumpBagStackProps) {
    super(scope, id, { description: 'Dump Bag: encrypted PostgreSQL backups into S3', ...props });
    const architecture = props.architecture ?? lambda.Architecture.ARM_64;
    const serviceName = props.serviceName ?? 'dump-bag';

    this.bucket = new DumpBucket(this, 'Dumps', {
      retentionDays: props.backup?.retention?.days,
      ...props.bucket,
    });
    const keys = new PublicKeys(this, 'Keys', props.keys);
    this.signingKey = new SigningKey(this, 'Signing');
    this.connection = new DatabaseConnection(this, 'Database', props.connection);
    const pgDump = new PgDumpLayer(this, 'PgDump', { ...props.pgDump, architecture });
    this.backup = new BackupWorkflow(this, 'Backup', {
      ...props.backup,
      bucket: this.bucket,
      connection: this.connection,
      keys,
      signingKey: this.signingKey,
      pgDump,
      serviceName,
    });
    this.api = new DumpApi(this, 'Api', {
      ...props.api,
      bucket: this.bucket,
      stateMachine: this.backup.stateMachine,
      keys,
      signingKey: this.signingKey,
      retention: props.backup?.retention,
      architecture,
      serviceName,
      logRetention: props.backup?.logRetention,
    });
    this.alarms = new BackupAlarms(this, 'Alarms', {
      ...props.alarms,
      databases: props.alarms?.databases ?? props.backup?.databases,
      keyExpiryWarningDays: props.keyExpiryWarningDays,
      stateMachine: this.backup.stateMachine,
      serviceName,
    });
    // One setting for the plan's warning, the status page's banner and the alarm (checked by BackupAlarms).
    const warningDays = String(props.keyExpiryWarningDays ?? SETTINGS.keyExpiryWarningDays.default);
    for (const fn of [this.backup.planFunction, this.api.function])
      fn.addEnvironment(SETTINGS.keyExpiryWarningDays.env, warningDays);
    if (props.notify) {
      this.notifier = new Notifier(this, 'Notify', {
        ...props.notify,
        bucket: this.bucket,
        stateMachine: this.backup.stateMachine,
        alarmTopic: this.alarms.topic,
        architecture,
        logRetention: props.backup?.logRetention,
        serviceName,
      });
    }

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'The API (IAM-signed unless JWT)' });
    new CfnOutput(this, 'BucketName', { value: this.bucket.bucket.bucketName });
    new CfnOutput(this, 'StateMachineArn', { value: this.backup.stateMachine.stateMachineArn });
    new CfnOutput(this, 'DatabaseSecretArn', {
      value: this.connection.secret.secretArn,
      description: this.connection.secretCreated
        ? 'Set this password on the database user, or put the real login here'
        : 'The referenced database login',
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn });
    new CfnOutput(this, 'RekeyPolicyArn', {
      value: new RekeyPolicy(this, 'Rekey', { bucket: this.bucket, signingKey: this.signingKey }).policy
        .managedPolicyArn,
      description: 'Attach to whoever runs dump-bag rekey; no function has these rights',
    });
    const group = this.connection.securityGroups?.[0];
    if (group) {
      new CfnOutput(this, 'FunctionsSecurityGroupId', {
        value: group.securityGroupId,
        description: "Allow this group on the database's port",
      });
    }
  }
}
