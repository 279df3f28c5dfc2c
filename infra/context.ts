import { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { ApiAuthorization } from './constructs/dump-api';
import type { ObjectLockSettings } from './constructs/dump-bucket';
import type { NotifySettings } from './constructs/notifier';
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
  'dbSslMode', // verify-full
  'dbSslRootCert', // the Amazon RDS CA bundle
  'dbSecretArn', // a secret created by the stack
  'dbSecretName',
  'dbUsername', // dump_bag (created secret only)
  'vpcId', // no VPC
  'availabilityZones', // not needed: the subnets' zones, one per subnet
  'subnetIds', // with vpcId: private subnets for the functions
  'routeTableIds', // with vpcId: the subnets' route tables; without them no S3 gateway endpoint (a warning)
  'securityGroupIds', // with vpcId: one created
  's3GatewayEndpoint', // true with a VPC and routeTableIds
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
  'dumpRunner', // auto (lambda | fargate | auto)
  'fargateAboveGb', // 5, provisional (functions/core/runner.ts)
  'fargateCpu', // 1024 (1 vCPU)
  'fargateMemoryMb', // 2048
  'fargateTimeoutHours', // 12
  'bucketEncryption', // s3 | kms
  'noncurrentVersionDays', // retentionDays
  'objectLockDays', // no Object Lock
  'objectLockMode', // GOVERNANCE
  'accessLogDays', // 90
  'authorization', // iam | jwt
  'jwtIssuer',
  'jwtAudience',
  'urlExpirySeconds', // 900
  'alarmEmails', // none
  'staleAfterHours', // 26
  'keyExpiryWarningDays', // 30
  'notify', // none: a Secrets Manager secret's name or ARN, or {"secret": …, "digest": true}
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

/**
 * A string handed to the construct that owns the prop, which checks the value and names the fix
 * (the reader checks only that it is a string).
 */
function passed<T extends string>(get: Lookup, key: ContextKey): T | undefined {
  return str(get, key) as T | undefined;
}

export interface AppSettings {
  readonly stackName: string;
  readonly props: DumpBagStackProps;
}

type Props = DumpBagStackProps;

/**
 * A VPC by its ids (zones and route tables optional); what is missing or does not match,
 * DatabaseConnection names with its context key.
 */
function vpcAttributes(get: Lookup): ec2.VpcAttributes | undefined {
  const vpcId = str(get, 'vpcId');
  const privateSubnetIds = list(get, 'subnetIds');
  const availabilityZones = list(get, 'availabilityZones');
  const privateSubnetRouteTableIds = list(get, 'routeTableIds');
  if (!(vpcId || privateSubnetIds || availabilityZones || privateSubnetRouteTableIds)) return undefined;
  return {
    vpcId: vpcId ?? '',
    availabilityZones: availabilityZones ?? [],
    privateSubnetIds,
    privateSubnetRouteTableIds,
  };
}

function connectionFromContext(get: Lookup): Props['connection'] {
  return {
    host: str(get, 'dbHost'),
    port: num(get, 'dbPort'),
    sslMode: str(get, 'dbSslMode'),
    sslRootCert: str(get, 'dbSslRootCert'),
    secretArn: str(get, 'dbSecretArn'),
    secretName: str(get, 'dbSecretName'),
    username: str(get, 'dbUsername'),
    vpcAttributes: vpcAttributes(get),
    securityGroupIds: list(get, 'securityGroupIds'),
    s3GatewayEndpoint: bool(get, 's3GatewayEndpoint'),
    secretsManagerEndpoint: bool(get, 'secretsManagerEndpoint'),
  };
}

function keysFromContext(get: Lookup): Props['keys'] {
  const folder = str(get, 'keysFolder');
  const url = str(get, 'keysUrl');
  // Both or neither: PublicKeys names the conflict; the folder is the default only when no URL is set.
  return { folder: folder ?? (url ? undefined : 'keys'), url, recipients: str(get, 'recipients') };
}

function bucketFromContext(get: Lookup): Props['bucket'] {
  const days = num(get, 'objectLockDays');
  const mode = passed<'GOVERNANCE' | 'COMPLIANCE'>(get, 'objectLockMode');
  return {
    encryption: passed<'s3' | 'kms'>(get, 'bucketEncryption'),
    noncurrentVersionExpirationDays: num(get, 'noncurrentVersionDays'),
    accessLogDays: num(get, 'accessLogDays'),
    // A mode without days reaches DumpBucket, which asks for objectLockDays.
    objectLock: days !== undefined || mode ? ({ days, mode } as ObjectLockSettings) : undefined,
  };
}

function backupFromContext(get: Lookup): Props['backup'] {
  const dumpTimeoutMinutes = num(get, 'dumpTimeoutMinutes');
  const fargateTimeoutHours = num(get, 'fargateTimeoutHours');
  return {
    schedules: list(get, 'schedules'),
    databases: list(get, 'databases'),
    exclude: list(get, 'exclude'),
    retention: {
      days: num(get, 'retentionDays'),
      manualDays: num(get, 'manualRetentionDays'),
      keepMin: num(get, 'keepMin'),
    },
    concurrency: num(get, 'concurrency'),
    dumpMemorySize: num(get, 'dumpMemoryMb'),
    dumpTimeout: dumpTimeoutMinutes !== undefined ? Duration.minutes(dumpTimeoutMinutes) : undefined,
    compression: str(get, 'compression'),
    // Checked by validateRunnerProps (infra/constructs/fargate-dump.ts), which names the setting.
    dumpRunner: str(get, 'dumpRunner') as 'lambda' | 'fargate' | 'auto' | undefined,
    fargateAboveGb: num(get, 'fargateAboveGb'),
    fargateCpu: num(get, 'fargateCpu'),
    fargateMemoryMiB: num(get, 'fargateMemoryMb'),
    fargateTimeout: fargateTimeoutHours !== undefined ? Duration.hours(fargateTimeoutHours) : undefined,
  };
}

function apiFromContext(get: Lookup): Props['api'] {
  const type = passed<'iam' | 'jwt'>(get, 'authorization') ?? 'iam';
  const issuer = str(get, 'jwtIssuer');
  const audience = list(get, 'jwtAudience');
  const urlExpirySeconds = num(get, 'urlExpirySeconds');
  return {
    // Issuer and audience without type jwt reach DumpApi, which names them and the fix.
    authorization: (type === 'jwt' || issuer || audience
      ? { type, issuer, audience }
      : { type }) as ApiAuthorization,
    urlExpiry: urlExpirySeconds !== undefined ? Duration.seconds(urlExpirySeconds) : undefined,
  };
}

/** `notify`: the secret's name or ARN, or `{"secret": …, "digest": true}` (also as JSON text from `-c`). */
function notifyFromContext(get: Lookup): NotifySettings | undefined {
  let value = get('notify');
  if (!present(value)) return undefined;
  if (typeof value === 'string' && value.trim().startsWith('{')) {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      throw new Error('context notify must be a secret name or ARN, or {"secret": …, "digest": true}');
    }
  }
  if (typeof value === 'string') return { secret: value.trim() };
  const o = value as { secret?: unknown; digest?: unknown } | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o) || typeof o.secret !== 'string') {
    throw new Error('context notify must be a secret name or ARN, or {"secret": …, "digest": true}');
  }
  if (o.digest !== undefined && typeof o.digest !== 'boolean') {
    throw new Error(`context notify's digest must be true or false, got ${JSON.stringify(o.digest)}`);
  }
  return { secret: o.secret.trim(), digest: o.digest };
}

/** The stack's props from cdk.json context. The reader checks types; each construct checks its values. */
export function settingsFromContext(get: Lookup): AppSettings {
  const account = str(get, 'account');
  const region = str(get, 'region');
  const architecture = oneOf(get, 'architecture', ['arm64', 'x86_64'] as const);
  return {
    stackName: str(get, 'stackName') ?? 'DumpBag',
    props: {
      env: account || region ? { account, region } : undefined,
      architecture: architecture === 'x86_64' ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64,
      keys: keysFromContext(get),
      connection: connectionFromContext(get),
      bucket: bucketFromContext(get),
      backup: backupFromContext(get),
      api: apiFromContext(get),
      alarms: { emails: list(get, 'alarmEmails'), staleAfterHours: num(get, 'staleAfterHours') },
      keyExpiryWarningDays: num(get, 'keyExpiryWarningDays'),
      notify: notifyFromContext(get),
      pgDump: {
        majors: list(get, 'pgMajors')?.map(Number),
        bundling: passed<'auto' | 'local' | 'docker'>(get, 'layerBundling'),
      },
    },
  };
}
