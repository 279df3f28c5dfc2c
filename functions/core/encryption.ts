import type * as openpgp from 'openpgp';

// The shapes keys.ts loads and the encryption, expiry and rekey code reads; apart so that none of them imports the loader for a type.

/** One recipient's public key, as the dump is encrypted for it. */
export interface RecipientKey {
  /** Upper-case hex fingerprint of the primary key. */
  readonly fingerprint: string;
  /** The primary user id, e.g. `Ada Lovelace <ada@example.com>`. */
  readonly userId: string;
  readonly key: openpgp.PublicKey;
}

/** What a dump is encrypted for: the recipients' keys, a passphrase, or nothing. */
export type Encryption =
  | { readonly mode: 'gpg'; readonly recipients: readonly RecipientKey[] }
  | { readonly mode: 'passphrase'; readonly passphrase: string }
  | { readonly mode: 'none' };
