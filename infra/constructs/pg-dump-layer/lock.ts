/**
 * The layer cache's housekeeping: one build per recipe hash at a time (test files and synths running
 * side by side share the cache), and only the few builds used last are kept.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Blocks the thread: CDK's ILocalBundling.tryBundle is synchronous, so waiting for a lock must be too. */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs body holding a lock folder; a lock whose owner process is gone is taken over. */
export function withLock(lock: string, body: () => void): void {
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      let owner = Number.NaN;
      try {
        owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        // the owner has not written its pid yet
      }
      if (Number.isInteger(owner) && !alive(owner)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      sleep(1000);
    }
  }
  try {
    writeFileSync(join(lock, 'pid'), String(process.pid));
    body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Builds of older recipes pile up as the recipe changes: keep the few used most recently. */
export function pruneBuilds(dir: string, keep = 4): void {
  const builds = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && /^[0-9a-f]{64}$/.test(entry.name))
    .map((entry) => ({ path: join(dir, entry.name), used: statSync(join(dir, entry.name)).mtimeMs }))
    .sort((a, b) => b.used - a.used);
  for (const old of builds.slice(keep)) rmSync(old.path, { recursive: true, force: true });
}
