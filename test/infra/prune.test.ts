/** Retention in a role of its own (issue 10 item 8): who may delete, and how long deleted dumps stay recoverable. */
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  baseProps,
  buildStack,
  keyFolder,
  type Permission,
  permissionsOf,
  roleOfFunction,
  type TestKey,
  templateOf,
} from './support';

let keys: TestKey;
let template: Template;

beforeAll(async () => {
  keys = await keyFolder();
  template = templateOf(baseProps(keys, { backup: { retention: { days: 45, manualDays: 5, keepMin: 4 } } }));
});

const actions = (perms: Permission[]) => [...new Set(perms.map((p) => p.action))].sort();
const on = (perms: Permission[], action: string) =>
  perms.filter((p) => p.action === action).map((p) => p.resource);

describe('the prune function', () => {
  it('exists with the retention settings, outside the VPC, without the database or keys', () => {
    const fns = template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('retention') },
    });
    expect(Object.keys(fns)).toHaveLength(1);
    const fn = Object.values(fns)[0] as { Properties: Record<string, unknown> };
    expect(fn.Properties.VpcConfig).toBeUndefined();
    expect(fn.Properties.Layers).toBeUndefined();
    const vars = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars).toMatchObject({
      DUMP_BAG_BUCKET: { Ref: 'DumpsBucketA92B12EA' },
      DUMP_BAG_RETENTION_DAYS: '45',
      DUMP_BAG_MANUAL_RETENTION_DAYS: '5',
      DUMP_BAG_KEEP_MIN: '4',
    });
    for (const name of Object.keys(vars))
      expect(name).not.toMatch(/^PG|SECRET|PUBLIC_KEYS|RECIPIENTS|SIGNING/);
  });

  it('its role lists, reads the records and deletes under dumps/ and globals/ only: no database secret, no signing, no writes', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'BackupPrune'));
    expect(perms.every((p) => p.effect === 'Allow')).toBe(true);
    expect(actions(perms)).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      's3:DeleteObject',
      's3:GetObject',
      's3:ListBucket',
    ]);
    expect(on(perms, 's3:DeleteObject')).toEqual([
      '<DumpsBucketA92B12EA.Arn>/dumps/*',
      '<DumpsBucketA92B12EA.Arn>/globals/*',
    ]);
    expect(on(perms, 's3:GetObject')).toEqual([
      '<DumpsBucketA92B12EA.Arn>/dumps/*.json',
      '<DumpsBucketA92B12EA.Arn>/globals/*.json',
    ]);
    expect(perms.filter((p) => p.action === 's3:ListBucket')).toEqual([
      {
        action: 's3:ListBucket',
        resource: '<DumpsBucketA92B12EA.Arn>',
        effect: 'Allow',
        condition: { StringLike: { 's3:prefix': ['dumps/*', 'globals/*'] } },
      },
    ]);
  });

  it('is the only function role that may delete anything in the bucket', () => {
    const roles = Object.keys(template.findResources('AWS::IAM::Role'));
    const deleters = roles.filter((role) =>
      permissionsOf(template, role).some((p) => /^s3:(DeleteObject|\*|Delete\*)/.test(p.action)),
    );
    expect(deleters).toEqual([roleOfFunction(template, 'BackupPrune')]);
  });

  it('with a KMS bucket, decrypts the records and nothing more', () => {
    const t = templateOf(baseProps(keys, { bucket: { encryption: 'kms' } }));
    const perms = permissionsOf(t, roleOfFunction(t, 'BackupPrune'));
    expect(actions(perms.filter((p) => p.action.startsWith('kms:')))).toEqual(['kms:Decrypt']);
  });
});

describe('noncurrent versions', () => {
  const noncurrentDays = (t: Template) => {
    const buckets = t.findResources('AWS::S3::Bucket', {
      Properties: { VersioningConfiguration: { Status: 'Enabled' } },
    });
    const [bucket] = Object.values(buckets) as {
      Properties: {
        LifecycleConfiguration: { Rules: { NoncurrentVersionExpiration?: { NoncurrentDays: number } }[] };
      };
    }[];
    return bucket?.Properties.LifecycleConfiguration.Rules[0]?.NoncurrentVersionExpiration?.NoncurrentDays;
  };

  it('are kept as long as the retention by default', () => {
    expect(noncurrentDays(template)).toBe(45);
    expect(noncurrentDays(templateOf(baseProps(keys)))).toBe(30);
  });

  it('may be kept longer without a word', () => {
    const stack = buildStack(baseProps(keys, { bucket: { noncurrentVersionExpirationDays: 90 } }));
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('noncurrent'))).toEqual([]);
  });

  it('set below the retention: synth warns, naming the prop and the fix', () => {
    const stack = buildStack(baseProps(keys, { bucket: { noncurrentVersionExpirationDays: 7 } }));
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('noncurrentVersionExpirationDays.*\\(7\\) is below the retention of 30 days'),
    );
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.entry.data)).toContain('leave it out');
  });
});

describe('the public key routes', () => {
  it('have their own, lower throttle than the API, and the stage comes after them', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
      RouteSettings: {
        'GET /keys': { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 },
        'GET /recipients': { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 },
      },
    });
    const stages = template.findResources('AWS::ApiGatewayV2::Stage');
    const [stage] = Object.values(stages) as {
      DependsOn?: string[];
      Properties: { RouteSettings: object };
    }[];
    const routes = template.findResources('AWS::ApiGatewayV2::Route', {
      Properties: { AuthorizationType: 'NONE' },
    });
    expect(Object.keys(routes)).toHaveLength(Object.keys(stage?.Properties.RouteSettings ?? {}).length);
    for (const id of Object.keys(routes)) expect(stage?.DependsOn).toContain(id);
  });

  it('publicRateLimit is a prop, at most rateLimit', () => {
    const t = templateOf(baseProps(keys, { api: { rateLimit: 50, publicRateLimit: 2 } }));
    t.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      RouteSettings: Match.objectLike({ 'GET /keys': { ThrottlingRateLimit: 2, ThrottlingBurstLimit: 4 } }),
    });
    expect(() => buildStack(baseProps(keys, { api: { rateLimit: 10, publicRateLimit: 11 } }))).toThrow(
      /`publicRateLimit` must be from 1 to `rateLimit`, got 11/,
    );
  });
});
