/**
 * The synthesized DumpBagStack template (bundling skipped), part by part: the dump bucket, each
 * function's role, settings and layers, the backup state machine, schedules, the HTTP API and the
 * alarms. Most cases read one default template synthesized in beforeAll; the others build a stack
 * with the props they need. Invalid props: validation.test.ts. Over 300 lines: one section per part
 * of the stack, all reading that one template, which each file of a split would synthesize again.
 */
import { Duration } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  baseProps,
  keyFolder,
  type Permission,
  permissionsOf,
  roleOfFunction,
  stateMachineDefinition,
  type TestKey,
  templateOf,
} from './support';

let keys: TestKey;
let template: Template;

beforeAll(async () => {
  keys = await keyFolder();
  template = templateOf(baseProps(keys, { backup: { databases: ['app', 'odd, "name"'] } }));
});

const actions = (perms: Permission[]) => [...new Set(perms.map((p) => p.action))].sort();
const on = (perms: Permission[], action: string) =>
  perms.filter((p) => p.action === action).map((p) => p.resource);

describe('dump bucket', () => {
  it('blocks public access, is encrypted and versioned, and cleans up after itself', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LoggingConfiguration: { LogFilePrefix: 'dump-bucket/' },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            Status: 'Enabled',
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            // As long as the retention (30 days by default): a deleted dump stays recoverable that long.
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
            ExpiredObjectDeleteMarker: true,
          }),
        ],
      },
    });
  });

  it('has no lifecycle rule that expires current dumps: retention is per database and keeps keep-min', () => {
    const buckets = template.findResources('AWS::S3::Bucket', {
      Properties: { VersioningConfiguration: { Status: 'Enabled' } },
    });
    const rules = Object.values(buckets).flatMap(
      (b) =>
        (b as { Properties: { LifecycleConfiguration: { Rules: object[] } } }).Properties
          .LifecycleConfiguration.Rules,
    );
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule).not.toHaveProperty('ExpirationInDays');
      expect(rule).not.toHaveProperty('ExpirationDate');
    }
  });

  it('refuses plain HTTP and TLS older than 1.2', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^DumpsBucket') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
          }),
        ]),
      },
    });
  });

  it('takes a KMS key with rotation and Object Lock as options', () => {
    const t = templateOf(
      baseProps(keys, {
        bucket: {
          encryption: 'kms',
          objectLock: { mode: 'COMPLIANCE', days: 10 },
          noncurrentVersionExpirationDays: 30,
        },
      }),
    );
    t.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: Match.anyValue() },
          },
        ],
      },
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 10 } },
      },
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 } })],
      },
    });
    // The dump role may encrypt (and decrypt, which multipart uploads need), the API role only decrypt;
    // besides, the dump role signs records and the API reads the signing key's public half.
    const dump = permissionsOf(t, roleOfFunction(t, 'BackupDump'));
    const api = permissionsOf(t, roleOfFunction(t, 'ApiHandler'));
    expect(actions(dump.filter((p) => p.action.startsWith('kms:')))).toEqual([
      'kms:Decrypt',
      'kms:GenerateDataKey',
      'kms:Sign',
    ]);
    expect(actions(api.filter((p) => p.action.startsWith('kms:')))).toEqual([
      'kms:Decrypt',
      'kms:GetPublicKey',
    ]);
  });

  it('has no Object Lock unless asked for', () => {
    expect(
      Object.keys(template.findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: true } })),
    ).toEqual([]);
  });
});

