// Over 300 lines: the connection's props, their validation and the TLS CA layer belong to one construct.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { Annotations, AssetHashType, Fn } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { SETTINGS, SSL_MODES } from '../../functions/core/settings';
import { type BagFunction, REPO_ROOT } from './bag-function';
import { fileLayerCode } from './file-layer';
import { checkProp, oneOf, optional, wholeNumber } from './validate';

/** Where the CA layer puts the `sslRootCert` file in the function's file system. */
export const CA_MOUNT = '/opt/dump-bag-tls';
const CA_FILE = 'root.crt';
/** A CA file larger than this is not a list of CA certificates (the core's own limit). */
const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

/** A path relative to the repository root, or absolute. */
function repoPath(path: string): string {
  return isAbsolute(path) ? path : join(REPO_ROOT, path);
}

/** Why a CA file cannot be shipped, or undefined when it can. */
function caFileProblem(path: string): string | undefined {
  const file = repoPath(path);
  if (!existsSync(file) || !statSync(file).isFile()) return 'names no file';
  if (statSync(file).size > MAX_CA_FILE_BYTES) return 'is too large for a CA file';
  const text = readFileSync(file, 'utf8');
  if (/PRIVATE KEY/.test(text)) return 'holds a private key, which must never go into a layer';
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return 'holds no PEM certificate';
  return undefined;
}

export interface DatabaseConnectionProps {
  /** The PostgreSQL server's host name. @default the secret's "host" field, read at run time (RDS secrets hold it) */
  readonly host?: string;
  /** The server's port. @default the secret's "port", else 5432 */
  readonly port?: number;
  /** libpq's sslmode for pg_dump and the plan's connection; `require` encrypts without checking who answers. @default 'verify-full' */
  readonly sslMode?: string;
  /** A PEM file of the CAs that sign the server's certificate (relative to the repository root), for a server not on RDS; shipped as a layer. @default the Amazon RDS CA bundle, inside the functions */
  readonly sslRootCert?: string;
  /** An existing secret (`{"username","password"[,"host","port","dbname"]}`, the RDS layout) by complete ARN. @default a secret created here */
  readonly secretArn?: string;
  /** An existing secret by name (instead of secretArn). @default a secret created here */
  readonly secretName?: string;
  /** The database user the created secret holds, with a generated password. @default 'dump_bag' */
  readonly username?: string;
  /** The VPC of a private server: the plan and dump functions run in it. @default no VPC (a public endpoint) */
  readonly vpc?: ec2.IVpc;
  /**
   * The same VPC given by its ids (as cdk.json context does), instead of `vpc`. With `availabilityZones`
   * empty the subnets are imported one by one and no zone is ever read, so synth needs no lookup.
   * @default no VPC
   */
  readonly vpcAttributes?: ec2.VpcAttributes;
  /** Subnets for the functions. @default the VPC's private subnets (vpcAttributes.privateSubnetIds) */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Security groups for the functions. @default one created here, all outbound allowed */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** The same security groups by id, instead of `securityGroups`. @default one created here */
  readonly securityGroupIds?: readonly string[];
  /** Add an S3 gateway endpoint (free) to the subnets' route tables. @default true when the subnets' route tables are known, else none with a synth warning */
  readonly s3GatewayEndpoint?: boolean;
  /** Add a Secrets Manager interface endpoint (about 7.50 USD a month per AZ). @default true with a VPC */
  readonly secretsManagerEndpoint?: boolean;
}

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validateDatabaseConnectionProps(scope: IConstruct, props: DatabaseConnectionProps): void {
  validateSecret(scope, props);
  checkProp(scope, {
    prop: 'port',
    value: props.port,
    valid: optional(wholeNumber(1, 65535)),
    rule: 'must be a TCP port from 1 to 65535',
    fix: "give the server's port (context dbPort), or leave it out for the secret's port or 5432",
  });
  checkProp(scope, {
    prop: 'sslMode',
    value: props.sslMode,
    valid: optional(oneOf<string>(SSL_MODES)),
    rule: `must be one of ${SSL_MODES.join(', ')}`,
    fix: "give one of libpq's sslmode values (context dbSslMode); 'require' encrypts, 'verify-full' also checks the server's certificate",
  });
  const caProblem = props.sslRootCert === undefined ? undefined : caFileProblem(props.sslRootCert);
  checkProp(scope, {
    prop: 'sslRootCert',
    value: props.sslRootCert,
    valid: caProblem === undefined,
    rule: `must be a readable PEM file of CA certificates, and ${caProblem ?? 'is'}`,
    fix: "give the file of your server's CA (context dbSslRootCert), or leave it out for an RDS server",
  });
  validatePlacement(scope, props);
  if (props.vpcAttributes) validateVpcAttributes(scope, props.vpcAttributes, props.vpcSubnets);
}

