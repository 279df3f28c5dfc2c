/**
 * Builds the pg_dump layer locally, as the construct's local path does, outside a synth:
 *
 *   npx tsx infra/constructs/pg-dump-layer/assemble.ts [--architecture arm64|x86_64] [--majors 15,17] --out DIR
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { assembleLayer } from './local-build';
import { type LayerArchitecture, PG_DUMP_RECIPE_DIR, readPins } from './pins';

export const USAGE =
  'usage: npx tsx infra/constructs/pg-dump-layer/assemble.ts [--architecture arm64|x86_64] [--majors 15,17,18] --out DIR\n';

/** Runs the command line; returns the exit status (2: usage, 1: cannot build, 0: built). */
export function main(argv: readonly string[]): number {
  let values: { architecture?: string; majors?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        architecture: { type: 'string', default: 'arm64' },
        majors: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error: unknown) {
    process.stderr.write(`pg-dump layer: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const architecture = values.architecture;
  if ((architecture !== 'arm64' && architecture !== 'x86_64') || !values.out) {
    const why = values.out
      ? `--architecture must be arm64 or x86_64, not ${architecture}`
      : '--out is required';
    process.stderr.write(`pg-dump layer: ${why}\n${USAGE}`);
    return 2;
  }
  const pinned = [...readPins(PG_DUMP_RECIPE_DIR).keys()];
  const majors = values.majors ? values.majors.split(',').map((major) => Number(major.trim())) : pinned;
  const unknown = majors.filter((major) => !pinned.includes(major));
  if (unknown.length > 0) {
    process.stderr.write(
      `pg-dump layer: --majors ${unknown.join(',')} not pinned in layers/pg-dump/versions.txt (it pins ${pinned.join(', ')})\n${USAGE}`,
    );
    return 2;
  }
  const result = assembleLayer({
    recipeDir: PG_DUMP_RECIPE_DIR,
    outputDir: resolve(values.out),
    architecture: architecture as LayerArchitecture,
    majors,
  });
  if (!result.ok) {
    process.stderr.write(`pg-dump layer: cannot assemble locally: ${result.reason}\n`);
    return 1;
  }
  process.stderr.write(`pg-dump layer: ${resolve(values.out, 'pg')} is ready\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
