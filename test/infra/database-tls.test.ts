import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { rdsCaBundle } from '../../functions/core/db-tls';
import { CA_MOUNT } from '../../infra/constructs/database-connection';
import type { DumpBagStackProps } from '../../infra/dump-bag-stack';
import { tempDir } from '../support/temp';
import { baseProps, buildStack, keyFolder, render, type TestKey } from './support';

type Json = Record<string, unknown>;

const vpcAttributes = {
  vpcId: 'vpc-0a1b2c3d4e5f60718',
  availabilityZones: ['eu-west-1a', 'eu-west-1b'],
  privateSubnetIds: ['subnet-0a1b2c3d4e5f6071a', 'subnet-0a1b2c3d4e5f6071b'],
  privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f6071a', 'rtb-0a1b2c3d4e5f6071b'],
};

let keys: TestKey;
let caFile: string;

beforeAll(async () => {
  keys = await keyFolder();
  caFile = join(tempDir('dump-bag-ca-'), 'server-ca.pem');
  writeFileSync(caFile, `${rdsCaBundle()[0]}\n`);
});

const functionEnv = (template: Template, description: RegExp): Json => {
  const found = Object.values(template.findResources('AWS::Lambda::Function')).find((r) =>
    description.test(String((r.Properties as Json).Description)),
  ) as Json;
  return ((found.Properties as Json).Environment as Json).Variables as Json;
};

describe('database TLS in the stack', () => {
  it('verify-full by default for the plan and dump functions, against the RDS CAs inside them (no CA layer)', () => {
    const template = Template.fromStack(buildStack(baseProps(keys)));
    for (const fn of [/lists the databases/, /pg_dump of one database/]) {
      const env = functionEnv(template, fn);
      expect(env.PGSSLMODE, String(fn)).toBe('verify-full');
      expect(env.PGSSLROOTCERT, String(fn)).toBeUndefined();
    }
    expect(Object.keys(template.findResources('AWS::Lambda::LayerVersion')).join()).not.toMatch(/CaLayer/);
  });

  it('ships sslRootCert as a layer: PGSSLROOTCERT in the plan, dump and Fargate task, which unpacks the layer', () => {
    const props: DumpBagStackProps = baseProps(keys, {
      connection: { vpcAttributes, securityGroupIds: ['sg-0a1b2c3d4e5f60718'], sslRootCert: caFile },
    });
    const template = Template.fromStack(buildStack(props));
    const [layerId] = Object.keys(template.findResources('AWS::Lambda::LayerVersion')).filter((id) =>
      id.includes('CaLayer'),
    );
    expect(layerId).toBeDefined();
    for (const fn of [/lists the databases/, /pg_dump of one database/]) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Description: Match.stringLikeRegexp(fn.source),
        Layers: Match.arrayWith([{ Ref: layerId }]),
        Environment: {
          Variables: Match.objectLike({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: `${CA_MOUNT}/root.crt` }),
        },
      });
    }
    const [task] = Object.values(template.findResources('AWS::ECS::TaskDefinition')) as [Json];
    const container = ((task.Properties as Json).ContainerDefinitions as Json[])[0] as Json;
    const env = Object.fromEntries(
      (container.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
    );
    expect(env.PGSSLROOTCERT).toBe(`${CA_MOUNT}/root.crt`);
    expect(render(env.DUMP_BAG_LAYERS)).toContain(layerId);
  });

  it('refuses a CA file that is missing or holds a private key, naming the prop and the fix', () => {
    const build = (sslRootCert: string) => () => buildStack(baseProps(keys, { connection: { sslRootCert } }));
    expect(build('no/such/ca.pem')).toThrow(/`sslRootCert` must be a readable PEM file .*names no file/);
    const withKey = join(tempDir('dump-bag-ca-'), 'bundle.pem');
    writeFileSync(
      withKey,
      `${rdsCaBundle()[0]}\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`,
    );
    expect(build(withKey)).toThrow(/holds a private key.*context dbSslRootCert/);
  });
});
