import { RemovalPolicy } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { SETTINGS } from '../../functions/core/settings';

/** The variable the dump and API functions read. */
const SIGNING_KEY_ID_ENV = SETTINGS.signingKeyId.env;

export interface SigningKeyProps {
  /** What happens to the key when the stack is deleted; readers need its public half as long as dumps exist. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The KMS asymmetric key that signs every dump record (ECC_NIST_P256, ECDSA_SHA_256). `kms:Sign`
 * goes only to what writes dumps (bindSigner / grantSign); the API gets `kms:GetPublicKey` to serve
 * GET /signing-key (bindPublicKey). The private half never leaves KMS.
 */
export class SigningKey extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: SigningKeyProps = {}) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'Dump Bag: signs the dump records (readers pin its public key)',
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** `kms:Sign` on this key: only for roles that write dumps (the dump function, the Fargate task). */
  grantSign(grantee: iam.IGrantable): iam.Grant {
    return this.key.grant(grantee, 'kms:Sign');
  }

  /** DUMP_BAG_SIGNING_KEY_ID with the right to sign: the dump function's. */
  bindSigner(fn: lambda.Function): void {
    fn.addEnvironment(SIGNING_KEY_ID_ENV, this.key.keyId);
    this.grantSign(fn);
  }

  /** DUMP_BAG_SIGNING_KEY_ID with the right to read the public key only: the API's. */
  bindPublicKey(fn: lambda.Function): void {
    fn.addEnvironment(SIGNING_KEY_ID_ENV, this.key.keyId);
    this.key.grant(fn, 'kms:GetPublicKey');
  }
}