describe('roles', () => {
  it('the dump role writes and aborts under dumps/ (and globals/), reads only the .json records, and can neither read nor delete a dump', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'BackupDump'));
    const s3 = perms.filter((p) => p.action.startsWith('s3:'));
    expect(actions(s3)).toEqual(['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
    expect(on(s3, 's3:PutObject')).toEqual([
      '<DumpsBucketA92B12EA.Arn>/dumps/*',
      '<DumpsBucketA92B12EA.Arn>/globals/*',
    ]);
    expect(on(s3, 's3:AbortMultipartUpload')).toEqual([
      '<DumpsBucketA92B12EA.Arn>/dumps/*',
      '<DumpsBucketA92B12EA.Arn>/globals/*',
    ]);
    expect(on(s3, 's3:DeleteObject')).toEqual([]);
    expect(on(s3, 's3:GetObject')).toEqual(['<DumpsBucketA92B12EA.Arn>/dumps/*.json']);
    const list = s3.filter((p) => p.action === 's3:ListBucket');
    expect(list).toEqual([
      {
        action: 's3:ListBucket',
        resource: '<DumpsBucketA92B12EA.Arn>',
        effect: 'Allow',
        condition: { StringLike: { 's3:prefix': ['dumps/*'] } },
      },
    ]);
    expect(perms.every((p) => p.effect === 'Allow')).toBe(true);
    // Nothing else: signing records, its log group and the database secret.
    expect(actions(perms.filter((p) => !p.action.startsWith('s3:')))).toEqual([
      'kms:Sign',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
    ]);
  });

  it('the API role reads and lists dumps and starts backups, and never writes or deletes', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'ApiHandler'));
    expect(actions(perms)).toEqual([
      'kms:GetPublicKey',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      's3:GetObject',
      's3:ListBucket',
      'states:ListExecutions',
      'states:StartExecution',
    ]);
    expect(on(perms, 's3:GetObject')).toEqual([
      '<DumpsBucketA92B12EA.Arn>/dumps/*',
      '<DumpsBucketA92B12EA.Arn>/globals/*',
    ]);
    expect(on(perms, 'states:StartExecution')).toEqual(['<BackupStateMachine79E7534B>']);
    // To refuse a second on-demand dump of a database (409): list this state machine's executions, no more.
    expect(on(perms, 'states:ListExecutions')).toEqual(['<BackupStateMachine79E7534B>']);
  });

  it('the plan role reads the secret and nothing in S3', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'BackupPlan'));
    expect(actions(perms)).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
    ]);
  });

  it('only the plan and dump roles may read the database secret', () => {
    const secret = Object.keys(template.findResources('AWS::SecretsManager::Secret'))[0];
    const roles = Object.keys(template.findResources('AWS::IAM::Role'));
    const readers = roles.filter((role) =>
      permissionsOf(template, role).some(
        (p) => p.action === 'secretsmanager:GetSecretValue' && p.resource === `<${secret}>`,
      ),
    );
    expect(readers.sort()).toEqual(
      [roleOfFunction(template, 'BackupDump'), roleOfFunction(template, 'BackupPlan')].sort(),
    );
  });

  it('gives every function a log group with retention and no managed policy', () => {
    for (const prefix of ['BackupPlan', 'BackupDump', 'BackupPrune', 'ApiHandler']) {
      const role = template.toJSON().Resources[roleOfFunction(template, prefix)];
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
    template.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 30 }, 6);
  });
});

