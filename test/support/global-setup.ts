import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalPostgres, startLocalS3 } from '../../cli/local/services';

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
  const root = mkdtempSync(join(tmpdir(), 'dump-bag-test-'));
  const postgres = await startLocalPostgres(join(root, 'postgres'), { persistent: false });
  const s3 = await startLocalS3(join(root, 's3'), 'dump-bag-test');
  project.provide('services', { pgEnv: postgres.env, s3Endpoint: s3.endpoint, s3Directory: s3.directory });
  return async () => {
    await s3.stop();
    await postgres.stop();
    rmSync(root, { recursive: true, force: true });
  };
}
