import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { OLD_GENERATION_GROWING_PERCENT } from '../functions/core/heap-settings';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const moduleUrl = pathToFileURL(join(root, 'functions', 'core', 'heap-settings.ts')).href;

/** Runs `body` (an ES module's code) in a fresh Node process, after tuneHeapForStreaming() when `tuned`. */
function inFreshProcess(tuned: boolean, body: string, v8Flags: readonly string[] = []): string {
  const script = `
    import { tuneHeapForStreaming } from ${JSON.stringify(moduleUrl)};
    if (${tuned}) tuneHeapForStreaming();
    ${body}
  `;
  return execFileSync(
    process.execPath,
    [...v8Flags, '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
}

/**
 * Keeps 50,000 small objects alive in a ring while making 3 million, as a dump's stream keeps its
 * Buffers alive for a while; prints the young generation's size after.
 */
function youngGenerationAfterChurn(tuned: boolean): number {
  const out = inFreshProcess(
    tuned,
    `
    import { getHeapSpaceStatistics } from 'node:v8';
    const ring = new Array(50_000);
    for (let i = 0; i < 3_000_000; i++) ring[i % ring.length] = { i, b: Buffer.allocUnsafe(64) };
    console.log(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
  `,
  );
  return Number(out.trim());
}

/**
 * A dump's shape of allocation: a 10 MB JavaScript heap that hardly grows, and 64 KiB Buffers passing
 * outside it (1 MiB every 4 ms for two seconds, the last 19 MiB of them alive). Returns the growing
 * factor of each old-generation limit V8 set meanwhile, from its --trace-gc-verbose lines as V8 11 and 12
 * (Node 20 and 22) write them: "[HeapController] Limit: old size: 14244 KB, new limit: 23442 KB (1.1)".
 */
function oldGenerationFactorsUnderBufferChurn(tuned: boolean): number[] {
  const out = inFreshProcess(
    tuned,
    `
    import { setTimeout as sleep } from 'node:timers/promises';
    const heap = Array.from({ length: 100_000 }, (_, i) => ({ i, name: 'item ' + i }));
    const ring = new Array(300);
    for (let i = 0; i < 500; i++) {
      for (let k = 0; k < 16; k++) ring[(i * 16 + k) % ring.length] = Buffer.allocUnsafeSlow(64 * 1024);
      await sleep(4);
    }
    console.log('kept', heap.length);
  `,
    ['--trace-gc-verbose'],
  );
  return [...out.matchAll(/\[HeapController\] Limit: .* \(([\d.]+)\)$/gm)].map((m) => Number(m[1]));
}

describe('tuneHeapForStreaming', () => {
  it('holds the young generation at a few MiB where V8 would grow it to its ceiling', () => {
    const grown = youngGenerationAfterChurn(false);
    const held = youngGenerationAfterChurn(true);
    // Without the setting, the same churn grows it (V8's ceiling is 16 MiB a semi-space on 64-bit).
    expect(grown).toBeGreaterThanOrEqual(16 * 2 ** 20);
    expect(held).toBeLessThanOrEqual(4 * 2 ** 20);
  }, 60_000);

  it('keeps the old generation growing by a fixed factor where Buffer churn would bring V8 down to 1.1', () => {
    // Without the setting V8 shrinks the slack: the mark-compact storm of a reference backup. When it
    // does depends on the machine's load, so up to three tries.
    let untuned: number[] = [];
    for (let attempt = 0; attempt < 3 && !(Math.min(...untuned) < 2); attempt++)
      untuned = oldGenerationFactorsUnderBufferChurn(false);
    const tuned = oldGenerationFactorsUnderBufferChurn(true);
    expect(Math.min(...untuned)).toBeLessThan(2);
    expect(tuned.length).toBeGreaterThanOrEqual(2);
    expect(new Set(tuned)).toEqual(new Set([1 + OLD_GENERATION_GROWING_PERCENT / 100]));
  }, 120_000);
});
