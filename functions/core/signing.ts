import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { DumpRecord, RecordSignature } from './catalog';
import { ConfigError, DumpBagError, errorMessage } from './errors';
import { readSetting, SETTINGS } from './settings';

/** Prefixed to every signed form, so a record signature can never be replayed as anything else. */
export const RECORD_DOMAIN = 'dump-bag record v1';

/** A PEM public key is a few hundred bytes; anything much larger is not one. */
const MAX_PEM_BYTES = 16 * 1024;

/**
 * The signed fields, in their one fixed order. Every field a reader relies on to pick, check or
 * decrypt a dump is here; a field added to the record that a reader relies on must be added here
 * (and RECORD_DOMAIN's version raised).
 */
function canonicalFields(record: DumpRecord): [string, unknown][] {
  return [
    ['database', record.database],
    ['id', record.id],
    ['key', record.key],
    ['createdAt', record.createdAt],
    ['trigger', record.trigger],
    ['encryption', record.encryption],
    ['recipients', (record.recipients ?? []).map((r) => r.fingerprint)],
    ['pgDumpVersion', record.pgDumpVersion],
    ['serverVersion', record.serverVersion],
    ['compression', record.compression],
    ['sha256', record.sha256],
    ['bytes', record.bytes],
  ];
}

/** The exact bytes signed: the domain string, a newline, then JSON of [field, value] pairs in fixed order. */
export function canonicalRecord(record: DumpRecord): Buffer {
  return Buffer.from(`${RECORD_DOMAIN}\n${JSON.stringify(canonicalFields(record))}`, 'utf8');
}

/** Signs records: a local Ed25519 key on the command line, a KMS key in AWS. */
export interface RecordSigner {
  readonly algorithm: string;
  /** Names the key in each signature (RecordSignature.key); never secret. */
  readonly keyName: string;
  /** The public key as SPKI PEM, as `GET /signing-key` serves it. */
  publicKeyPem(): Promise<string>;
  sign(data: Buffer): Promise<Buffer>;
}

/** The public key's fingerprint: SHA-256 of its SPKI DER, hex. */
export function keyFingerprint(publicKey: string | KeyObject): string {
  const key = typeof publicKey === 'string' ? parsePublicKey(publicKey) : publicKey;
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** The fingerprint as people compare it: groups of four, e.g. `1a2b 3c4d …`. */
export function displayFingerprint(fingerprint: string): string {
  return fingerprint.replace(/(.{4})(?=.)/g, '$1 ');
}

/** A signing public key that is not one: a bad PEM file or a bag that serves something else. */
export class SigningKeyError extends DumpBagError {
  override name = 'SigningKeyError';
}

/** Parses a PEM public key of a kind records are signed with (Ed25519 or ECDSA P-256); bounded. */
export function parsePublicKey(pem: string, source = 'the signing key'): KeyObject {
  if (Buffer.byteLength(pem) > MAX_PEM_BYTES) {
    throw new SigningKeyError(`${source} is larger than ${MAX_PEM_BYTES} bytes: not a PEM public key`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (error: unknown) {
    throw new SigningKeyError(`${source} is not a PEM public key: ${errorMessage(error)}`);
  }
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type !== 'ed25519' && !(type === 'ec' && (curve === 'prime256v1' || curve === 'P-256'))) {
    throw new SigningKeyError(`${source} is a ${type} key; records are signed with Ed25519 or ECDSA P-256`);
  }
  return key;
}

/** The record with its signature over the canonical form. */
export async function signRecord(record: DumpRecord, signer: RecordSigner): Promise<DumpRecord> {
  const { signature: _old, ...fields } = record;
  const value = await signer.sign(canonicalRecord(fields));
  const signature: RecordSignature = {
    algorithm: signer.algorithm,
    key: signer.keyName,
    value: value.toString('base64'),
  };
  return { ...fields, signature };
}

/** Whether a record's signature holds for a given public key, and if not why. */
export type SignatureCheck =
  | { readonly state: 'valid' }
  | { readonly state: 'unsigned' | 'invalid'; readonly reason: string };

/** Checks a record (untrusted input) against the bag's public key; never throws. */
export function checkRecordSignature(record: DumpRecord, publicKey: KeyObject): SignatureCheck {
  const signature = (record as { signature?: unknown }).signature as Partial<RecordSignature> | undefined;
  if (signature === undefined || signature === null) {
    return { state: 'unsigned', reason: 'its record carries no signature' };
  }
  if (typeof signature !== 'object' || typeof signature.value !== 'string' || signature.value.length > 1024) {
    return { state: 'invalid', reason: 'its record has a malformed signature' };
  }
  const bytes = Buffer.from(signature.value, 'base64');
  let ok = false;
  try {
    const data = canonicalRecord(record);
    // The algorithm comes from the pinned key, never from the record, so a record cannot pick a weaker one.
    ok =
      publicKey.asymmetricKeyType === 'ed25519'
        ? verify(null, data, publicKey, bytes)
        : verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, bytes);
  } catch {
    ok = false;
  }
  if (ok) return { state: 'valid' };
  const expected = keyFingerprint(publicKey);
  return {
    state: 'invalid',
    reason:
      typeof signature.key === 'string' &&
      signature.key !== `sha256:${expected}` &&
      !signature.key.startsWith('arn:')
        ? `its record is signed by another key (${signature.key.slice(0, 80).replace(/[^\x20-\x7e]/g, '?')}), not the bag's (sha256:${expected})`
        : `its record's signature does not verify with the bag's key (sha256:${expected}): forged, or changed after signing`,
  };
}

/** Signs with an Ed25519 private key held in memory (read from a PEM file). */
export class LocalSigner implements RecordSigner {
  readonly algorithm = 'ed25519';
  readonly keyName: string;
  private readonly publicPem: string;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw new ConfigError('the local signing key must be an Ed25519 private key (PEM, PKCS#8)');
    }
    this.publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    this.keyName = `sha256:${keyFingerprint(this.publicPem)}`;
  }

  publicKeyPem(): Promise<string> {
    return Promise.resolve(this.publicPem);
  }

  sign(data: Buffer): Promise<Buffer> {
    return Promise.resolve(sign(null, data, this.privateKey));
  }
}

