// Runs before each test file (vitest setupFiles): whatever the file made with tempDir/gnupgHome is
// removed when it ends, also when a test failed.
import { afterAll } from 'vitest';
import { removeAllTemps } from './temp';

afterAll(removeAllTemps);
