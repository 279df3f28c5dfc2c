import { ConfigError } from './errors';

export type EncryptionMode = 'gpg' | 'passphrase' | 'none';
export type Trigger = 'schedule' | 'manual';

export interface RetentionPolicy {
  /** Scheduled dumps older than this many days may be deleted. */
  readonly retentionDays: number;
  /** Manual (on-demand) dumps older than this many days may be deleted. */
  readonly manualRetentionDays: number;
  /** Never leave fewer than this many good dumps of a database. */
  readonly keepMin: number;
}

export interface DumpBagConfig {
  readonly bucket: string;
  /** Databases to dump; undefined means every database that allows connections and is not a template. */
  readonly databases?: readonly string[];
  readonly exclude: readonly string[];
  readonly encryption: EncryptionMode;
  /** A file, a folder, or an http(s) URL of another bag's `/keys`. */
  readonly publicKeys?: string;
  /** A comma list of fingerprints or e-mail addresses, or an http(s) URL of another bag's `/recipients`. */
  readonly recipients?: string;
  readonly passphraseFile?: string;
  readonly retention: RetentionPolicy;
  /** An explicit pg_dump binary (overrides the choice by server major). */
  readonly pgDumpPath?: string;
  /** A folder holding `<major>/bin/pg_dump` for several majors, as the Lambda layer does under /opt. */
  readonly pgRoot?: string;
  /** pg_dump's `--compress` value; undefined picks one by pg_dump major. */
  readonly compression?: string;
}

type Env = Record<string, string | undefined>;

/** Splits a comma list; `\,` keeps a comma inside a name, blanks around entries are dropped. */
export function parseList(value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') return [];
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      current += value[++i];
    } else if (c === ',') {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  out.push(current);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

function parseWholeNumber(env: Env, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min) throw new ConfigError(`${name} must be at least ${min}, got ${value}`);
  return value;
}

export function readRetentionPolicy(env: Env = process.env): RetentionPolicy {
  return {
    retentionDays: parseWholeNumber(env, 'DUMP_BAG_RETENTION_DAYS', 30, 1),
    manualRetentionDays: parseWholeNumber(env, 'DUMP_BAG_MANUAL_RETENTION_DAYS', 7, 1),
    keepMin: parseWholeNumber(env, 'DUMP_BAG_KEEP_MIN', 3, 1),
  };
}

export function readBucket(env: Env = process.env): string {
  const bucket = env.DUMP_BAG_BUCKET?.trim();
  if (!bucket) throw new ConfigError('DUMP_BAG_BUCKET is not set: name the S3 bucket that holds the dumps');
  return bucket;
}

/** Reads Dump Bag's settings from the environment; throws a ConfigError naming the variable at fault. */
export function readConfig(env: Env = process.env): DumpBagConfig {
  const bucket = readBucket(env);
  const encryption = (env.DUMP_BAG_ENCRYPTION?.trim() || 'gpg') as EncryptionMode;
  if (!['gpg', 'passphrase', 'none'].includes(encryption)) {
    throw new ConfigError(`DUMP_BAG_ENCRYPTION must be gpg, passphrase or none, got "${encryption}"`);
  }
  const publicKeys = env.DUMP_BAG_PUBLIC_KEYS?.trim() || undefined;
  const passphraseFile = env.DUMP_BAG_PASSPHRASE_FILE?.trim() || undefined;
  if (encryption === 'gpg' && !publicKeys) {
    throw new ConfigError(
      "DUMP_BAG_PUBLIC_KEYS is not set: give a file or folder of armored public keys or the URL of a bag's /keys (or set DUMP_BAG_ENCRYPTION=none to store plaintext)",
    );
  }
  if (encryption === 'passphrase' && !passphraseFile) {
    throw new ConfigError(
      'DUMP_BAG_ENCRYPTION=passphrase needs DUMP_BAG_PASSPHRASE_FILE, the file holding the passphrase',
    );
  }
  const databases = parseList(env.DUMP_BAG_DATABASES);
  return {
    bucket,
    databases: databases.length > 0 ? databases : undefined,
    exclude: parseList(env.DUMP_BAG_EXCLUDE),
    encryption,
    publicKeys,
    recipients: env.DUMP_BAG_RECIPIENTS?.trim() || undefined,
    passphraseFile,
    retention: readRetentionPolicy(env),
    pgDumpPath: env.DUMP_BAG_PG_DUMP?.trim() || undefined,
    pgRoot: env.DUMP_BAG_PG_ROOT?.trim() || undefined,
    compression: env.DUMP_BAG_COMPRESSION?.trim() || undefined,
  };
}
