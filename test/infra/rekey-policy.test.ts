import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { baseProps, keyFolder, permissionsOf, templateOf } from './support';

let template: Template;

beforeAll(async () => {
  template = templateOf(baseProps(await keyFolder(), { bucket: { encryption: 'kms' } }));
});

describe('RekeyPolicyArn', () => {
  it('is an output: a managed policy with exactly what rekey does, attached to nobody', () => {
    template.hasOutput('RekeyPolicyArn', { Value: { Ref: Match.stringLikeRegexp('^Rekey') } });
    const policies = Object.values(template.findResources('AWS::IAM::ManagedPolicy')) as {
      Properties: { PolicyDocument: { Statement: { Sid: string; Action: string[] }[] }; Roles?: unknown };
    }[];
    expect(policies).toHaveLength(1);
    const [policy] = policies;
    expect(policy?.Properties.Roles).toBeUndefined();
    const bySid = Object.fromEntries(
      (policy?.Properties.PolicyDocument.Statement ?? []).map((s) => [s.Sid, [s.Action].flat().sort()]),
    );
    expect(bySid).toEqual({
      ListDumpsAndVersions: ['s3:ListBucket', 's3:ListBucketVersions'],
      VersioningAndLock: ['s3:GetBucketObjectLockConfiguration', 's3:GetBucketVersioning'],
      RewriteDumps: [
        's3:AbortMultipartUpload',
        's3:DeleteObject',
        's3:DeleteObjectVersion',
        's3:GetObject',
        's3:GetObjectLegalHold',
        's3:GetObjectRetention',
        's3:GetObjectVersion',
        's3:PutObject',
      ],
      SignRecords: ['kms:Sign'],
      BucketKey: ['kms:Decrypt', 'kms:GenerateDataKey'],
    });
    template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'RewriteDumps',
            Resource: [
              { 'Fn::Join': ['', [Match.anyValue(), '/dumps/*']] },
              { 'Fn::Join': ['', [Match.anyValue(), '/globals/*']] },
              { 'Fn::Join': ['', [Match.anyValue(), '/rekey/*']] },
            ],
          }),
        ]),
      },
    });
  });

  it('no function role may delete old versions or list them', () => {
    const roles = Object.keys(template.findResources('AWS::IAM::Role'));
    expect(roles.length).toBeGreaterThan(0);
    for (const role of roles) {
      const actions = permissionsOf(template, role).map((p) => p.action);
      expect(actions).not.toContain('s3:DeleteObjectVersion');
      expect(actions).not.toContain('s3:ListBucketVersions');
    }
  });
});