describe('functions', () => {
  it('run Node.js 22 on arm64 with source maps and the Powertools service name', () => {
    template.resourcePropertiesCountIs(
      'AWS::Lambda::Function',
      {
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        LoggingConfig: { LogGroup: Match.anyValue() },
        Environment: {
          Variables: Match.objectLike({
            NODE_OPTIONS: '--enable-source-maps',
            POWERTOOLS_SERVICE_NAME: 'dump-bag',
          }),
        },
      },
      4,
    );
  });

  it('the dump function has the pg_dump and keys layers, its timeout, memory and settings', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('pg_dump of one database'),
      MemorySize: 1769,
      Timeout: 900,
      Layers: [
        { Ref: Match.stringLikeRegexp('^PgDumpLayer') },
        { Ref: Match.stringLikeRegexp('^KeysLayer') },
      ],
      Environment: {
        Variables: Match.objectLike({
          DUMP_BAG_BUCKET: { Ref: 'DumpsBucketA92B12EA' },
          DUMP_BAG_DB_SECRET_ARN: { Ref: Match.stringLikeRegexp('^DatabaseSecret') },
          DUMP_BAG_PUBLIC_KEYS: '/opt/dump-bag-keys',
          DUMP_BAG_DATABASES: 'app,odd\\, "name"',
          PGSSLMODE: 'verify-full',
        }),
      },
    });
  });

  it('the API function gets the agreed environment', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Dump Bag API'),
      Timeout: 29,
      Layers: [{ Ref: Match.stringLikeRegexp('^KeysLayer') }],
      Environment: {
        Variables: {
          DUMP_BAG_BUCKET: { Ref: 'DumpsBucketA92B12EA' },
          DUMP_BAG_STATE_MACHINE_ARN: { Ref: 'BackupStateMachine79E7534B' },
          DUMP_BAG_PUBLIC_KEYS: '/opt/dump-bag-keys',
          DUMP_BAG_RETENTION_DAYS: '30',
          DUMP_BAG_MANUAL_RETENTION_DAYS: '7',
          DUMP_BAG_KEEP_MIN: '3',
          DUMP_BAG_URL_EXPIRY_SECONDS: '900',
          // The status page's banner: the same days as the plan step and the alarm.
          DUMP_BAG_KEY_EXPIRY_WARNING_DAYS: '30',
          POWERTOOLS_SERVICE_NAME: 'dump-bag',
          POWERTOOLS_LOG_LEVEL: 'INFO',
          NODE_OPTIONS: '--enable-source-maps',
        },
      },
    });
  });

  it('take keys from a central bag instead of a folder: no keys layer, the URLs in the environment', () => {
    const t = templateOf({
      keys: { url: 'https://bag.example.com/keys', recipients: 'https://bag.example.com/recipients' },
    });
    t.resourceCountIs('AWS::Lambda::LayerVersion', 1);
    t.resourcePropertiesCountIs(
      'AWS::Lambda::Function',
      {
        Environment: {
          Variables: Match.objectLike({
            DUMP_BAG_PUBLIC_KEYS: 'https://bag.example.com/keys',
            DUMP_BAG_RECIPIENTS: 'https://bag.example.com/recipients',
          }),
        },
      },
      // The plan checks the keys, the dump encrypts to them, the API serves them; prune never reads them.
      3,
    );
  });

  it('run in the VPC of a private database, with S3 and Secrets Manager endpoints', () => {
    const t = templateOf(
      baseProps(keys, {
        connection: {
          host: 'db.internal',
          port: 5433,
          secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf',
          vpcAttributes: {
            vpcId: 'vpc-0a1b2c3d4e5f60718',
            availabilityZones: ['eu-west-1a', 'eu-west-1b'],
            privateSubnetIds: ['subnet-0a1b2c3d4e5f6071a', 'subnet-0a1b2c3d4e5f6071b'],
            privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f6071a', 'rtb-0a1b2c3d4e5f6071b'],
          },
        },
      }),
    );
    t.resourcePropertiesCountIs(
      'AWS::Lambda::Function',
      {
        VpcConfig: {
          SubnetIds: ['subnet-0a1b2c3d4e5f6071a', 'subnet-0a1b2c3d4e5f6071b'],
          SecurityGroupIds: [Match.anyValue()],
        },
        Environment: { Variables: Match.objectLike({ PGHOST: 'db.internal', PGPORT: '5433' }) },
      },
      2,
    );
    t.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      RouteTableIds: ['rtb-0a1b2c3d4e5f6071a', 'rtb-0a1b2c3d4e5f6071b'],
      ServiceName: Match.objectLike({}),
    });
    t.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      PrivateDnsEnabled: true,
      SubnetIds: ['subnet-0a1b2c3d4e5f6071a', 'subnet-0a1b2c3d4e5f6071b'],
    });
    // The functions' group may reach the endpoint on 443.
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 443,
      ToPort: 443,
      IpProtocol: 'tcp',
    });
    t.resourceCountIs('AWS::SecretsManager::Secret', 0);
    const dump = permissionsOf(t, roleOfFunction(t, 'BackupDump'));
    expect(on(dump, 'secretsmanager:GetSecretValue')).toEqual([
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf',
    ]);
  });
});

