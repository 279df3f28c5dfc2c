import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalPostgres, startLocalS3 } from '../../cli/local/services';
import { checkAndRemoveTempRoot } from './temp';

export interface Services {
  /** PGHOST, PGPORT, PGUSER, PGPASSWORD of the embedded PostgreSQL 15. */
  readonly pgEnv: Record<string, string>;
  /** The S3 API server on loopback (its own process). */
  readonly s3Endpoint: string;
  /** Where it keeps its files, to check that no object or part was left behind. */
  readonly s3Directory: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: Services;
  }
}

export default async function setup(project: TestProject) {
  // The workers' TMPDIR, named in vitest.config.ts; the services live beside it, not in it.
  const runTempRoot = project.config.env.DUMP_BAG_TEST_TEMP_ROOT;
  if (!runTempRoot) throw new Error('vitest.config.ts sets DUMP_BAG_TEST_TEMP_ROOT; run the tests with it');
  mkdirSync(runTempRoot, { recursive: true });
  const root = mkdtempSync(join(dirname(runTempRoot), 'dump-bag-test-'));
  const postgres = await startLocalPostgres(join(root, 'postgres'), { persistent: false });
  const s3 = await startLocalS3(join(root, 's3'), 'dump-bag-test');
  project.provide('services', { pgEnv: postgres.env, s3Endpoint: s3.endpoint, s3Directory: s3.directory });
  return async () => {
    try {
      await s3.stop();
      await postgres.stop();
      rmSync(root, { recursive: true, force: true });
    } finally {
      // vitest only logs an error thrown here, so the exit status is set too.
      await checkAndRemoveTempRoot(runTempRoot).catch((error: unknown) => {
        process.exitCode = 1;
        throw error;
      });
    }
  };
}
