import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { DUMPS_PREFIX, type DumpBucket } from './dump-bucket';
import type { SigningKey } from './signing-key';

/** Where rekey keeps its intents (the old head of a dump being re-keyed); mirrors functions/core/rekey.ts. */
export const REKEY_PREFIX = 'rekey/';
/** Prefixes of what rekey reads and rewrites: dumps, globals dumps, its own intents. */
const PREFIXES = [DUMPS_PREFIX, 'globals/', REKEY_PREFIX];

export interface RekeyPolicyProps {
  /** The dump bucket whose dumps `dump-bag rekey` rewrites. */
  readonly bucket: DumpBucket;
  /** The bag's record signing key: rekey signs the new records with it. */
  readonly signingKey: SigningKey;
}

/**
 * The rights `dump-bag rekey` needs, as a managed policy for the people who run it; no function
 * role is given it. Reading a dump whole, overwriting it and deleting its old versions is more than
 * any function may do (the dump role cannot read dumps, the API role cannot write them).
 */
export class RekeyPolicy extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: RekeyPolicyProps) {
    super(scope, id);
    const { bucket, key } = props.bucket;
    const objects = PREFIXES.map((prefix) => bucket.arnForObjects(`${prefix}*`));
    const statements = [
      new iam.PolicyStatement({
        sid: 'ListDumpsAndVersions',
        actions: ['s3:ListBucket', 's3:ListBucketVersions'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': PREFIXES.map((prefix) => `${prefix}*`) } },
      }),
      new iam.PolicyStatement({
        sid: 'VersioningAndLock',
        actions: ['s3:GetBucketVersioning', 's3:GetBucketObjectLockConfiguration'],
        resources: [bucket.bucketArn],
      }),
      new iam.PolicyStatement({
        sid: 'RewriteDumps',
        actions: [
          's3:GetObject',
          's3:GetObjectVersion',
          's3:PutObject',
          's3:AbortMultipartUpload',
          's3:DeleteObject',
          's3:DeleteObjectVersion',
          's3:GetObjectRetention',
          's3:GetObjectLegalHold',
        ],
        resources: objects,
      }),
    ];
    statements.push(
      new iam.PolicyStatement({
        sid: 'SignRecords',
        actions: ['kms:Sign'],
        resources: [props.signingKey.key.keyArn],
      }),
    );
    if (key) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'BucketKey',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [key.keyArn],
        }),
      );
    }
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description: 'Dump Bag: run dump-bag rekey (re-encrypt stored dumps for today’s recipients)',
      statements,
    });
    NagSuppressions.addResourceSuppressions(this.policy, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'rekey rewrites every dump: the wildcards are the dumps/, globals/ and rekey/ prefixes of this one bucket, nothing else in it.',
        appliesTo: [{ regex: '/^Resource::<.+\\.Arn>\\/(dumps|globals|rekey)\\/\\*$/g' }],
      },
    ]);
  }
}
