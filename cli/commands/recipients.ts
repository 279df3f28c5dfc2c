import { parseArgs } from 'node:util';
import { clientFromEnv } from '../client/bag-client';

export const usage =
  'dump-bag recipients [--url URL]   the fingerprints dumps are encrypted for, comma-separated';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { url: { type: 'string' } } });
  process.stdout.write(await clientFromEnv(values.url).recipients());
  return 0;
}