type Env = Record<string, string | undefined>;

/** Dump Bag's folder in the user's config directory: $XDG_CONFIG_HOME/dump-bag, else ~/.config/dump-bag. */
export function configDir(env: Env = process.env): string {
  const base = env.XDG_CONFIG_HOME?.trim() || join(env.HOME?.trim() || homedir(), '.config');
  return join(base, 'dump-bag');
}

/** Where `backup` keeps its signing key when DUMP_BAG_SIGNING_KEY_FILE is not set. */
export function defaultSigningKeyFile(env: Env = process.env): string {
  return join(configDir(env), 'signing-key.pem');
}

/**
 * The local signer from a PEM file; with `create`, a missing file is made (Ed25519, mode 0600) and
 * `onCreated` is told where, so the user knows which file to keep.
 */
export function loadLocalSigner(
  file: string,
  options: { create?: boolean; onCreated?: (file: string) => void } = {},
): LocalSigner {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error: unknown) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) {
      throw new ConfigError(
        `cannot read the signing key ${file}: ${errorMessage(error)} (set DUMP_BAG_SIGNING_KEY_FILE to an Ed25519 PEM private key)`,
      );
    }
    const pair = generateKeyPairSync('ed25519');
    pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // `wx`: two first runs at once must not overwrite each other's key.
    try {
      writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
      options.onCreated?.(file);
    } catch (raced: unknown) {
      if ((raced as NodeJS.ErrnoException).code !== 'EEXIST') throw raced;
      pem = readFileSync(file, 'utf8');
    }
  }
  try {
    return new LocalSigner(createPrivateKey({ key: pem, format: 'pem' }));
  } catch (error: unknown) {
    throw new ConfigError(
      `the signing key ${file} is not an Ed25519 PEM private key: ${errorMessage(error)}`,
    );
  }
}

/** DUMP_BAG_SIGNING_KEY_FILE, else the user's config directory's key (made on first use with `create`). */
export function localSignerFromEnv(
  env: Env = process.env,
  options: { create?: boolean; onCreated?: (file: string) => void } = {},
): LocalSigner {
  const file = readSetting(SETTINGS.signingKeyFile, env);
  if (file) return loadLocalSigner(file);
  return loadLocalSigner(defaultSigningKeyFile(env), options);
}

/** The message `backup` prints when it made a signing key. */
export function createdKeyNotice(file: string): string {
  return `dump-bag: created a signing key for the dump records in ${file} (mode 0600); keep it, and point DUMP_BAG_SIGNING_KEY_FILE at it elsewhere: readers pin its public key`;
}
