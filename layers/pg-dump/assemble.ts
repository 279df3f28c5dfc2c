import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type LayerArchitecture = 'arm64' | 'x86_64';

export interface SourcePin {
  readonly major: number;
  readonly version: string;
  readonly sha256: string;
  /** `postgresql-<major>=<debian version>`: where the local path finds the same tarball. */
  readonly debianSource: string;
}

/** The pinned sources of versions.txt, by major. */
export function readPins(recipeDir: string): Map<number, SourcePin> {
  const pins = new Map<number, SourcePin>();
  const text = readFileSync(join(recipeDir, 'versions.txt'), 'utf8');
  for (const line of text.split('\n')) {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    if (fields.length < 4) continue;
    const [major, version, sha256, debianSource] = fields as [string, string, string, string];
    pins.set(Number(major), { major: Number(major), version, sha256, debianSource });
  }
  return pins;
}

export interface AssembleOptions {
  readonly recipeDir: string;
  readonly outputDir: string;
  readonly architecture: LayerArchitecture;
  readonly majors: readonly number[];
}

export type AssembleResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Builds the layer's `pg/<major>/{bin,lib}` into outputDir without Docker. */
export function assembleLayer(_options: AssembleOptions): AssembleResult {
  return { ok: false, reason: 'the local path is not written yet' };
}
