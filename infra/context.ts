import { Duration } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { DumpBagStackProps } from './dump-bag-stack';

/**
 * The cdk.json context keys (also settable with `npx cdk deploy -c key=value`), each with its default.
 * README.md's Deploy section explains them.
 */
export const CONTEXT_KEYS = [
  'stackName', // DumpBag
  'account', // the CLI's (env-agnostic when absent)
  'region', // the CLI's
  'architecture', // arm64 | x86_64
  'dbHost', // from the secret's "host"
  'dbPort', // from the secret, else 5432
  'dbSslMode', // require
  'dbSecretArn', // a secret created by the stack
  'dbSecretName',
  'dbUsername', // dump_bag (created secret only)
  'vpcId', // no VPC
  'availabilityZones', // with vpcId: the subnets' zones, one per subnet
  'subnetIds', // with vpcId: private subnets for the functions
  'routeTableIds', // with vpcId: the subnets' route tables, for the S3 gateway endpoint
  'securityGroupIds', // with vpcId: one created
  's3GatewayEndpoint', // true with a VPC
  'secretsManagerEndpoint', // true with a VPC
  'schedules', // cron(0 3 * * ? *)
  'databases', // every database
  'exclude', // none
  'keysFolder', // keys
  'keysUrl', // none (a central bag's /keys instead of keysFolder)
  'recipients', // every key
  'retentionDays', // 30
  'manualRetentionDays', // 7
  'keepMin', // 3
  'concurrency', // 2
  'dumpMemoryMb', // 1769
  'dumpTimeoutMinutes', // 15
  'compression', // gzip level 1
  'bucketEncryption', // s3 | kms
  'noncurrentVersionDays', // 7
  'objectLockDays', // no Object Lock
  'objectLockMode', // GOVERNANCE
  'accessLogDays', // 90
  'authorization', // iam | jwt
  'jwtIssuer',
  'jwtAudience',
  'urlExpirySeconds', // 900
  'alarmEmails', // none
  'staleAfterHours', // 26
  'pgMajors', // every pinned major
  'layerBundling', // auto | local | docker
] as const;

export type ContextKey = (typeof CONTEXT_KEYS)[number];
type Lookup = (key: ContextKey) => unknown;

function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

function str(get: Lookup, key: ContextKey): string | undefined {
  const value = get(key);
  if (!present(value)) return undefined;
  if (typeof value !== 'string')
    throw new Error(`context ${key} must be a string, got ${JSON.stringify(value)}`);
  return value.trim();
}

/** A JSON list, or a comma list from `-c key=a,b` (a list in cdk.json keeps commas inside names). */
function list(get: Lookup, key: ContextKey): string[] | undefined {
  const value = get(key);
  if (!present(value)) return undefined;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.map((v) => v.trim());
  if (typeof value === 'string') {
    return value
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v.length > 0);
  }
  throw new Error(`context ${key} must be a list of strings (or a comma list), got ${JSON.stringify(value)}`);
}

