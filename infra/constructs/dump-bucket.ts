import { Annotations, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { GLOBALS_PREFIX } from '../../functions/core/globals';
import { SETTINGS } from '../../functions/core/settings';
import { checkProp, oneOf, optional, wholeNumber } from './validate';

/** Where every dump and its record live; nothing in the bucket outside it is Dump Bag's. */
export const DUMPS_PREFIX = 'dumps/';

export interface ObjectLockSettings {
  /** GOVERNANCE lets a privileged user lift the lock; COMPLIANCE lets nobody. @default 'GOVERNANCE' */
  readonly mode?: 'GOVERNANCE' | 'COMPLIANCE';
  /** Days each object version is locked against deletion and overwrite. */
  readonly days: number;
}

export interface DumpBucketProps {
  /** Encryption at rest: S3-managed keys, or a customer-managed KMS key (with rotation) made here. @default 's3' */
  readonly encryption?: 's3' | 'kms';
  /** Days a deleted or overwritten object's old version is kept before it expires; less than `retentionDays` warns at synth. @default retentionDays */
  readonly noncurrentVersionExpirationDays?: number;
  /** The backup's retention of scheduled dumps, the floor for noncurrent versions. @default SETTINGS.retentionDays.default (30) */
  readonly retentionDays?: number;
  /** Object Lock default retention for every new object version. @default no Object Lock */
  readonly objectLock?: ObjectLockSettings;
  /** Keep S3 server access logs in a bucket of their own, for this many days. @default 90 (0: no access logs) */
  readonly accessLogDays?: number;
  /** What happens to the bucket when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validateDumpBucketProps(scope: IConstruct, props: DumpBucketProps): void {
  checkProp(scope, {
    prop: 'encryption',
    value: props.encryption,
    valid: optional(oneOf(['s3', 'kms'])),
    rule: "must be 's3' or 'kms'",
    fix: "'s3' for S3-managed keys, 'kms' for a customer-managed key made here (context bucketEncryption)",
  });
  checkProp(scope, {
    prop: 'noncurrentVersionExpirationDays',
    value: props.noncurrentVersionExpirationDays,
    valid: optional(wholeNumber(1)),
    rule: 'must be a whole number of at least 1',
    fix: 'give the days old versions are kept (context noncurrentVersionDays); old versions must expire some day, or deleted dumps are kept and paid for forever',
  });
  checkProp(scope, {
    prop: 'retentionDays',
    value: props.retentionDays,
    valid: optional(wholeNumber(1)),
    rule: 'must be a whole number of at least 1',
    fix: "give the backup's retention of scheduled dumps in days (context retentionDays)",
  });
  checkProp(scope, {
    prop: 'accessLogDays',
    value: props.accessLogDays,
    valid: optional(wholeNumber(0)),
    rule: 'must be a whole number of at least 0',
    fix: 'give the days access logs are kept (context accessLogDays); use 0 for no access logs',
  });
  if (props.objectLock === undefined) return;
  checkProp(scope, {
    prop: 'objectLock.days',
    value: props.objectLock.days,
    valid: wholeNumber(1),
    rule: 'must be a whole number of at least 1',
    fix: 'give the days each dump is locked (context objectLockDays), or leave objectLock out (context objectLockMode)',
  });
  checkProp(scope, {
    prop: 'objectLock.mode',
    value: props.objectLock.mode,
    valid: optional(oneOf(['GOVERNANCE', 'COMPLIANCE'])),
    rule: "must be 'GOVERNANCE' or 'COMPLIANCE'",
    fix: 'GOVERNANCE lets a privileged user lift the lock, COMPLIANCE lets nobody (context objectLockMode)',
  });
}

function objectLockRetention(lock: ObjectLockSettings): s3.ObjectLockRetention {
  const days = Duration.days(lock.days);
  return (lock.mode ?? 'GOVERNANCE') === 'COMPLIANCE'
    ? s3.ObjectLockRetention.compliance(days)
    : s3.ObjectLockRetention.governance(days);
}

/**
 * The dump bucket: public access blocked, TLS only, encrypted at rest, versioned with noncurrent
 * versions expiring, incomplete multipart uploads aborted after a day, Object Lock as an option.
 * Retention of current dumps is Dump Bag's own (per database, never below keep-min), not a lifecycle rule.
 */
export class DumpBucket extends Construct {
  readonly bucket: s3.Bucket;
  /** The customer-managed key, with `encryption: 'kms'`. */
  readonly key?: kms.Key;

  constructor(scope: Construct, id: string, props: DumpBucketProps = {}) {
    super(scope, id);
    validateDumpBucketProps(this, props);
    const encryption = props.encryption ?? 's3';
    const retentionDays = props.retentionDays ?? SETTINGS.retentionDays.default;
    // A deleted dump stays recoverable for as long as retention would have kept it.
    const noncurrentDays = props.noncurrentVersionExpirationDays ?? retentionDays;
    if (noncurrentDays < retentionDays) {
      Annotations.of(this).addWarningV2(
        'dump-bag:noncurrent-below-retention',
        `${this.node.path}: \`noncurrentVersionExpirationDays\` (${noncurrentDays}) is below the retention of ${retentionDays} days: a dump deleted by a compromised or mistaken role is gone for good after ${noncurrentDays} days; leave it out to keep old versions as long as retention (context noncurrentVersionDays)`,
      );
    }
    const accessLogDays = props.accessLogDays ?? 90;
    const objectLockDefaultRetention = props.objectLock && objectLockRetention(props.objectLock);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    let accessLogs: s3.Bucket | undefined;
    if (accessLogDays > 0) {
      accessLogs = new s3.Bucket(this, 'AccessLogs', {
        // S3's log delivery writes with S3-managed keys only.
        encryption: s3.BucketEncryption.S3_MANAGED,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(accessLogDays) }],
        removalPolicy,
      });
    }

    this.key =
      encryption === 'kms'
        ? new kms.Key(this, 'Key', {
            description: 'Dump Bag: encryption at rest of the dump bucket',
            enableKeyRotation: true,
            removalPolicy,
          })
        : undefined;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      encryption: this.key ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: this.key,
      bucketKeyEnabled: this.key ? true : undefined,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // Versions make a deleted dump recoverable for a while, even from a role that may delete.
      versioned: true,
      objectLockEnabled: objectLockDefaultRetention ? true : undefined,
      objectLockDefaultRetention,
      lifecycleRules: [
        {
          id: 'dump-bag',
          abortIncompleteMultipartUploadAfter: Duration.days(1),
          noncurrentVersionExpiration: Duration.days(noncurrentDays),
          expiredObjectDeleteMarker: true,
        },
      ],
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: accessLogs ? 'dump-bucket/' : undefined,
      removalPolicy,
    });
    if (!accessLogs) {
      NagSuppressions.addResourceSuppressions(this.bucket, [
        {
          id: 'AwsSolutions-S1',
          reason: 'Server access logs were turned off on purpose (accessLogDays: 0).',
        },
      ]);
    }
  }

  /** `arn:…:bucket/dumps/<suffix>`: S3 resource ARNs match `*` across `/`. */
  dumpsArn(suffix = '*'): string {
    return this.bucket.arnForObjects(`${DUMPS_PREFIX}${suffix}`);
  }

  /** `arn:…:bucket/globals/<suffix>`: the run's globals dumps (pg_dumpall) and their records. */
  globalsArn(suffix = '*'): string {
    return this.bucket.arnForObjects(`${GLOBALS_PREFIX}${suffix}`);
  }

  /** The `dumps/*` and `globals/*` wildcards are the point: every dump lives under one of those prefixes. */
  private explainWildcards(grantee: iam.IGrantable, what: string): void {
    const principal = grantee.grantPrincipal as unknown as IConstruct;
    if (!principal.node) return;
    NagSuppressions.addResourceSuppressions(
      principal,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `The role may ${what}: the wildcard is the dumps/ (or globals/) prefix of this one bucket, whose keys are dumps/<database>/<database>-<time>.pg.gpg, globals/globals-<time>.sql.gpg and their .json records; nothing else in the bucket is reachable.`,
          appliesTo: [{ regex: '/^Resource::<.+\\.Arn>\\/(dumps|globals)\\/\\*(\\.json)?$/g' }],
        },
      ],
      true,
    );
  }

  private grantList(grantee: iam.IGrantable, prefixes: readonly string[] = [DUMPS_PREFIX]): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [this.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
    });
  }

  /**
   * The dump function's rights: write dumps and the run's globals dump and abort their uploads,
   * list under dumps/ and read the JSON records (`dumps/*.json`). It cannot read a dump (no dump
   * key ends in `.json`) and cannot delete one: retention is the prune role's (grantPrune).
   */
  grantDumpWrite(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
      resourceArns: [this.dumpsArn(), this.globalsArn()],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject'],
      resourceArns: [this.dumpsArn('*.json')],
    });
    this.grantList(grantee);
    this.explainWildcards(
      grantee,
      "write dumps and globals dumps, abort their uploads, and read the dumps' records under dumps/",
    );
    // Multipart uploads with SSE-KMS need Decrypt as well as GenerateDataKey; still no GetObject on dumps.
    this.key?.grant(grantee, 'kms:GenerateDataKey', 'kms:Decrypt');
  }

  /**
   * The prune function's rights: list under dumps/ and globals/, read the records retention decides
   * by, and delete dumps, globals dumps and their records. It cannot read a dump or write anything.
   */
  grantPrune(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:DeleteObject'],
      resourceArns: [this.dumpsArn(), this.globalsArn()],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject'],
      resourceArns: [this.dumpsArn('*.json'), this.globalsArn('*.json')],
    });
    this.grantList(grantee, [DUMPS_PREFIX, GLOBALS_PREFIX]);
    this.explainWildcards(
      grantee,
      'read the records and delete expired dumps with their records, under dumps/ and globals/',
    );
    this.key?.grantDecrypt(grantee);
  }

  /** The API's rights: read and list under dumps/ and globals/ (GET /globals); never write or delete. */
  grantDumpRead(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject'],
      resourceArns: [this.dumpsArn(), this.globalsArn()],
    });
    this.grantList(grantee, [DUMPS_PREFIX, GLOBALS_PREFIX]);
    this.explainWildcards(
      grantee,
      'read any dump under dumps/ and globals/ (the API lists and presigns them)',
    );
    this.key?.grantDecrypt(grantee);
  }
}
