import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const moduleUrl = pathToFileURL(join(root, 'functions', 'core', 'young-generation.ts')).href;

/**
 * A fresh Node process that keeps 50,000 small objects alive in a ring while making 3 million, as a
 * dump's stream keeps its Buffers alive for a while; it prints the young generation's size after.
 */
function youngGenerationAfterChurn(keepSmall: boolean): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { keepYoungGenerationSmall } from ${JSON.stringify(moduleUrl)};
    if (${keepSmall}) keepYoungGenerationSmall();
    const ring = new Array(50_000);
    for (let i = 0; i < 3_000_000; i++) ring[i % ring.length] = { i, b: Buffer.allocUnsafe(64) };
    console.log(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  });
  return Number(out.trim());
}

describe('keepYoungGenerationSmall', () => {
  it('holds the young generation at a few MiB where V8 would grow it to its ceiling', () => {
    const grown = youngGenerationAfterChurn(false);
    const held = youngGenerationAfterChurn(true);
    // Without the setting, the same churn grows it (V8's ceiling is 16 MiB a semi-space on 64-bit).
    expect(grown).toBeGreaterThanOrEqual(16 * 2 ** 20);
    expect(held).toBeLessThanOrEqual(4 * 2 ** 20);
  }, 60_000);
});
