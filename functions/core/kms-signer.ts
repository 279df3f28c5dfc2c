import { createHash, createPublicKey } from 'node:crypto';
import { GetPublicKeyCommand, type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { ConfigError } from './errors';
import { SETTINGS } from './settings';
import { parsePublicKey, type RecordSigner } from './signing';

/** The environment variable that names the KMS signing key (set by the construct's bind helper). */
export const SIGNING_KEY_ID_ENV = SETTINGS.signingKeyId.env;

/** The key id from the environment; a writer without one must not write unsigned records. */
export function readSigningKeyId(env: Record<string, string | undefined> = process.env): string {
  const id = env[SIGNING_KEY_ID_ENV]?.trim();
  if (!id)
    throw new ConfigError(`${SIGNING_KEY_ID_ENV} is not set: name the KMS key that signs dump records`);
  return id;
}

/** KMS signs a RAW message of at most 4096 bytes; a longer one is sent as its SHA-256 (same signature). */
const MAX_RAW_MESSAGE = 4096;

/** Signs with a KMS asymmetric key (ECC_NIST_P256, ECDSA_SHA_256): the private half never leaves KMS. */
export class KmsSigner implements RecordSigner {
  readonly algorithm = 'ecdsa-p256-sha256';
  private publicPem?: Promise<string>;

  constructor(
    private readonly client: KMSClient,
    readonly keyId: string,
  ) {}

  /** The key's ARN or id: the dump role holds kms:Sign only, so it names the key without asking for it. */
  get keyName(): string {
    return this.keyId;
  }

  /** Asked of KMS once per signer: the public half of a key never changes. */
  publicKeyPem(): Promise<string> {
    this.publicPem ??= this.fetchPublicKey();
    this.publicPem.catch(() => {
      this.publicPem = undefined;
    });
    return this.publicPem;
  }

  private async fetchPublicKey(): Promise<string> {
    const answer = await this.client.send(new GetPublicKeyCommand({ KeyId: this.keyId }));
    if (!answer.PublicKey || answer.KeyUsage !== 'SIGN_VERIFY') {
      throw new ConfigError(`the KMS key ${this.keyId} is not a SIGN_VERIFY key with a public key`);
    }
    const pem = createPublicKey({ key: Buffer.from(answer.PublicKey), format: 'der', type: 'spki' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    parsePublicKey(pem, `the KMS key ${this.keyId}`);
    return pem;
  }

  async sign(data: Buffer): Promise<Buffer> {
    const answer = await this.client.send(
      new SignCommand({
        KeyId: this.keyId,
        ...(data.length <= MAX_RAW_MESSAGE
          ? { Message: data, MessageType: 'RAW' as const }
          : { Message: createHash('sha256').update(data).digest(), MessageType: 'DIGEST' as const }),
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    if (!answer.Signature) throw new ConfigError(`KMS returned no signature for key ${this.keyId}`);
    return Buffer.from(answer.Signature);
  }
}
