import { type RetentionPolicy, readBucket, readRetentionPolicy } from '../core/config';
import { ConfigError } from '../core/errors';

/** Presigned URLs live 15 minutes unless configured otherwise. */
export const DEFAULT_URL_EXPIRY_SECONDS = 900;
/** Twelve hours: longer-lived links are a standing risk, and role credentials rarely last longer. */
export const MAX_URL_EXPIRY_SECONDS = 43_200;

/** What the API reads from the environment, in the Lambda and in `dump-bag serve` alike. */
export interface ApiSettings {
  readonly bucket: string;
  readonly retention: RetentionPolicy;
  readonly urlExpirySeconds: number;
  /** DUMP_BAG_PUBLIC_KEYS: a file, a folder, or another bag's `/keys` URL. */
  readonly publicKeys?: string;
  /** DUMP_BAG_RECIPIENTS: a comma list or another bag's `/recipients` URL. */
  readonly recipients?: string;
}

type Env = Record<string, string | undefined>;

export function readUrlExpiry(env: Env = process.env): number {
  const raw = env.DUMP_BAG_URL_EXPIRY_SECONDS?.trim();
  if (!raw) return DEFAULT_URL_EXPIRY_SECONDS;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= 1 && value <= MAX_URL_EXPIRY_SECONDS)) {
    throw new ConfigError(
      `DUMP_BAG_URL_EXPIRY_SECONDS must be a whole number of seconds from 1 to ${MAX_URL_EXPIRY_SECONDS}, got "${raw}"`,
    );
  }
  return value;
}

export function readApiSettings(env: Env = process.env): ApiSettings {
  return {
    bucket: readBucket(env),
    retention: readRetentionPolicy(env),
    urlExpirySeconds: readUrlExpiry(env),
    publicKeys: env.DUMP_BAG_PUBLIC_KEYS?.trim() || undefined,
    recipients: env.DUMP_BAG_RECIPIENTS?.trim() || undefined,
  };
}
