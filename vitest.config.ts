import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// This run's temporary folder, the workers' TMPDIR, so that the end-of-suite check in global-setup.ts
// sees this run's leftovers only, not those of other runs on the machine.
process.env.DUMP_BAG_TEST_TEMP_ROOT ??= join(tmpdir(), `dump-bag-run-${process.pid}`);
const RUN_TEMP_ROOT = process.env.DUMP_BAG_TEST_TEMP_ROOT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL and one S3 API server for the whole run, started by the tests themselves; at the
    // end it fails the run if a temporary folder or GnuPG daemon of the run is left.
    globalSetup: ['test/support/global-setup.ts'],
    // Each test file's tempDir/gnupgHome folders are removed when it ends.
    setupFiles: ['test/support/cleanup-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: more files at once only make the servers contend.
    maxWorkers: 2,
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      TMPDIR: RUN_TEMP_ROOT,
      DUMP_BAG_TEST_TEMP_ROOT: RUN_TEMP_ROOT,
    },
  },
});
