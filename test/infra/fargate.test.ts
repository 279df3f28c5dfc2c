import { readFileSync } from 'node:fs';
import { App, Aws, Duration } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FARGATE_ABOVE_GB } from '../../functions/core/runner';
import { type ContextKey, settingsFromContext } from '../../infra/context';
import { DumpBagStack, type DumpBagStackProps } from '../../infra/dump-bag-stack';
import {
  baseProps,
  buildStack,
  cdkJsonContext,
  keyFolder,
  permissionsOf,
  roleOfFunction,
  stateMachineDefinition,
  type TestKey,
} from './support';

let keys: TestKey;
const vpc = {
  vpcId: 'vpc-0a1b2c3d4e5f60718',
  availabilityZones: ['eu-west-1a', 'eu-west-1b'],
  privateSubnetIds: ['subnet-0a1b2c3d4e5f6071a', 'subnet-0a1b2c3d4e5f6071b'],
  privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f6071a', 'rtb-0a1b2c3d4e5f6071b'],
};
const withVpc = (backup: DumpBagStackProps['backup'] = {}): DumpBagStackProps =>
  baseProps(keys, { connection: { vpcAttributes: vpc, securityGroupIds: ['sg-0a1b2c3d4e5f60718'] }, backup });

beforeAll(async () => {
  keys = await keyFolder();
});

type Json = Record<string, unknown>;

describe('dumpRunner auto with a VPC', () => {
  let template: Template;
  let json: { Resources: Record<string, Json> };
  const ofType = (type: string) => Object.entries(json.Resources).filter(([, r]) => r.Type === type);

  beforeAll(() => {
    template = Template.fromStack(buildStack(withVpc()));
    json = template.toJSON() as typeof json;
  });

  it('has a cluster, and a Fargate task definition for arm64 with the default size and untouched ephemeral storage', () => {
    expect(ofType('AWS::ECS::Cluster')).toHaveLength(1);
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      NetworkMode: 'awsvpc',
      Cpu: '1024',
      Memory: '2048',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      EphemeralStorage: Match.absent(),
      ContainerDefinitions: [
        Match.objectLike({
          Image: 'public.ecr.aws/docker/library/node:22-bookworm-slim',
          Command: ['node', '-e', Match.stringLikeRegexp('GetLayerVersionByArn')],
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
        }),
      ],
    });
  });

  it('gives the task the dump function environment, plus the layers it unpacks, and no secret value', () => {
    const [, task] = ofType('AWS::ECS::TaskDefinition')[0] as [string, Json];
    const container = ((task.Properties as Json).ContainerDefinitions as Json[])[0] as Json;
    const env = Object.fromEntries(
      (container.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
    );
    const [, dump] = ofType('AWS::Lambda::Function').find(([id]) => id.startsWith('BackupDump')) as [
      string,
      Json,
    ];
    const dumpEnv = ((dump.Properties as Json).Environment as Json).Variables as Json;
    for (const [name, value] of Object.entries(dumpEnv)) expect(env[name], name).toEqual(value);
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining(['DUMP_BAG_LAYERS', 'DUMP_BAG_ENTRY', 'DUMP_BAG_PG_ROOT']),
    );
    expect(JSON.stringify(env)).not.toMatch(/password/i);
  });

  it('gives the task role the dump role policy itself (one policy, both roles), which cannot read dumps', () => {
    const [taskRole] = ofType('AWS::IAM::Role').find(([id]) => id.startsWith('BackupFargateTaskRole')) as [
      string,
      Json,
    ];
    const dumpRole = roleOfFunction(template, 'BackupDump');
    const shared = ofType('AWS::IAM::Policy').filter(([, p]) => {
      const roles = ((p.Properties as Json).Roles as { Ref: string }[]).map((r) => r.Ref);
      return roles.includes(taskRole) && roles.includes(dumpRole);
    });
    expect(shared).toHaveLength(1);
    const task = permissionsOf(template, taskRole);
    const s3 = task.filter((p) => p.action.startsWith('s3:'));
    expect(s3.filter((p) => p.action === 's3:GetObject').map((p) => p.resource)).toEqual([
      expect.stringMatching(/\/dumps\/\*\.json$/),
    ]);
    // Beyond the dump role's rights: its layers, and reporting to the state machine.
    const own = task.filter(
      (p) =>
        !permissionsOf(template, dumpRole).some((d) => d.action === p.action && d.resource === p.resource),
    );
    expect([...new Set(own.map((p) => p.action))].sort()).toEqual([
      'lambda:GetLayerVersion',
      'states:SendTaskFailure',
      'states:SendTaskHeartbeat',
      'states:SendTaskSuccess',
    ]);
  });

  it('gives the execution role only the task log group, which keeps logs a month', () => {
    const [execRole] = ofType('AWS::IAM::Role').find(([id]) =>
      id.startsWith('BackupFargateExecutionRole'),
    ) as [string, Json];
    const perms = permissionsOf(template, execRole);
    expect([...new Set(perms.map((p) => p.action))].sort()).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
    ]);
    expect(perms.every((p) => p.resource.startsWith('<BackupFargateLogs'))).toBe(true);
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('chooses the runner per item, retries a Lambda that ran out of time on Fargate, and waits for the task token', () => {
    const definition = stateMachineDefinition(template);
    const map = (definition.States as Json)['Dump each database'] as Json;
    const states = (map.ItemProcessor as Json).States as Record<string, Json>;
    expect((map.ItemProcessor as Json).StartAt).toBe('Keep the item');
    expect(states['Which runner']).toMatchObject({
      Type: 'Choice',
      Choices: [{ Condition: '{% $states.input.runner = "fargate" %}', Next: 'Dump on Fargate' }],
      Default: 'Dump database',
    });
    expect(states['Dump database']?.Next).toBe('Out of time on Lambda?');
    expect(states['Dump crashed']?.Next).toBe('Out of time on Lambda?');
    expect(states['Out of time on Lambda?']).toMatchObject({
      Choices: [{ Next: 'Dump on Fargate' }],
      Default: 'Dump ok?',
    });
    const fargate = states['Dump on Fargate'] as Json;
    expect(fargate).toMatchObject({
      Resource: expect.stringMatching(/:states:::ecs:runTask\.waitForTaskToken$/),
      TimeoutSeconds: 12 * 3600,
      HeartbeatSeconds: 600,
      Next: 'Dump ok?',
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Fargate dump failed' }],
    });
    // The same subnets and security groups as the dump function.
    const args = JSON.stringify(fargate.Arguments);
    for (const id of [...vpc.privateSubnetIds, 'sg-0a1b2c3d4e5f60718']) expect(args).toContain(id);
    expect(args).toContain('$states.context.Task.Token');
    expect(args).toContain('"LaunchType":"FARGATE"');
  });

  it('tells the plan the runner setting and the provisional threshold, and lets the execution outlast a Fargate dump', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          DUMP_BAG_DUMP_RUNNER: 'auto',
          DUMP_BAG_FARGATE_ABOVE_GB: String(DEFAULT_FARGATE_ABOVE_GB),
        }),
      },
    });
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      DefinitionString: Match.anyValue(),
    });
    const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0] as [string, Json];
    expect(JSON.stringify((machine.Properties as Json).DefinitionString)).toContain(
      '"TimeoutSeconds\\":46800',
    );
  });
});

