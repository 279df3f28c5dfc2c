/**
 * Peak RSS, CPU and wall of `dump-bag get DB latest -o FILE` from the local S3 server, under GNU time,
 * for this checkout and others in turn:
 *
 *   node --import tsx bench/get-memory.ts [--rounds 3] [--database dump_bag_bench] [OTHER_CHECKOUT…]
 *
 * Needs a dump of DATABASE kept by the local S3 server (`npm run bench -- --s3 local` leaves one).
 */
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchKeys } from './keys';
import { GNU_TIME, measure } from './measure';
import { startS3Target } from './s3-targets';
import { startServe } from './scenarios/restore';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, '.dump-bag', 'bench');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    database: { type: 'string', default: 'dump_bag_bench' },
  },
});
if (!GNU_TIME) {
  console.error('bench/get-memory.ts needs GNU time (/usr/bin/time)');
  process.exit(2);
}
const checkouts = [root, ...positionals.map((p) => resolve(p))];
const s3 = await startS3Target('local', benchDir);
const keys = await benchKeys(benchDir);
const env = { ...process.env, ...s3.env, DUMP_BAG_ENCRYPTION: 'gpg', DUMP_BAG_PUBLIC_KEYS: keys.publicFile };
const serve = await startServe(root, env).catch(async (error: unknown) => {
  await s3.stop();
  throw error;
});
const out = join(benchDir, 'tmp', 'get-memory.pgdump');
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const checkout of checkouts) {
      rmSync(out, { force: true });
      const run = await measure(
        [process.execPath, join(checkout, 'bin', 'dump-bag.js'), 'get', values.database, 'latest', '-o', out],
        {
          env: { ...env, DUMP_BAG_SECRET_KEY: keys.secretFile, DUMP_BAG_URL: serve.url },
          scratch: join(benchDir, 'tmp'),
        },
      );
      console.log(
        `${round + 1} ${checkout}: exit ${run.code}, ${run.wallSeconds.toFixed(2)} s, peak RSS ${((run.peakRssBytes ?? 0) / 1024 / 1024).toFixed(1)} MiB, CPU ${run.cpuSecondsWithChildren?.toFixed(2)} s`,
      );
    }
  }
} finally {
  rmSync(out, { force: true });
  serve.stop();
  await s3.stop();
}
