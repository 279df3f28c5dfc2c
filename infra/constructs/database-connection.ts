import { Annotations, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { BagFunction } from './bag-function';

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

export interface DatabaseConnectionProps {
  /** The PostgreSQL server's host name. @default the secret's "host" field, read at run time (RDS secrets hold it) */
  readonly host?: string;
  /** The server's port. @default the secret's "port", else 5432 */
  readonly port?: number;
  /** libpq's sslmode for pg_dump and the plan's connection. @default 'require' */
  readonly sslMode?: string;
  /** An existing secret (`{"username","password"[,"host","port","dbname"]}`, the RDS layout) by complete ARN. @default a secret created here */
  readonly secretArn?: string;
  /** An existing secret by name (instead of secretArn). @default a secret created here */
  readonly secretName?: string;
  /** The database user the created secret holds, with a generated password. @default 'dump_bag' */
  readonly username?: string;
  /** The VPC of a private server: the plan and dump functions run in it. @default no VPC (a public endpoint) */
  readonly vpc?: ec2.IVpc;
  /** The same VPC given by its ids (as cdk.json context does), instead of `vpc`. @default no VPC */
  readonly vpcAttributes?: ec2.VpcAttributes;
  /** Subnets for the functions. @default the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Security groups for the functions. @default one created here, all outbound allowed */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** The same security groups by id, instead of `securityGroups`. @default one created here */
  readonly securityGroupIds?: readonly string[];
  /** Add an S3 gateway endpoint (free) to the subnets' route tables. @default true with a VPC */
  readonly s3GatewayEndpoint?: boolean;
  /** Add a Secrets Manager interface endpoint (about 7.50 USD a month per AZ). @default true with a VPC */
  readonly secretsManagerEndpoint?: boolean;
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
  private readonly props: DatabaseConnectionProps;

  constructor(scope: Construct, id: string, props: DatabaseConnectionProps = {}) {
    super(scope, id);
    this.props = props;
    if (props.secretArn && props.secretName) {
      throw new Error(
        'DatabaseConnection: give `secretArn` or `secretName`, not both (context dbSecretArn / dbSecretName)',
      );
    }
    if (props.username !== undefined && (props.secretArn || props.secretName)) {
      throw new Error(
        'DatabaseConnection: `username` only applies to a secret this stack creates; the referenced secret holds its own "username" (leave username out)',
      );
    }
    if (props.port !== undefined && !Token.isUnresolved(props.port)) {
      if (!Number.isInteger(props.port) || props.port < 1 || props.port > 65535) {
        throw new Error(`DatabaseConnection: \`port\` must be a TCP port from 1 to 65535, got ${props.port}`);
      }
    }
    const sslMode = props.sslMode ?? 'require';
    if (!SSL_MODES.includes(sslMode)) {
      throw new Error(
        `DatabaseConnection: \`sslMode\` must be one of ${SSL_MODES.join(', ')}, got '${sslMode}'`,
      );
    }
    if (props.vpc && props.vpcAttributes) {
      throw new Error('DatabaseConnection: give `vpc` or `vpcAttributes`, not both');
    }
    if (props.securityGroups && props.securityGroupIds) {
      throw new Error('DatabaseConnection: give `securityGroups` or `securityGroupIds`, not both');
    }
    const hasVpc = Boolean(props.vpc || props.vpcAttributes);
    if (!hasVpc && (props.vpcSubnets || props.securityGroups || props.securityGroupIds)) {
      throw new Error(
        'DatabaseConnection: `vpcSubnets` and security groups need `vpc`; give the VPC too (context vpcId, subnetIds, availabilityZones)',
      );
    }
    if (!hasVpc && (props.s3GatewayEndpoint || props.secretsManagerEndpoint)) {
      throw new Error(
        'DatabaseConnection: `s3GatewayEndpoint` and `secretsManagerEndpoint` need `vpc`; give the VPC or leave them out',
      );
    }

    if (props.secretArn) {
      this.secret = secretsmanager.Secret.fromSecretCompleteArn(this, 'Secret', props.secretArn);
      this.secretCreated = false;
    } else if (props.secretName) {
      this.secret = secretsmanager.Secret.fromSecretNameV2(this, 'Secret', props.secretName);
      this.secretCreated = false;
    } else {
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
      this.secret = secret;
      this.secretCreated = true;
    }
    if (!props.host) {
      Annotations.of(this).addInfo(
        'DatabaseConnection: no `host` (context dbHost): the functions take it from the secret\'s "host" field at run time.',
      );
    }

    const vpc = props.vpcAttributes ? ec2.Vpc.fromVpcAttributes(this, 'Vpc', props.vpcAttributes) : props.vpc;
    if (vpc) {
      this.vpc = vpc;
      this.vpcSubnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
      this.securityGroups = props.securityGroups ??
        props.securityGroupIds?.map((groupId) =>
          ec2.SecurityGroup.fromSecurityGroupId(this, groupId, groupId),
        ) ?? [
          new ec2.SecurityGroup(this, 'Functions', {
            vpc,
            description: 'Dump Bag plan and dump functions: allow this group on the database port',
            allowAllOutbound: true,
          }),
        ];
      const subnets = vpc.selectSubnets(this.vpcSubnets);
      if (props.s3GatewayEndpoint ?? true) {
        const missing = subnets.subnets.filter((s) => !s.routeTable?.routeTableId);
        if (missing.length > 0) {
          throw new Error(
            'DatabaseConnection: `s3GatewayEndpoint` needs the route tables of the subnets; give them (context routeTableIds) or set s3GatewayEndpoint: false when the VPC already has one',
          );
        }
        vpc.addGatewayEndpoint('S3', {
          service: ec2.GatewayVpcEndpointAwsService.S3,
          subnets: [this.vpcSubnets],
        });
      }
      if (props.secretsManagerEndpoint ?? true) {
        const endpoint = vpc.addInterfaceEndpoint('SecretsManager', {
          service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
          subnets: this.vpcSubnets,
          privateDnsEnabled: true,
          open: false,
        });
        for (const group of this.securityGroups) endpoint.connections.allowDefaultPortFrom(group);
      }
    }
  }

  /** PGHOST, PGPORT, PGSSLMODE and the secret (readable by this function only through this call). */
  bind(fn: BagFunction): void {
    if (this.props.host) fn.addEnvironment('PGHOST', this.props.host);
    if (this.props.port) fn.addEnvironment('PGPORT', String(this.props.port));
    fn.addEnvironment('PGSSLMODE', this.props.sslMode ?? 'require');
    fn.bindDatabaseSecret(this.secret);
  }
}
