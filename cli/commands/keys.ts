import { parseArgs } from 'node:util';
import { clientFromEnv } from '../client/bag-client';

export const usage = "dump-bag keys [--url URL]   the bag's public keys, armored (pipe into gpg --import)";

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { url: { type: 'string' } } });
  process.stdout.write(await clientFromEnv(values.url).keys());
  return 0;
}
