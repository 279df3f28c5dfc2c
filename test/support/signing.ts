import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LocalSigner, loadLocalSigner } from '../../functions/core/signing';
import { tempDir } from './temp';

/** One bag signing key per test process: every dump a test makes and every bag it serves use it. */
const dir = tempDir('dump-bag-signing-');
export const TEST_SIGNING_KEY_FILE = join(dir, 'bag-signing-key.pem');

/** The test process's own config directory, so pins and created keys never land in the real home. */
export const TEST_CONFIG_HOME = tempDir('dump-bag-config-');

let signer: LocalSigner | undefined;

/** The bag's signer in tests (created on first use). */
export function testSigner(): LocalSigner {
  signer ??= loadLocalSigner(TEST_SIGNING_KEY_FILE, { create: true });
  return signer;
}

/** The bag key's public half in a PEM file, for DUMP_BAG_SIGNING_KEY (an explicit pin). */
export async function testPublicKeyFile(): Promise<string> {
  const file = join(dir, 'bag-signing-public.pem');
  writeFileSync(file, await testSigner().publicKeyPem());
  return file;
}

/** Another Ed25519 key, in a file of its own: a forger's, or a replaced bag key. */
export function otherSigner(): { signer: LocalSigner; file: string } {
  const file = join(tempDir('dump-bag-other-key-'), 'key.pem');
  return { signer: loadLocalSigner(file, { create: true }), file };
}
