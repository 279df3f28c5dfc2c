import { clientFromEnv } from '../client/bag-client';
import type { Parsed } from '../command-line';
import type { commandSpecs } from '../command-specs';

export async function run({ values }: Parsed<typeof commandSpecs.keys.options>): Promise<number> {
  process.stdout.write(await clientFromEnv(values.url).keys());
  return 0;
}