function validateSecret(scope: IConstruct, props: DatabaseConnectionProps): void {
  checkProp(scope, {
    prop: 'secretName',
    value: props.secretName,
    valid: !(props.secretName && props.secretArn),
    rule: 'cannot go with `secretArn`',
    fix: 'give `secretArn` or `secretName`, not both (context dbSecretArn / dbSecretName)',
  });
  checkProp(scope, {
    prop: 'username',
    value: props.username,
    valid: props.username === undefined || !(props.secretArn || props.secretName),
    rule: 'only applies to a secret this stack creates',
    fix: 'leave username out (context dbUsername): the referenced secret holds its own "username"',
  });
}

/** Where the functions run: a VPC given once, and what needs a VPC given only with one. */
function validatePlacement(scope: IConstruct, props: DatabaseConnectionProps): void {
  const hasVpc = Boolean(props.vpc || props.vpcAttributes);
  checkProp(scope, {
    prop: 'vpcAttributes',
    value: props.vpcAttributes,
    valid: !(props.vpcAttributes && props.vpc),
    rule: 'cannot go with `vpc`',
    fix: 'give `vpc` or `vpcAttributes`, not both',
  });
  checkProp(scope, {
    prop: 'securityGroupIds',
    value: props.securityGroupIds,
    valid: !(props.securityGroupIds && props.securityGroups),
    rule: 'cannot go with `securityGroups`',
    fix: 'give `securityGroups` or `securityGroupIds`, not both',
  });
  if (hasVpc) return;
  for (const prop of ['vpcSubnets', 'securityGroups', 'securityGroupIds'] as const) {
    checkProp(scope, {
      prop,
      value: props[prop],
      valid: props[prop] === undefined,
      rule: 'needs `vpc`',
      fix: 'give the VPC too (context vpcId and subnetIds)',
    });
  }
  for (const prop of ['s3GatewayEndpoint', 'secretsManagerEndpoint'] as const) {
    checkProp(scope, {
      prop,
      value: props[prop],
      valid: !props[prop],
      rule: 'needs `vpc`: the endpoint is made in it',
      fix: 'give the VPC or leave it out',
    });
  }
}

/** A VPC by its ids (cdk.json context's form): each subnet with its zone and, if given, its route table. */
function validateVpcAttributes(
  scope: IConstruct,
  attributes: ec2.VpcAttributes,
  vpcSubnets: ec2.SubnetSelection | undefined,
): void {
  checkProp(scope, {
    prop: 'vpcAttributes.vpcId',
    value: attributes.vpcId,
    valid: (id) => id.length > 0,
    rule: 'must name the VPC',
    fix: "give the VPC's id (context vpcId) with its subnets",
  });
  const subnetIds = attributes.privateSubnetIds ?? [];
  checkProp(scope, {
    prop: 'vpcAttributes.privateSubnetIds',
    value: attributes.privateSubnetIds,
    valid: (ids) => vpcSubnets !== undefined || (ids !== undefined && ids.length > 0),
    rule: 'must list the private subnets the functions run in',
    fix: 'give their ids (context subnetIds)',
  });
  checkProp(scope, {
    prop: 'vpcAttributes.availabilityZones',
    value: attributes.availabilityZones,
    valid: (zones) => zones.length === 0 || zones.length === subnetIds.length,
    rule: 'must list one zone per entry of privateSubnetIds, in the same order',
    fix: 'give each subnet\'s zone (context availabilityZones, e.g. ["eu-west-1a","eu-west-1b"]), or leave them all out',
  });
  checkProp(scope, {
    prop: 'vpcAttributes.privateSubnetRouteTableIds',
    value: attributes.privateSubnetRouteTableIds,
    valid: optional((tables) => tables.length === subnetIds.length),
    rule: 'must list one route table per entry of privateSubnetIds, in the same order',
    fix: "give each subnet's route table (context routeTableIds), or leave them all out",
  });
}