describe('where Fargate is off', () => {
  it('auto without a VPC stays Lambda-only and warns naming the settings', () => {
    const stack = buildStack(baseProps(keys));
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::ECS::TaskDefinition', 0);
    template.resourceCountIs('AWS::ECS::Cluster', 0);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ DUMP_BAG_DUMP_RUNNER: 'lambda' }) },
    });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('dumpRunner auto'));
    expect(JSON.stringify(warnings)).toMatch(/vpcId.*subnetIds/);
  });

  it('dumpRunner lambda with a VPC builds no ECS resource', () => {
    const template = Template.fromStack(buildStack(withVpc({ dumpRunner: 'lambda' })));
    template.resourceCountIs('AWS::ECS::TaskDefinition', 0);
    expect(JSON.stringify(stateMachineDefinition(template))).not.toContain('ecs:runTask');
  });
});

describe('runner settings that cannot work', () => {
  it('fargate without a VPC names the settings', () => {
    expect(() => buildStack(baseProps(keys, { backup: { dumpRunner: 'fargate' } }))).toThrow(
      /`dumpRunner` "fargate" needs the database's VPC: set .*vpcId, subnetIds/,
    );
  });

  it('a memory size Fargate does not offer for the CPU names both', () => {
    expect(() => buildStack(withVpc({ fargateCpu: 1024, fargateMemoryMiB: 1024 }))).toThrow(
      /`fargateMemoryMiB` for fargateCpu 1024 must be 2048–8192/,
    );
    expect(() => buildStack(withVpc({ fargateCpu: 1000 }))).toThrow(/`fargateCpu` must be one of/);
  });

  it('a timeout outside 15 minutes to 7 days, and a negative threshold', () => {
    expect(() => buildStack(withVpc({ fargateTimeout: Duration.minutes(5) }))).toThrow(/`fargateTimeout`/);
    expect(() => buildStack(withVpc({ fargateAboveGb: -1 }))).toThrow(/`fargateAboveGb`/);
  });
});

