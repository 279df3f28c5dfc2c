import { type RetentionPolicy, readBucket, readRetentionPolicy } from '../core/config';
import { setting } from '../core/settings';

/** What the API reads from the environment, in the Lambda and in `dump-bag serve` alike. */
export interface ApiSettings {
  readonly bucket: string;
  readonly retention: RetentionPolicy;
  readonly urlExpirySeconds: number;
  /** DUMP_BAG_PUBLIC_KEYS: a file, a folder, or another bag's `/keys` URL. */
  readonly publicKeys?: string;
  /** DUMP_BAG_RECIPIENTS: a comma list or another bag's `/recipients` URL. */
  readonly recipients?: string;
  /** DUMP_BAG_KEY_EXPIRY_WARNING_DAYS: the status page's banner warns this long before a key expires. */
  readonly keyExpiryWarningDays?: number;
}

type Env = Record<string, string | undefined>;

export function readUrlExpiry(env: Env = process.env): number {
  return setting('urlExpirySeconds', env);
}

export function readApiSettings(env: Env = process.env): ApiSettings {
  return {
    bucket: readBucket(env),
    retention: readRetentionPolicy(env),
    urlExpirySeconds: readUrlExpiry(env),
    publicKeys: setting('publicKeys', env),
    recipients: setting('recipients', env),
    keyExpiryWarningDays: setting('keyExpiryWarningDays', env),
  };
}
