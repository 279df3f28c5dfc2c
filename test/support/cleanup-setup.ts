// Runs before each test file (vitest setupFiles): whatever the file made with tempDir/gnupgHome is
// removed when it ends, also when a test failed; so is the RDS CA file the core writes for libpq when a
// test's server is not on this machine (its exit hook does not run when vitest ends a worker).
import { afterAll } from 'vitest';
import { removeRdsCaFile } from '../../functions/core/db-tls';
import { removeAllTemps } from './temp';

afterAll(async () => {
  removeRdsCaFile();
  await removeAllTemps();
});