/** The app as `npx cdk synth -c …` builds it (infra/app.ts): -c values reach it as strings, comma lists included. */
function synthFromContext(given: Record<string, string>) {
  const app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], ...given } });
  const { stackName, props } = settingsFromContext((key: ContextKey) => app.node.tryGetContext(key));
  const stack = new DumpBagStack(app, stackName, { ...props, keys: { folder: keys.folder } });
  const assembly = app.synth();
  return { stack, assembly, template: Template.fromStack(stack) };
}

/** The `-c key=value` pairs of the README's `npx cdk synth -c dumpRunner=…` command. */
function readmeSynthContext(): Record<string, string> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const command = readme.split('\n').find((line) => line.startsWith('npx cdk synth -c dumpRunner='));
  if (!command) throw new Error('README.md shows no `npx cdk synth -c dumpRunner=…` command');
  return Object.fromEntries([...command.matchAll(/-c (\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
}

describe('the README deploy command with a VPC, as `cdk synth` runs it (infra/app.ts)', () => {
  it('synthesizes offline from -c values: Fargate on the given subnets, no VPC lookup, no account', () => {
    // No account or region is set.
    const { stack, assembly, template } = synthFromContext({
      dumpRunner: 'auto',
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: 'subnet-aaa,subnet-bbb',
      availabilityZones: 'us-east-1a,us-east-1b',
      routeTableIds: 'rtb-aaa,rtb-bbb',
    });
    // A lookup (Vpc.fromLookup) would leave missing context for the CLI to fetch with credentials.
    expect(assembly.manifest.missing ?? []).toEqual([]);
    expect(stack.account).toBe(Aws.ACCOUNT_ID);
    template.resourceCountIs('AWS::ECS::TaskDefinition', 1);
    // The Map item's RunTask runs in the given subnets.
    const definition = JSON.stringify(stateMachineDefinition(template));
    expect(definition).toContain('ecs:runTask.waitForTaskToken');
    for (const id of ['subnet-aaa', 'subnet-bbb']) expect(definition).toContain(id);
    // Route tables given: the S3 gateway endpoint goes into them.
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      RouteTableIds: ['rtb-aaa', 'rtb-bbb'],
    });
  });

  it("synthesizes from the README's minimal command (vpcId and subnetIds only): exactly those subnets, no S3 gateway endpoint, a warning saying why", () => {
    const given = readmeSynthContext();
    expect(given).toEqual({
      dumpRunner: 'auto',
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: 'subnet-aaa,subnet-bbb',
    });
    const { stack, assembly, template } = synthFromContext(given);
    expect(assembly.manifest.missing ?? []).toEqual([]);
    expect(stack.account).toBe(Aws.ACCOUNT_ID);
    const subnets = ['subnet-aaa', 'subnet-bbb'];

    // The plan and dump functions, and every other function in the VPC, in exactly those subnets.
    const functions = Object.entries(template.findResources('AWS::Lambda::Function')) as [string, Json][];
    const inVpc = functions.filter(([, f]) => (f.Properties as Json).VpcConfig);
    expect(inVpc.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['BackupDump', 'BackupPlan']);
    for (const [id, f] of inVpc) {
      expect(((f.Properties as Json).VpcConfig as Json).SubnetIds, id).toEqual(subnets);
    }
    // The Fargate task too.
    const map = stateMachineDefinition(template).States as Json;
    const states = ((map['Dump each database'] as Json).ItemProcessor as Json).States as Record<string, Json>;
    const runTask = (states['Dump on Fargate'] as Json).Arguments as Json;
    expect(((runTask.NetworkConfiguration as Json).AwsvpcConfiguration as Json).Subnets).toEqual(subnets);
    template.resourceCountIs('AWS::ECS::TaskDefinition', 1);

    // Without route tables: the Secrets Manager endpoint in those subnets, no S3 gateway endpoint.
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 1);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      VpcId: 'vpc-0123456789abcdef0',
      SubnetIds: subnets,
    });
    const annotations = Annotations.fromStack(stack);
    const warnings = annotations.findWarning('*', Match.stringLikeRegexp('No S3 gateway endpoint'));
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.entry.data)).toMatch(
      /route tables of subnets subnet-aaa, subnet-bbb are not given, so S3 traffic goes through the VPC's NAT gateway or an S3 endpoint the VPC already has\. Give routeTableIds .* or set s3GatewayEndpoint false/,
    );
    // Said once, by Dump Bag, not once per subnet by the CDK.
    expect(annotations.findWarning('*', Match.stringLikeRegexp('No routeTableId'))).toEqual([]);
  });
});