describe('backup state machine', () => {
  it('plans, dumps each database with bounded concurrency, announces each dump, and reports', () => {
    const t = templateOf(baseProps(keys, { backup: { concurrency: 3 } }));
    const definition = stateMachineDefinition(t) as {
      QueryLanguage: string;
      StartAt: string;
      States: Record<string, Record<string, unknown>>;
    };
    expect(definition.QueryLanguage).toBe('JSONata');
    expect(definition.StartAt).toBe('Plan databases');
    const { States: states } = definition;
    expect(states['Plan databases']).toMatchObject({
      Type: 'Task',
      Resource: 'arn:<AWS::Partition>:states:::lambda:invoke',
      Arguments: { FunctionName: '<BackupPlan14914BEB.Arn>', Payload: '{% $states.input %}' },
      Next: 'Dump each database',
    });
    const map = states['Dump each database'] as {
      Type: string;
      MaxConcurrency: number;
      Items: string;
      ItemSelector: string;
      ItemProcessor: { StartAt: string; States: Record<string, Record<string, unknown>> };
      Next: string;
    };
    expect(map).toMatchObject({
      Type: 'Map',
      MaxConcurrency: 3,
      Items: '{% $states.input.databases %}',
      // The run's globals dump comes after every database (test/infra/globals.test.ts), then the report.
      Next: 'Dump globals',
    });
    expect(map.ItemSelector).toContain('$states.context.Map.Item.Value.name');
    expect(map.ItemProcessor.StartAt).toBe('Dump database');
    const inner = map.ItemProcessor.States;
    expect(inner['Dump database']).toMatchObject({
      Arguments: { FunctionName: '<BackupDump98B8A5F1.Arn>' },
      Next: 'Dump ok?',
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Dump crashed' }],
    });
    // Retention of a database runs right after its own good dump, and never after a failed one.
    expect(inner['Dump ok?']).toMatchObject({
      Type: 'Choice',
      Choices: [{ Condition: '{% $states.input.status = "ok" %}', Next: 'Prune database' }],
      Default: 'Announce dump',
    });
    expect(inner['Prune database']).toMatchObject({
      Arguments: { FunctionName: expect.stringMatching(/^<BackupPrune[0-9A-F]{8}\.Arn>$/) },
      Next: 'Announce dump',
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Prune crashed' }],
    });
    expect(inner['Prune crashed']).toMatchObject({ Type: 'Pass', Next: 'Announce dump' });
    expect(inner['Dump crashed']).toMatchObject({ Type: 'Pass', Next: 'Announce dump' });
    expect(inner['Announce dump']).toMatchObject({
      Resource: 'arn:<AWS::Partition>:states:::events:putEvents',
      Arguments: { Entries: [{ Source: 'dump-bag', DetailType: 'Dump Finished' }] },
      Output: '{% $states.input %}',
      End: true,
    });
    const announce = inner['Announce dump'] as { Arguments: { Entries: { Detail: string }[] } };
    const detail = announce.Arguments.Entries[0]?.Detail;
    for (const field of ['database', 'status', 'key', 'bytes'])
      expect(detail).toContain(`"${field}": $states.input.${field}`);
    expect(states.Report).toMatchObject({
      Type: 'Choice',
      Choices: [
        {
          Condition:
            '{% $count($states.input.results[status != "ok"]) > 0 or $states.input.globals.status != "ok" %}',
          Next: 'Some dumps failed',
        },
      ],
      Default: 'All dumped',
    });
    expect(states['Some dumps failed']).toMatchObject({ Type: 'Fail', Error: 'DumpsFailed' });
    expect(states['Some dumps failed']?.Cause).toContain('results[status != "ok"].(database');
  });

  it('logs every execution and traces it', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('the state machine may invoke the three functions and put events, nothing more', () => {
    const machineRole = Object.keys(template.findResources('AWS::IAM::Role')).find((id) =>
      id.startsWith('BackupStateMachineRole'),
    ) as string;
    const perms = permissionsOf(template, machineRole);
    expect(
      on(perms, 'lambda:InvokeFunction')
        .map((r) => r.replace(/[0-9A-F]{8}\.Arn/, '.Arn'))
        .sort(),
    ).toEqual([
      '<BackupDump.Arn>',
      '<BackupDump.Arn>:*',
      '<BackupPlan.Arn>',
      '<BackupPlan.Arn>:*',
      '<BackupPrune.Arn>',
      '<BackupPrune.Arn>:*',
    ]);
    expect(on(perms, 'events:PutEvents')).toHaveLength(1);
    expect(actions(perms).filter((a) => a.startsWith('s3:') || a.startsWith('secretsmanager:'))).toEqual([]);
  });
});

describe('schedules', () => {
  it('start the state machine daily at 03:00 UTC by default, with trigger "schedule"', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 3 * * ? *)',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { Ref: 'BackupStateMachine79E7534B' },
        Input: '{"trigger":"schedule"}',
        RetryPolicy: { MaximumRetryAttempts: 2 },
      },
    });
  });

  it('can be several, or none for on-demand dumps only', () => {
    const two = templateOf(
      baseProps(keys, { backup: { schedules: ['cron(0 3 * * ? *)', 'rate(6 hours)'] } }),
    );
    two.resourceCountIs('AWS::Scheduler::Schedule', 2);
    two.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'rate(6 hours)' });
    templateOf(baseProps(keys, { backup: { schedules: [] } })).resourceCountIs('AWS::Scheduler::Schedule', 0);
  });
});