/** The CDK's own warning for each subnet imported without its route table; ours says what it means once. */
const NO_ROUTE_TABLE_WARNING = '@aws-cdk/aws-ec2:noSubnetRouteTableId';

/**
 * Whether to add the S3 gateway endpoint, which goes into the route tables of the functions' subnets:
 * asked for without them is an error; by default without them it is left out with a warning.
 */
function wantsGatewayEndpoint(
  scope: IConstruct,
  setting: boolean | undefined,
  subnets: ec2.SelectedSubnets,
): boolean {
  if (setting === false) return false;
  const missing = subnets.subnets.filter((subnet) => !subnet.routeTable?.routeTableId).map((s) => s.subnetId);
  checkProp(scope, {
    prop: 's3GatewayEndpoint',
    value: missing,
    valid: setting === undefined || missing.length === 0,
    rule: 'needs the route tables of the subnets, and these have none',
    fix: 'give them (context routeTableIds, one per subnet) or set s3GatewayEndpoint: false when the VPC already has one',
  });
  if (missing.length === 0) return true;
  Annotations.of(scope).addWarningV2(
    'dump-bag:no-s3-gateway-endpoint',
    `No S3 gateway endpoint: the route tables of subnets ${missing.join(', ')} are not given, so S3 traffic goes through the VPC's NAT gateway or an S3 endpoint the VPC already has. Give routeTableIds (one per subnet, in order) to add the endpoint (free), or set s3GatewayEndpoint false to say the VPC has one.`,
  );
  return false;
}

/**
 * How the plan and dump functions reach the database: host, port and sslmode as libpq variables,
 * the login from a Secrets Manager secret that only they may read, and, for a private server,
 * the VPC placement with the endpoints that keep S3 and Secrets Manager reachable without NAT.
 */
export class DatabaseConnection extends Construct {
  readonly secret: secretsmanager.ISecret;
  /** True when this stack made the secret: someone must set the same password on the database user. */
  readonly secretCreated: boolean;
  readonly vpc?: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** The layer holding `sslRootCert`, when given; the Fargate task unpacks it too. */
  readonly caLayer?: lambda.LayerVersion;
  private readonly props: DatabaseConnectionProps;

  constructor(scope: Construct, id: string, props: DatabaseConnectionProps = {}) {
    super(scope, id);
    this.props = props;
    validateDatabaseConnectionProps(this, props);

    const login = this.loginSecret(props);
    this.secret = login.secret;
    this.secretCreated = login.created;
    if (!props.host) {
      Annotations.of(this).addInfo(
        'DatabaseConnection: no `host` (context dbHost): the functions take it from the secret\'s "host" field at run time.',
      );
    }

    if (props.sslRootCert) this.caLayer = this.caFileLayer(props.sslRootCert);

    const imported = props.vpcAttributes ? this.importVpc(props.vpcAttributes) : undefined;
    const vpc = imported?.vpc ?? props.vpc;
    if (vpc) {
      this.vpc = vpc;
      this.vpcSubnets = props.vpcSubnets ??
        imported?.subnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
      this.securityGroups = this.functionGroups(vpc, props);
      this.addEndpoints(vpc, this.vpcSubnets, this.securityGroups, props);
    }
  }

