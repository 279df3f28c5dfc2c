/**
 * `--layer`: the bench runs the pg_dump and pg_restore of the pg_dump layer for this machine's
 * architecture, built as the construct builds it (or taken from its cache), of the major the dump
 * function picks for the server: the binaries AWS runs, not the distribution's.
 */
import { join } from 'node:path';
import { planBackup } from '../functions/core/databases';
import { connectionFromEnv } from '../functions/core/libpq';
import { resolvePgDump } from '../functions/core/pg-dump';
import { assembleLayer } from '../infra/constructs/pg-dump-layer/local-build';
import { PG_DUMP_RECIPE_DIR, readPins } from '../infra/constructs/pg-dump-layer/pins';

export interface LayerTools {
  readonly pgDump: string;
  /** pg_dump's neighbour; both find the layer's libraries through their $ORIGIN rpath. */
  readonly pgRestore: string;
}

export async function layerTools(env: NodeJS.ProcessEnv, scratch: string): Promise<LayerTools> {
  const architecture = process.arch === 'arm64' ? 'arm64' : 'x86_64';
  const outputDir = join(scratch, `layer-${architecture}`);
  const built = assembleLayer({
    recipeDir: PG_DUMP_RECIPE_DIR,
    outputDir,
    architecture,
    majors: [...readPins(PG_DUMP_RECIPE_DIR).keys()],
  });
  if (!built.ok)
    throw new Error(`--layer: the ${architecture} pg_dump layer cannot be built here: ${built.reason}`);
  // The server's major as the dump function reads it; no database is listed.
  const { server } = await planBackup(connectionFromEnv(env), { databases: [] });
  const binary = resolvePgDump({ pgRoot: join(outputDir, 'pg') }, server.major);
  return { pgDump: binary.path, pgRestore: join(binary.path, '..', 'pg_restore') };
}

/** `options` with the layer's tools, and `env` telling the backup to take the same pg_dump. */
export async function withLayerTools<T extends { readonly pgDump: string; readonly pgRestore: string }>(
  options: T,
  env: NodeJS.ProcessEnv,
  scratch: string,
  log: (line: string) => void,
): Promise<{ options: T; env: NodeJS.ProcessEnv }> {
  const layer = await layerTools(env, scratch);
  log(`pg_dump: ${layer.pgDump}`);
  return {
    options: { ...options, pgDump: layer.pgDump, pgRestore: layer.pgRestore },
    env: { ...env, DUMP_BAG_PG_DUMP: layer.pgDump },
  };
}
