import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from '../../cli/local/services';
import { measure, median, round } from '../measure';
import { withClient } from '../workload';
import type { KeptDumpScenario } from './kept-dump';

export interface RestoreComparison {
  readonly command: string;
  readonly fromBucketMedianSeconds: number;
  readonly fromFileMedianSeconds: number;
  /**
   * pg_restore from a file's wall over the bucket restore's beside it, the median of the rounds: at
   * least 0.9 is the target. Each pair ran minutes apart at most, so the machine's drift cancels better
   * than in a ratio of the two medians.
   */
  readonly speedRelativeToFile: number;
  readonly speedRange: readonly [number, number];
  readonly fromBucket: number[];
  readonly fromFile: number[];
}

async function recreate(env: NodeJS.ProcessEnv, database: string): Promise<void> {
  await withClient(env, 'postgres', async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)}`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  });
}

/** `dump-bag serve` on a free loopback port, for `dump-bag get`; resolves once it answers. */
export async function startServe(
  root: string,
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'bin', 'dump-bag.js'), 'serve', '--port', String(port)], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`dump-bag serve exited with code ${child.exitCode}`);
    const answered = await fetch(`${url}/recipients`).then(
      (r) => r.ok,
      () => false,
    );
    if (answered) return { url, stop: () => child.kill('SIGTERM') };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error('dump-bag serve did not answer within 20 s');
}

/**
 * `dump-bag get DB latest --restore` (presigned download → SHA-256 and signature checks → decrypt →
 * pg_restore --single-transaction) against pg_restore of the plain archive from a local file, in
 * turn, into a fresh database each time. Needs an S3 that keeps the dump: the local S3 server.
 */
export async function restoreComparison(
  options: KeptDumpScenario & {
    readonly plainFile: string;
    readonly pgRestore: string;
    readonly runs: number;
    /** A folder for V8 CPU profiles of `get --restore` (node --cpu-prof). */
    readonly profile?: string;
  },
): Promise<RestoreComparison> {
  const { env, scratch } = options;
  const target = `${options.database}_restore`;
  const serve = await startServe(options.root, {
    ...env,
    ...options.s3.env,
    DUMP_BAG_ENCRYPTION: 'gpg',
    DUMP_BAG_PUBLIC_KEYS: options.keys.publicFile,
  });
  const fromBucket: number[] = [];
  const fromFile: number[] = [];
  try {
    for (let i = 0; i < options.runs; i++) {
      await recreate(env, target);
      const got = await measure(
        [
          process.execPath,
          ...(options.profile ? ['--cpu-prof', '--cpu-prof-dir', resolve(options.profile)] : []),
          join(options.root, 'bin', 'dump-bag.js'),
          'get',
          options.database,
          'latest',
          '--restore',
          `dbname=${target}`,
          '--key',
          options.keys.secretFile,
          '--url',
          serve.url,
        ],
        { env: { ...env, DUMP_BAG_SECRET_KEY: undefined }, scratch },
      );
      if (got.code !== 0) throw new Error(`dump-bag get --restore exited ${got.code}: ${got.stderr}`);
      fromBucket.push(got.wallSeconds);
      options.log(`restore ${i + 1}/${options.runs}: dump-bag get --restore ${got.wallSeconds.toFixed(2)} s`);

      await recreate(env, target);
      const local = await measure(
        [
          options.pgRestore,
          '--no-owner',
          '--single-transaction',
          '--exit-on-error',
          '-d',
          target,
          options.plainFile,
        ],
        { env, scratch },
      );
      if (local.code !== 0) throw new Error(`pg_restore from a file exited ${local.code}: ${local.stderr}`);
      fromFile.push(local.wallSeconds);
      options.log(
        `restore ${i + 1}/${options.runs}: pg_restore from a local file ${local.wallSeconds.toFixed(2)} s`,
      );
    }
  } finally {
    serve.stop();
  }
  const ratios = fromBucket.map((bucket, i) => (fromFile[i] as number) / bucket);
  return {
    command: 'dump-bag get DB latest --restore, against pg_restore --single-transaction FILE',
    fromBucketMedianSeconds: round(median(fromBucket)),
    fromFileMedianSeconds: round(median(fromFile)),
    speedRelativeToFile: round(median(ratios), 3),
    speedRange: [round(Math.min(...ratios), 3), round(Math.max(...ratios), 3)],
    fromBucket: fromBucket.map((s) => round(s, 3)),
    fromFile: fromFile.map((s) => round(s, 3)),
  };
}
