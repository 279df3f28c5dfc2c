/**
 * Invalid stack props and cdk.json context: each rule of the constructs' validation throws naming
 * the prop (or context key) and the fix, checked by building the real DumpBagStack with bundling
 * skipped; and settingsFromContext reads cdk.json as `npx cdk synth` does. Over 300 lines: one table
 * of rules, a short case each, grouped by the prop they check; splitting it would scatter the list
 * of rules a reviewer holds against the constructs.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ContextKey, settingsFromContext, unknownContextKeys } from '../../infra/context';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import { tempDir } from '../support/temp';
import { baseProps, buildStack, cdkJsonContext, keyFolder, type TestKey } from './support';

let keys: TestKey;
beforeAll(async () => {
  keys = await keyFolder();
});

const build = (overrides: Partial<DumpBagStackProps>) => () => buildStack(baseProps(keys, overrides));
const vpcAttributes = {
  vpcId: 'vpc-0a1b2c3d4e5f60718',
  availabilityZones: ['eu-west-1a'],
  privateSubnetIds: ['subnet-0a1b2c3d4e5f6071a'],
  privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f6071a'],
};

describe('each invalid combination throws, naming the prop and the fix', () => {
  it('the default stack builds', () => {
    expect(build({})).not.toThrow();
  });

  describe('bucket', () => {
    it('encryption is s3 or kms', () => {
      expect(build({ bucket: { encryption: 'aes' as 's3' } })).toThrow(/`encryption` must be 's3' or 'kms'/);
    });
    it('noncurrent versions expire', () => {
      expect(build({ bucket: { noncurrentVersionExpirationDays: 0 } })).toThrow(
        /`noncurrentVersionExpirationDays` must be a whole number of at least 1.*forever/,
      );
    });
    it('access log days are not negative', () => {
      expect(build({ bucket: { accessLogDays: -1 } })).toThrow(/`accessLogDays`.*use 0 for no access logs/);
    });
    it('Object Lock needs days', () => {
      expect(build({ bucket: { objectLock: { days: 0 } } })).toThrow(
        /`objectLock.days`.*leave objectLock out/,
      );
    });
    it('Object Lock mode is GOVERNANCE or COMPLIANCE', () => {
      expect(build({ bucket: { objectLock: { days: 3, mode: 'STRICT' as 'GOVERNANCE' } } })).toThrow(
        /`objectLock.mode` must be 'GOVERNANCE' or 'COMPLIANCE'/,
      );
    });
  });

  describe('connection', () => {
    it('a secret by ARN or by name, not both', () => {
      expect(
        build({
          connection: {
            secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf',
            secretName: 'db',
          },
        }),
      ).toThrow(/`secretArn` or `secretName`, not both/);
    });
    it('username only for a created secret', () => {
      expect(build({ connection: { secretName: 'db', username: 'someone' } })).toThrow(
        /`username` only applies to a secret this stack creates/,
      );
    });
    it('port is a TCP port', () => {
      expect(build({ connection: { port: 70000 } })).toThrow(/`port` must be a TCP port/);
    });
    it('sslMode is one of libpq', () => {
      expect(build({ connection: { sslMode: 'on' } })).toThrow(/`sslMode` must be one of disable, allow/);
    });
    it('vpc or vpcAttributes, not both', () => {
      expect(() => {
        const stack = new Stack();
        const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', vpcAttributes);
        buildStack(baseProps(keys, { connection: { vpc, vpcAttributes } }));
      }).toThrow(/`vpc` or `vpcAttributes`, not both/);
    });
    it('security groups as objects or ids, not both', () => {
      expect(() => {
        const stack = new Stack();
        const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', vpcAttributes);
        const group = ec2.SecurityGroup.fromSecurityGroupId(stack, 'Group', 'sg-0a1b2c3d4e5f60711');
        buildStack(
          baseProps(keys, {
            connection: { vpc, securityGroups: [group], securityGroupIds: ['sg-0a1b2c3d4e5f60712'] },
          }),
        );
      }).toThrow(/`securityGroups` or `securityGroupIds`, not both/);
    });
    it('subnets and security groups need a VPC', () => {
      expect(build({ connection: { securityGroupIds: ['sg-0a1b2c3d4e5f60711'] } })).toThrow(
        /DumpBagTest\/Database: `securityGroupIds` needs `vpc`, got \["sg-0a1b2c3d4e5f60711"\]; give the VPC too/,
      );
    });
    it('endpoints need a VPC', () => {
      expect(build({ connection: { s3GatewayEndpoint: true } })).toThrow(
        /`s3GatewayEndpoint` needs `vpc`.*got true; give the VPC or leave it out/,
      );
    });
    it('the S3 gateway endpoint, asked for, needs the route tables', () => {
      const { privateSubnetRouteTableIds: _, ...withoutRoutes } = vpcAttributes;
      expect(build({ connection: { vpcAttributes: withoutRoutes, s3GatewayEndpoint: true } })).toThrow(
        /`s3GatewayEndpoint` needs the route tables.*routeTableIds.*s3GatewayEndpoint: false/,
      );
      expect(build({ connection: { vpcAttributes: withoutRoutes, s3GatewayEndpoint: false } })).not.toThrow();
    });
    it('by default, without the route tables there is no S3 gateway endpoint and a warning naming routeTableIds', () => {
      const { privateSubnetRouteTableIds: _, ...withoutRoutes } = vpcAttributes;
      const stack = buildStack(baseProps(keys, { connection: { vpcAttributes: withoutRoutes } }));
      Template.fromStack(stack).resourcePropertiesCountIs(
        'AWS::EC2::VPCEndpoint',
        { VpcEndpointType: 'Gateway' },
        0,
      );
      const warnings = Annotations.fromStack(stack).findWarning(
        '*',
        Match.stringLikeRegexp('No S3 gateway endpoint'),
      );
      expect(warnings.map((w) => String(w.entry.data))).toEqual([
        expect.stringMatching(/subnet-0a1b2c3d4e5f6071a .*NAT gateway.*Give routeTableIds/),
      ]);
      const withRoutes = buildStack(baseProps(keys, { connection: { vpcAttributes } }));
      Template.fromStack(withRoutes).hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Gateway',
        RouteTableIds: ['rtb-0a1b2c3d4e5f6071a'],
      });
      expect(
        Annotations.fromStack(withRoutes).findWarning('*', Match.stringLikeRegexp('No S3 gateway endpoint')),
      ).toEqual([]);
    });
  });

  describe('keys', () => {
    it('a folder or a URL, not both', () => {
      expect(() =>
        buildStack({ keys: { folder: keys.folder, url: 'https://bag.example.com/keys' } }),
      ).toThrow(/give `folder`.*or `url`.*not both/);
    });
    it('a folder or a URL, not neither', () => {
      expect(() => buildStack({ keys: {} })).toThrow(/give `folder`.*or `url`/);
    });
    it('URLs are https', () => {
      expect(() => buildStack({ keys: { url: 'http://bag.example.com/keys' } })).toThrow(
        /`url` must be an https:\/\/ URL/,
      );
      expect(() =>
        buildStack({
          keys: { url: 'https://bag.example.com/keys', recipients: 'http://bag.example.com/recipients' },
        }),
      ).toThrow(/`recipients` must be an https:\/\/ URL/);
    });
    it('the folder exists', () => {
      expect(() => buildStack({ keys: { folder: join(tmpdir(), 'no-such-keys-folder') } })).toThrow(
        /`folder` must be an existing folder, got ".*no-such-keys-folder"; create it/,
      );
    });
    it('an empty folder builds, with a warning that backups will fail closed', () => {
      const empty = tempDir('dump-bag-empty-keys-');
      const stack = buildStack({ keys: { folder: empty } });
      const warnings = stack.node
        .findAll()
        .flatMap((c) => c.node.metadata)
        .filter((m) => m.type === 'aws:cdk:warning')
        .map((m) => String(m.data));
      expect(warnings.some((w) => w.includes('holds no .asc key'))).toBe(true);
    });
  });

  describe('backup', () => {
    it('schedules are schedule expressions', () => {
      expect(build({ backup: { schedules: ['0 3 * * *'] } })).toThrow(
        /`schedules\[0\]` must be a schedule expression, got "0 3 \* \* \*"; write cron\(/,
      );
    });
    it('a database is not both selected and excluded', () => {
      expect(build({ backup: { databases: ['a', 'b'], exclude: ['b'] } })).toThrow(
        /`exclude` must not name a database that `databases` selects, got \["b"\]; remove each of them/,
      );
    });
    it('database names are PostgreSQL names', () => {
      expect(build({ backup: { databases: ['x'.repeat(64)] } })).toThrow(
        /`databases\[0\]` must be a PostgreSQL database name.*give the database's name/,
      );
    });
    it('concurrency is 1 to 40', () => {
      expect(build({ backup: { concurrency: 0 } })).toThrow(
        /`concurrency` must be a whole number from 1 to 40/,
      );
      expect(build({ backup: { concurrency: 41 } })).toThrow(/`concurrency`/);
    });
    it('the dump timeout fits Lambda', () => {
      expect(build({ backup: { dumpTimeout: Duration.minutes(20) } })).toThrow(
        /`dumpTimeout` must be from 1 to 15 minutes/,
      );
      expect(build({ backup: { dumpTimeout: Duration.seconds(30) } })).toThrow(/`dumpTimeout`/);
    });
    it('the dump memory is 512 MB to 10 GB', () => {
      expect(build({ backup: { dumpMemorySize: 256 } })).toThrow(
        /`dumpMemorySize` must be from 512 to 10240/,
      );
    });
    it('retention values are whole and positive', () => {
      expect(build({ backup: { retention: { keepMin: 0 } } })).toThrow(
        /`retention.keepMin` must be a whole number/,
      );
    });
  });

  describe('api', () => {
    it('a JWT issuer is an https URL', () => {
      expect(build({ api: { authorization: { type: 'jwt', issuer: 'issuer', audience: ['a'] } } })).toThrow(
        /`authorization.issuer` must be the issuer's https:\/\/ URL/,
      );
    });
    it('JWT needs an audience', () => {
      expect(
        build({
          api: { authorization: { type: 'jwt', issuer: 'https://issuer.example.com', audience: [] } },
        }),
      ).toThrow(/`authorization.audience` must list at least one/);
    });
    it('presigned URLs live at most 12 hours', () => {
      expect(build({ api: { urlExpiry: Duration.hours(13) } })).toThrow(
        /`urlExpiry` must be from 1 second to 12 hours/,
      );
    });
    it('the rate limit is positive', () => {
      expect(build({ api: { rateLimit: 0 } })).toThrow(/`rateLimit` must be at least 1/);
    });
  });

  describe('alarms', () => {
    it('staleness is 1 to 168 hours', () => {
      expect(build({ alarms: { staleAfterHours: 200 } })).toThrow(
        /`staleAfterHours` must be a whole number from 1 to 168/,
      );
    });
    it('e-mail addresses look like e-mail addresses', () => {
      expect(build({ alarms: { emails: ['ops'] } })).toThrow(
        /`emails\[0\]` must be an e-mail address, got "ops"; give addresses like/,
      );
    });
  });

  describe('pg_dump layer', () => {
    it('majors are pinned ones (the layer construct names the fix)', () => {
      expect(build({ pgDump: { majors: [9] } })).toThrow(/`majors` includes 9/);
    });
  });
});

describe('cdk.json context', () => {
  const from = (context: Partial<Record<ContextKey, unknown>>) => () =>
    settingsFromContext((key) => context[key]);

  it('defaults to the keys folder, a created secret and arm64', () => {
    const { stackName, props } = settingsFromContext(() => undefined);
    expect(stackName).toBe('DumpBag');
    expect(props.keys).toEqual({ folder: 'keys', url: undefined, recipients: undefined });
    expect(props.architecture?.name).toBe('arm64');
    expect(props.env).toBeUndefined();
  });

  it('reads lists from JSON or from -c comma lists, and numbers from strings', () => {
    const { props } = settingsFromContext(
      (key) =>
        ({
          databases: 'a, b',
          exclude: ['c,d'],
          concurrency: '4',
          dumpTimeoutMinutes: 10,
          keysUrl: 'https://bag.example.com/keys',
          region: 'eu-west-1',
        })[key as string],
    );
    expect(props.backup?.databases).toEqual(['a', 'b']);
    expect(props.backup?.exclude).toEqual(['c,d']);
    expect(props.backup?.concurrency).toBe(4);
    expect(props.backup?.dumpTimeout?.toMinutes()).toBe(10);
    expect(props.keys).toEqual({
      folder: undefined,
      url: 'https://bag.example.com/keys',
      recipients: undefined,
    });
    expect(props.env).toEqual({ account: undefined, region: 'eu-west-1' });
  });

  // Rules about values and combinations belong to the constructs; the context only hands them on.
  const stackFrom = (context: Partial<Record<ContextKey, unknown>>) => () =>
    buildStack({ ...settingsFromContext((key) => context[key]).props, keys: { folder: keys.folder } });
  it('vpcId needs subnetIds', () => {
    expect(from({ vpcId: 'vpc-0a1b2c3d4e5f60718' })).not.toThrow();
    expect(stackFrom({ vpcId: 'vpc-0a1b2c3d4e5f60718' })).toThrow(
      /`vpcAttributes.privateSubnetIds` must list the private subnets.*context subnetIds/,
    );
  });
  it('availabilityZones match the subnets', () => {
    expect(
      stackFrom({ vpcId: 'vpc-0a1b2c3d4e5f60718', subnetIds: ['s-1', 's-2'], availabilityZones: ['a'] }),
    ).toThrow(/`vpcAttributes.availabilityZones` must list one zone per entry.*context availabilityZones/);
  });
  it('routeTableIds match the subnets', () => {
    expect(
      stackFrom({
        vpcId: 'vpc-0a1b2c3d4e5f60718',
        subnetIds: ['s-1'],
        availabilityZones: ['a'],
        routeTableIds: ['r-1', 'r-2'],
      }),
    ).toThrow(
      /`vpcAttributes.privateSubnetRouteTableIds` must list one route table per entry.*context routeTableIds/,
    );
  });
  it('s3GatewayEndpoint true needs routeTableIds', () => {
    expect(
      stackFrom({ vpcId: 'vpc-0a1b2c3d4e5f60718', subnetIds: ['s-1', 's-2'], s3GatewayEndpoint: 'true' }),
    ).toThrow(/`s3GatewayEndpoint` needs the route tables.*got \["s-1","s-2"\].*context routeTableIds/);
    expect(
      stackFrom({
        vpcId: 'vpc-0a1b2c3d4e5f60718',
        subnetIds: ['s-1', 's-2'],
        routeTableIds: ['r-1', 'r-2'],
        s3GatewayEndpoint: 'true',
      }),
    ).not.toThrow();
  });
  it('subnets need vpcId', () => {
    expect(stackFrom({ subnetIds: ['s-1'] })).toThrow(
      /`vpcAttributes.vpcId` must name the VPC.*context vpcId/,
    );
    expect(stackFrom({ securityGroupIds: ['sg-1'] })).toThrow(
      /`securityGroupIds` needs `vpc`.*context vpcId/,
    );
  });
  it('JWT settings need authorization jwt', () => {
    expect(stackFrom({ jwtIssuer: 'https://issuer.example.com' })).toThrow(
      /`authorization.issuer` applies only with type 'jwt'.*set authorization to jwt/,
    );
    expect(stackFrom({ jwtAudience: ['a'] })).toThrow(
      /`authorization.audience` applies only.*jwtAudience out/,
    );
  });
  it('objectLockMode needs objectLockDays', () => {
    expect(stackFrom({ objectLockMode: 'COMPLIANCE' })).toThrow(
      /`objectLock.days` must be a whole number of at least 1, got nothing;.*context objectLockDays/,
    );
  });
  it('enumerations are checked by the construct that owns them, naming the context key', () => {
    expect(stackFrom({ bucketEncryption: 'aes' })).toThrow(
      /`encryption` must be 's3' or 'kms'.*context bucketEncryption/,
    );
    expect(stackFrom({ authorization: 'oauth' })).toThrow(
      /`authorization.type` must be 'iam' or 'jwt'.*context authorization/,
    );
  });
  it('a setting with a typo is named, while CDK keys and feature flags pass', () => {
    expect(
      unknownContextKeys({
        dbhost: 'x',
        dbHost: 'y',
        '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
        'aws:cdk:enable-path-metadata': true,
        'availability-zones:account=1:region=eu-west-1': [],
      }),
    ).toEqual(['dbhost']);
  });
  it('cdk.json holds only known settings', () => {
    expect(unknownContextKeys(cdkJsonContext())).toEqual([]);
  });
  it('values have the right type', () => {
    expect(from({ concurrency: 'many' })).toThrow(/context concurrency must be a number/);
    expect(from({ architecture: 'mips' })).toThrow(/context architecture must be one of arm64, x86_64/);
    expect(from({ s3GatewayEndpoint: 'yes' })).toThrow(/context s3GatewayEndpoint must be true or false/);
    expect(from({ databases: [1, 2] })).toThrow(/context databases must be a list of strings/);
  });
});