describe('API', () => {
  const routeKeys = [
    'GET /',
    'GET /dumps',
    'GET /dumps/{proxy+}',
    'POST /dumps/{proxy+}',
    'GET /keys',
    'GET /recipients',
    'GET /signing-key',
  ];

  it('puts every route behind IAM except GET /keys, GET /recipients and GET /signing-key', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Route', routeKeys.length);
    for (const routeKey of routeKeys) {
      const open = ['GET /keys', 'GET /recipients', 'GET /signing-key'].includes(routeKey);
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: routeKey,
        AuthorizationType: open ? 'NONE' : 'AWS_IAM',
      });
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
    });
  });

  it('logs access and throttles on its $default stage', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
    });
  });

  it('uses a JWT authorizer when asked, still leaving the key routes public', () => {
    const t = templateOf(
      baseProps(keys, {
        api: {
          authorization: { type: 'jwt', issuer: 'https://issuer.example.com', audience: ['dump-bag'] },
          urlExpiry: Duration.hours(1),
        },
      }),
    );
    t.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: 'https://issuer.example.com', Audience: ['dump-bag'] },
    });
    t.resourcePropertiesCountIs('AWS::ApiGatewayV2::Route', { AuthorizationType: 'JWT' }, 4);
    t.resourcePropertiesCountIs('AWS::ApiGatewayV2::Route', { AuthorizationType: 'NONE' }, 3);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ DUMP_BAG_URL_EXPIRY_SECONDS: '3600' }) },
    });
  });
});

describe('alarms', () => {
  it('send to a topic that takes TLS only and the given e-mail addresses', () => {
    const t = templateOf(baseProps(keys, { alarms: { emails: ['ops@example.com', 'dba@example.com'] } }));
    t.resourcePropertiesCountIs('AWS::SNS::Subscription', { Protocol: 'email' }, 2);
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
    t.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ],
      },
    });
  });

  it('fire on a failed or timed-out backup', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Threshold: 1,
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^AlarmsTopic') }],
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'FILL(failed, 0) + FILL(timedOut, 0)' }),
        Match.objectLike({
          Id: 'failed',
          MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'ExecutionsFailed' }) }),
        }),
        Match.objectLike({
          Id: 'timedOut',
          MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'ExecutionsTimedOut' }) }),
        }),
      ]),
    });
  });

  it('fire when no dump succeeded for 26 hours, for the service and for each listed database', () => {
    const stale = {
      Namespace: 'DumpBag',
      MetricName: 'DumpSucceeded',
      Statistic: 'Sum',
      Period: 3600,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 26,
      DatapointsToAlarm: 26,
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^AlarmsTopic') }],
      OKActions: [{ Ref: Match.stringLikeRegexp('^AlarmsTopic') }],
    };
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ...stale,
      Dimensions: [{ Name: 'Service', Value: 'dump-bag' }],
    });
    for (const database of ['app', 'odd, "name"']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        ...stale,
        Dimensions: [{ Name: 'Database', Value: database }],
      });
    }
    // A recipient's key close to expiry warns before backups start to fail closed.
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'DumpBag',
      MetricName: 'KeyExpiresInDays',
      Statistic: 'Minimum',
      Period: 86400,
      Threshold: 30,
      ComparisonOperator: 'LessThanThreshold',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^AlarmsTopic') }],
    });
    // Failed executions, the service's staleness, one per listed database, and the key expiry.
    template.resourceCountIs('AWS::CloudWatch::Alarm', 5);
  });
});
