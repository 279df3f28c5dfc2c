import type { DumpOptionsByDatabase } from './dump-options';
import type { EncryptionMode } from './settings';
import { requiredSetting, SETTINGS, SettingError, setting } from './settings';

export type { EncryptionMode };
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
  /** Warn when a recipient's key expires within this many days. */
  readonly keyExpiryWarningDays?: number;
  readonly retention: RetentionPolicy;
  /** An explicit pg_dump binary (overrides the choice by server major). */
  readonly pgDumpPath?: string;
  /** A folder holding `<major>/bin/pg_dump` for several majors, as the Lambda layer does under /opt. */
  readonly pgRoot?: string;
  /** pg_dump's `--compress` value; undefined picks one by pg_dump major. */
  readonly compression?: string;
  /** Allow-listed pg_dump flags, for all databases (`*`) or by name. */
  readonly dumpOptions?: DumpOptionsByDatabase;
}

type Env = Record<string, string | undefined>;

export { parseList } from './setting-parsers';

export function readRetentionPolicy(env: Env = process.env): RetentionPolicy {
  return {
    retentionDays: setting('retentionDays', env),
    manualRetentionDays: setting('manualRetentionDays', env),
    keepMin: setting('keepMin', env),
  };
}

export function readBucket(env: Env = process.env): string {
  return requiredSetting('bucket', env);
}

/** Reads Dump Bag's settings from the environment; throws a SettingError naming the variable at fault. */
export function readConfig(env: Env = process.env): DumpBagConfig {
  const bucket = readBucket(env);
  const encryption = setting('encryption', env);
  const publicKeys = setting('publicKeys', env);
  const passphraseFile = setting('passphraseFile', env);
  if (encryption === 'gpg' && !publicKeys) {
    throw new SettingError(
      `${SETTINGS.publicKeys.env} is not set: give a file or folder of armored public keys or the URL of a bag's /keys (or set ${SETTINGS.encryption.env}=none to store plaintext)`,
      SETTINGS.publicKeys.env,
    );
  }
  if (encryption === 'passphrase' && !passphraseFile) {
    throw new SettingError(
      `${SETTINGS.encryption.env}=passphrase needs ${SETTINGS.passphraseFile.env}, the file holding the passphrase`,
      SETTINGS.passphraseFile.env,
    );
  }
  const databases = setting('databases', env);
  return {
    bucket,
    databases: databases.length > 0 ? databases : undefined,
    exclude: setting('exclude', env),
    encryption,
    publicKeys,
    recipients: setting('recipients', env),
    passphraseFile,
    keyExpiryWarningDays: setting('keyExpiryWarningDays', env),
    retention: readRetentionPolicy(env),
    pgDumpPath: setting('pgDump', env),
    pgRoot: setting('pgRoot', env),
    compression: setting('compression', env),
    dumpOptions: setting('dumpOptions', env),
  };
}