function num(get: Lookup, key: ContextKey): number | undefined {
  const value = get(key);
  if (!present(value)) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : Number.NaN;
  if (!Number.isFinite(n)) throw new Error(`context ${key} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

function bool(get: Lookup, key: ContextKey): boolean | undefined {
  const value = get(key);
  if (!present(value)) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new Error(`context ${key} must be true or false, got ${JSON.stringify(value)}`);
}

function oneOf<T extends string>(get: Lookup, key: ContextKey, allowed: readonly T[]): T | undefined {
  const value = str(get, key);
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) {
    throw new Error(`context ${key} must be one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}

/**
 * Context keys that look like Dump Bag settings but are none of them (a typo such as `dbhost`).
 * CDK's own keys and feature flags hold a colon or start with `@`, lookups a colon.
 */
export function unknownContextKeys(context: Record<string, unknown>): string[] {
  const known = new Set<string>(CONTEXT_KEYS);
  return Object.keys(context).filter((key) => !key.includes(':') && !key.startsWith('@') && !known.has(key));
}

export interface AppSettings {
  readonly stackName: string;
  readonly props: DumpBagStackProps;
}

/** The stack's props from cdk.json context; a setting that cannot work throws, naming the key and the fix. */
export function settingsFromContext(get: Lookup): AppSettings {
  const vpcId = str(get, 'vpcId');
  const subnetIds = list(get, 'subnetIds');
  const availabilityZones = list(get, 'availabilityZones');
  const routeTableIds = list(get, 'routeTableIds');
  const securityGroupIds = list(get, 'securityGroupIds');
  if (!vpcId && (subnetIds || availabilityZones || routeTableIds || securityGroupIds)) {
    throw new Error(
      'context subnetIds, availabilityZones, routeTableIds and securityGroupIds need vpcId: set vpcId too',
    );
  }
  if (vpcId) {
    if (!subnetIds || subnetIds.length === 0) {
      throw new Error('context vpcId needs subnetIds: the private subnets the functions run in');
    }
    if (!availabilityZones || availabilityZones.length !== subnetIds.length) {
      throw new Error(
        'context availabilityZones must list one zone per entry of subnetIds, in the same order (e.g. ["eu-west-1a","eu-west-1b"])',
      );
    }
    if (routeTableIds && routeTableIds.length !== subnetIds.length) {
      throw new Error(
        'context routeTableIds must list one route table per entry of subnetIds, in the same order',
      );
    }
  }

  const keysFolder = str(get, 'keysFolder');
  const keysUrl = str(get, 'keysUrl');
  const architecture = oneOf(get, 'architecture', ['arm64', 'x86_64'] as const);
  const authorization = oneOf(get, 'authorization', ['iam', 'jwt'] as const);
  const jwtIssuer = str(get, 'jwtIssuer');
  const jwtAudience = list(get, 'jwtAudience');
  if (authorization !== 'jwt' && (jwtIssuer || jwtAudience)) {
    throw new Error(
      'context jwtIssuer and jwtAudience apply only with authorization "jwt": set authorization to jwt',
    );
  }
  const objectLockDays = num(get, 'objectLockDays');
  const objectLockMode = oneOf(get, 'objectLockMode', ['GOVERNANCE', 'COMPLIANCE'] as const);
  if (objectLockMode && objectLockDays === undefined) {
    throw new Error('context objectLockMode needs objectLockDays: how many days each dump is locked');
  }
  const dumpTimeoutMinutes = num(get, 'dumpTimeoutMinutes');
  const urlExpirySeconds = num(get, 'urlExpirySeconds');
  const pgMajors = list(get, 'pgMajors')?.map(Number);
  const retention = {
    days: num(get, 'retentionDays'),
    manualDays: num(get, 'manualRetentionDays'),
    keepMin: num(get, 'keepMin'),
  };
  const account = str(get, 'account');
  const region = str(get, 'region');

  return {
    stackName: str(get, 'stackName') ?? 'DumpBag',
    props: {
      env: account || region ? { account, region } : undefined,
      architecture: architecture === 'x86_64' ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64,
      // Both or neither: PublicKeys names the conflict; the folder is the default only when no URL is set.
      keys: {
        folder: keysFolder ?? (keysUrl ? undefined : 'keys'),
        url: keysUrl,
        recipients: str(get, 'recipients'),
      },
      connection: {
        host: str(get, 'dbHost'),
        port: num(get, 'dbPort'),
        sslMode: str(get, 'dbSslMode'),
        secretArn: str(get, 'dbSecretArn'),
        secretName: str(get, 'dbSecretName'),
        username: str(get, 'dbUsername'),
        vpcAttributes: vpcId
          ? {
              vpcId,
              availabilityZones: availabilityZones as string[],
              privateSubnetIds: subnetIds,
              privateSubnetRouteTableIds: routeTableIds,
            }
          : undefined,
        securityGroupIds,
        s3GatewayEndpoint: bool(get, 's3GatewayEndpoint'),
        secretsManagerEndpoint: bool(get, 'secretsManagerEndpoint'),
      },
      bucket: {
        encryption: oneOf(get, 'bucketEncryption', ['s3', 'kms'] as const),
        noncurrentVersionExpirationDays: num(get, 'noncurrentVersionDays'),
        accessLogDays: num(get, 'accessLogDays'),
        objectLock: objectLockDays !== undefined ? { days: objectLockDays, mode: objectLockMode } : undefined,
      },
      backup: {
        schedules: list(get, 'schedules'),
        databases: list(get, 'databases'),
        exclude: list(get, 'exclude'),
        retention,
        concurrency: num(get, 'concurrency'),
        dumpMemorySize: num(get, 'dumpMemoryMb'),
        dumpTimeout: dumpTimeoutMinutes !== undefined ? Duration.minutes(dumpTimeoutMinutes) : undefined,
        compression: str(get, 'compression'),
      },
      api: {
        authorization:
          authorization === 'jwt'
            ? { type: 'jwt', issuer: jwtIssuer ?? '', audience: jwtAudience ?? [] }
            : { type: 'iam' },
        urlExpiry: urlExpirySeconds !== undefined ? Duration.seconds(urlExpirySeconds) : undefined,
      },
      alarms: {
        emails: list(get, 'alarmEmails'),
        staleAfterHours: num(get, 'staleAfterHours'),
      },
      pgDump: {
        majors: pgMajors,
        bundling: oneOf(get, 'layerBundling', ['auto', 'local', 'docker'] as const),
      },
    },
  };
}
