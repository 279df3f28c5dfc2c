import { expiryLine, keyExpiry } from '../../functions/core/key-expiry';
import { keysFromText } from '../../functions/core/keys';
import { clientFromEnv } from '../client/bag-client';
import type { Parsed } from '../command-line';
import type { commandSpecs } from '../command-specs';

export async function run({ values }: Parsed<typeof commandSpecs.keys.options>): Promise<number> {
  const document = await clientFromEnv(values.url).keys();
  process.stdout.write(document);
  // On stderr, so that `dump-bag keys | gpg --import` still reads the keys alone.
  for (const key of await keysFromText(document, "the bag's /keys")) {
    process.stderr.write(`${expiryLine(await keyExpiry(key))}\n`);
  }
  return 0;
}