  /**
   * The VPC by its ids. Without zones its subnets are imported one by one and selected as they are, so
   * nothing (Lambda, RunTask, the endpoints) reads a zone and synth needs no lookup or account.
   */
  private importVpc(attributes: ec2.VpcAttributes): { vpc: ec2.IVpc; subnets?: ec2.SubnetSelection } {
    const subnetIds = attributes.privateSubnetIds ?? [];
    if (attributes.availabilityZones.length > 0 || subnetIds.length === 0) {
      return { vpc: ec2.Vpc.fromVpcAttributes(this, 'Vpc', attributes) };
    }
    // The region's zones as a token: fromVpcAttributes divides by their count, and nothing here reads them.
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: attributes.vpcId,
      availabilityZones: Fn.getAzs(),
    });
    Annotations.of(vpc).acknowledgeWarning(
      '@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones',
      'the subnets are imported one by one, not through the VPC',
    );
    const subnets = subnetIds.map((subnetId, i) =>
      ec2.Subnet.fromSubnetAttributes(vpc, `Subnet${i + 1}`, {
        subnetId,
        routeTableId: attributes.privateSubnetRouteTableIds?.[i],
      }),
    );
    return { vpc, subnets: { subnets } };
  }

  /** The referenced secret, or one made here with a generated password. */
  private loginSecret(props: DatabaseConnectionProps): { secret: secretsmanager.ISecret; created: boolean } {
    if (props.secretArn) {
      return {
        secret: secretsmanager.Secret.fromSecretCompleteArn(this, 'Secret', props.secretArn),
        created: false,
      };
    }
    if (props.secretName) {
      return {
        secret: secretsmanager.Secret.fromSecretNameV2(this, 'Secret', props.secretName),
        created: false,
      };
    }
    const username = props.username ?? 'dump_bag';
    const secret = new secretsmanager.Secret(this, 'Secret', {
      description: `Dump Bag: login of the database user ${username}`,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({
          username,
          ...(props.host ? { host: props.host } : {}),
          ...(props.port ? { port: props.port } : {}),
        }),
        generateStringKey: 'password',
        passwordLength: 32,
        // Characters that need quoting in ALTER ROLE … PASSWORD '…' or a connection URI.
        excludeCharacters: ' "\'\\/@:%`',
      },
    });
    NagSuppressions.addResourceSuppressions(secret, [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          'The password belongs to a database user this stack does not manage, so a rotation Lambda could not change it; reference an RDS-managed (rotated) secret with secretArn instead.',
      },
    ]);
    return { secret, created: true };
  }

  /** The CA file at CA_MOUNT/root.crt, its asset hash the file's own (not its folder's). */
  private caFileLayer(path: string): lambda.LayerVersion {
    const file = repoPath(path);
    return new lambda.LayerVersion(this, 'CaLayer', {
      description: `Dump Bag: the CAs of the database server's certificate, from ${path}`,
      code: fileLayerCode({
        source: dirname(file),
        mount: CA_MOUNT,
        copy: (target) => copyFileSync(file, join(target, CA_FILE)),
        assetHash: {
          type: AssetHashType.CUSTOM,
          hash: createHash('sha256').update(readFileSync(file)).digest('hex'),
        },
      }),
    });
  }

  private functionGroups(vpc: ec2.IVpc, props: DatabaseConnectionProps): ec2.ISecurityGroup[] {
    return (
      props.securityGroups ??
      props.securityGroupIds?.map((groupId) =>
        ec2.SecurityGroup.fromSecurityGroupId(this, groupId, groupId),
      ) ?? [
        new ec2.SecurityGroup(this, 'Functions', {
          vpc,
          description: 'Dump Bag plan and dump functions: allow this group on the database port',
          allowAllOutbound: true,
        }),
      ]
    );
  }

  /** S3 and Secrets Manager reachable from the subnets without NAT. */
  private addEndpoints(
    vpc: ec2.IVpc,
    vpcSubnets: ec2.SubnetSelection,
    groups: ec2.ISecurityGroup[],
    props: DatabaseConnectionProps,
  ): void {
    if (wantsGatewayEndpoint(this, props.s3GatewayEndpoint, vpc.selectSubnets(vpcSubnets))) {
      vpc.addGatewayEndpoint('S3', {
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [vpcSubnets],
      });
    } else {
      Annotations.of(this).acknowledgeWarning(NO_ROUTE_TABLE_WARNING, 'no S3 gateway endpoint reads them');
    }
    if (props.secretsManagerEndpoint ?? true) {
      const endpoint = vpc.addInterfaceEndpoint('SecretsManager', {
        service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        subnets: vpcSubnets,
        privateDnsEnabled: true,
        open: false,
      });
      for (const group of groups) endpoint.connections.allowDefaultPortFrom(group);
    }
  }

  /** PGHOST, PGPORT, PGSSLMODE, PGSSLROOTCERT with its layer, and the secret (readable by this function only through this call). */
  bind(fn: BagFunction): void {
    if (this.props.host) fn.addEnvironment('PGHOST', this.props.host);
    if (this.props.port) fn.addEnvironment('PGPORT', String(this.props.port));
    fn.addEnvironment(SETTINGS.sslMode.env, this.props.sslMode ?? 'verify-full');
    if (this.caLayer) {
      fn.addEnvironment(SETTINGS.sslRootCert.env, `${CA_MOUNT}/${CA_FILE}`);
      fn.addLayers(this.caLayer);
    }
    fn.bindDatabaseSecret(this.secret);
  }
}
