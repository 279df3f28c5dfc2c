import type { KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DumpRecord } from '../../functions/core/catalog';
import { DumpBagError, errorMessage, NotFoundError } from '../../functions/core/errors';
import { readSetting, SETTINGS } from '../../functions/core/settings';
import {
  checkRecordSignature,
  configDir,
  displayFingerprint,
  keyFingerprint,
  parsePublicKey,
  type SignatureCheck,
} from '../../functions/core/signing';
import type { BagClient } from './bag-client';

/** The bag's signing key is not the one this reader pinned. */
export class SigningKeyChangedError extends DumpBagError {
  override name = 'SigningKeyChangedError';
}

/** A dump whose record is unsigned or wrongly signed: refused before a byte is downloaded. */
export class RecordSignatureError extends DumpBagError {
  override name = 'RecordSignatureError';
}

/** The key records must be signed by, and where this reader got it. */
export interface PinnedKey {
  readonly key: KeyObject;
  readonly fingerprint: string;
  readonly source: string;
}

interface PinEntry {
  readonly fingerprint: string;
  readonly publicKey: string;
  readonly pinnedAt: string;
}

type Env = Record<string, string | undefined>;

/** Where trust-on-first-use pins live: one JSON object, bag URL → key. */
export function pinFile(env: Env = process.env): string {
  return join(configDir(env), 'signing-keys.json');
}

function readPins(file: string): Record<string, PinEntry> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error: unknown) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new DumpBagError(`cannot read the pinned signing keys in ${file}: ${errorMessage(error)}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not an object');
    return parsed as Record<string, PinEntry>;
  } catch (error: unknown) {
    // A broken pin file must not silently re-trust every bag: say so and stop.
    throw new DumpBagError(
      `the pinned signing keys in ${file} are not valid JSON (${errorMessage(error)}); repair or remove the file`,
    );
  }
}

function writePins(file: string, pins: Record<string, PinEntry>): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(pins, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

/** The bag's URL as pins name it: no trailing slash. */
function bagName(client: BagClient): string {
  return client.base;
}

/**
 * The signing key this reader trusts for a bag: DUMP_BAG_SIGNING_KEY (a PEM file) when set, else
 * the key pinned for this bag's URL, else the key the bag serves now, pinned on first use. A bag
 * whose served key differs from its pin is refused loudly.
 */
export async function pinnedSigningKey(
  client: BagClient,
  env: Env = process.env,
  notice: (message: string) => void = (m) => console.error(m),
): Promise<PinnedKey> {
  const explicit = readSetting(SETTINGS.signingKey, env);
  if (explicit) {
    let pem: string;
    try {
      pem = readFileSync(explicit, 'utf8');
    } catch (error: unknown) {
      throw new DumpBagError(`cannot read DUMP_BAG_SIGNING_KEY ${explicit}: ${errorMessage(error)}`);
    }
    const key = parsePublicKey(pem, `DUMP_BAG_SIGNING_KEY ${explicit}`);
    return { key, fingerprint: keyFingerprint(key), source: `DUMP_BAG_SIGNING_KEY (${explicit})` };
  }
  let served: string;
  try {
    served = await (await client.request('GET', '/signing-key')).text();
  } catch (error: unknown) {
    if (error instanceof NotFoundError) {
      throw new NotFoundError(
        `the bag at ${bagName(client)} serves no signing key (GET /signing-key): set DUMP_BAG_SIGNING_KEY to its PEM public key`,
      );
    }
    throw error;
  }
  const key = parsePublicKey(served, `the signing key served by ${bagName(client)}`);
  const fingerprint = keyFingerprint(key);
  const file = pinFile(env);
  const pins = readPins(file);
  const pinned = Object.hasOwn(pins, bagName(client)) ? pins[bagName(client)] : undefined;
  if (pinned) {
    if (pinned.fingerprint !== fingerprint) {
      throw new SigningKeyChangedError(
        [
          `THE SIGNING KEY OF THE BAG AT ${bagName(client)} HAS CHANGED.`,
          `  pinned: sha256:${displayFingerprint(String(pinned.fingerprint))} (since ${pinned.pinnedAt}, in ${file})`,
          `  served: sha256:${displayFingerprint(fingerprint)}`,
          'Someone may be serving dumps that the bag did not write; nothing was downloaded.',
          `If the bag's key was replaced on purpose, confirm the new fingerprint with its operators, then remove the entry for ${bagName(client)} from ${file} (the next run pins the new key), or set DUMP_BAG_SIGNING_KEY to the new PEM public key.`,
        ].join('\n'),
      );
    }
    return { key, fingerprint, source: `pinned in ${file}` };
  }
  writePins(file, {
    ...pins,
    [bagName(client)]: { fingerprint, publicKey: served, pinnedAt: new Date().toISOString() },
  });
  notice(
    `dump-bag: trusting the signing key of ${bagName(client)} on first use: sha256:${displayFingerprint(fingerprint)} (pinned in ${file}; compare it with the bag's operators)`,
  );
  return { key, fingerprint, source: `pinned in ${file}` };
}

/** Checks a record against the pinned key; `unchecked` when no key could be had (list only). */
export function recordSignatureState(
  record: DumpRecord,
  pin: PinnedKey | undefined,
): SignatureCheck['state'] | 'unchecked' {
  return pin ? checkRecordSignature(record, pin.key).state : 'unchecked';
}

/**
 * Refuses a dump whose record is not signed by the pinned key, naming the dump and why. With
 * `allowUnsigned`, a record with no signature at all is let through with a warning (older dumps);
 * a wrong signature never is.
 */
export function assertRecordSigned(
  record: DumpRecord,
  pin: PinnedKey | undefined,
  options: { allowUnsigned?: boolean; warn?: (message: string) => void } = {},
): void {
  const name = `${record.database} ${record.id}`;
  const warn = options.warn ?? ((m: string) => console.error(m));
  if (!pin) {
    if (options.allowUnsigned) {
      warn(
        `dump-bag: WARNING: no signing key for this bag; reading ${name} without checking who wrote it (--allow-unsigned)`,
      );
      return;
    }
    throw new RecordSignatureError(`refusing ${name}: no signing key to check its record against`);
  }
  const check = checkRecordSignature(record, pin.key);
  if (check.state === 'valid') return;
  if (check.state === 'unsigned' && options.allowUnsigned) {
    warn(
      `dump-bag: WARNING: ${name} has an unsigned record; reading it anyway (--allow-unsigned): nothing proves the bag wrote it`,
    );
    return;
  }
  throw new RecordSignatureError(
    `refusing ${name}: ${check.reason}${check.state === 'unsigned' ? ' (an older dump? --allow-unsigned reads it, if you trust whoever can write to the bucket)' : ''}`,
  );
}

/**
 * The pin for `get` and `verify`: with --allow-unsigned a bag that serves no key is let through
 * (every record then warns); without it, no key is an error.
 */
export async function pinForReading(
  client: BagClient,
  allowUnsigned: boolean,
  env: Env = process.env,
): Promise<PinnedKey | undefined> {
  try {
    return await pinnedSigningKey(client, env);
  } catch (error: unknown) {
    if (allowUnsigned && error instanceof NotFoundError) return undefined;
    throw error;
  }
}
