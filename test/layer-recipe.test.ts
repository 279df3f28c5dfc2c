/**
 * The pg_dump layer's recipe and construct without building it: what the asset hash covers, how the
 * pins and props are validated, and the assemble command's usage. The built layer: layer.test.ts.
 */
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { afterAll, describe, expect, it } from 'vitest';
import { PG_DUMP_RECIPE_DIR, PgDumpLayer, type PgDumpLayerProps } from '../infra/constructs/pg-dump-layer';
import { main } from '../infra/constructs/pg-dump-layer/assemble';
import {
  RECIPE_DOCS,
  RECIPE_FILES,
  readDebianLibraries,
  readPins,
  recipeHash,
  strayRecipeFiles,
} from '../infra/constructs/pg-dump-layer/pins';

const PINNED = [...readPins(PG_DUMP_RECIPE_DIR).keys()].sort((a, b) => a - b);
const scratch = mkdtempSync(join(tmpdir(), 'dump-bag-layer-recipe-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Synthesizes a stack holding one PgDumpLayer; `bundle: false` skips building it (the hash is still computed). */
function synth(props: PgDumpLayerProps, bundle = false) {
  const outdir = mkdtempSync(join(scratch, 'cdk-'));
  const app = new App({ outdir, context: bundle ? {} : { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'LayerStack');
  new PgDumpLayer(stack, 'PgDump', props);
  const layer = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::LayerVersion'))[0] as {
    Properties: { Content: { S3Key: string } };
  };
  app.synth();
  return { hash: layer.Properties.Content.S3Key.replace(/\.zip$/, '') };
}

/** A copy of the recipe folder to edit. */
function recipeCopy(name: string): string {
  const recipe = join(scratch, name);
  cpSync(PG_DUMP_RECIPE_DIR, recipe, { recursive: true });
  return recipe;
}

describe('the recipe', () => {
  it('pins 15, 17 and 18, 17.11 by its path in Debian’s pool (the index names an unserved 17.12)', () => {
    expect(PINNED).toEqual([15, 17, 18]);
    expect(readPins(PG_DUMP_RECIPE_DIR).get(17)).toEqual({
      major: 17,
      version: '17.11',
      sha256: 'dd27f2b3c59e73ed14aa3324901242bf69a032a6347805f274e6260322d42979',
      debian: { kind: 'pool', path: 'pool/main/p/postgresql-17/postgresql-17_17.11.orig.tar.bz2' },
    });
    expect(readDebianLibraries()).toEqual(
      expect.arrayContaining(['libssl3', 'zlib1g', 'liblz4-1', 'libzstd1']),
    );
  });

  it('is a folder of data: the recipe files and its README, nothing else (no TypeScript)', () => {
    expect(strayRecipeFiles(PG_DUMP_RECIPE_DIR)).toEqual([]);
    expect(readdirSync(PG_DUMP_RECIPE_DIR).sort()).toEqual([...RECIPE_FILES, ...RECIPE_DOCS].sort());
    const recipe = recipeCopy('recipe-stray');
    writeFileSync(join(recipe, 'assemble.ts'), 'export {};\n');
    expect(strayRecipeFiles(recipe)).toEqual(['assemble.ts']);
  });

  it.each([
    ['15 15.18 abc postgresql-15=15.18-1', /versions.txt line 1 is not/],
    [
      `17 17.11 ${'a'.repeat(64)} pool/main/p/postgresql-17/postgresql-17_17.10.orig.tar.bz2`,
      /line 1 is not/,
    ],
    [`17 17.11 ${'a'.repeat(64)} postgresql-18=18.6-3`, /line 1 is not/],
    [
      `17 17.11 ${'a'.repeat(64)} postgresql-17=17.11-1\n17 17.12 ${'b'.repeat(64)} postgresql-17=17.12-1`,
      /line 2/,
    ],
  ])('refuses the pin %j', (line, message) => {
    const recipe = recipeCopy(`recipe-bad-pin-${Math.random().toString(36).slice(2)}`);
    writeFileSync(join(recipe, 'versions.txt'), `${line}\n`);
    expect(() => readPins(recipe)).toThrow(message);
    expect(() => new PgDumpLayer(new Stack(new App(), 'Bad'), 'PgDump', { recipeDirectory: recipe })).toThrow(
      message,
    );
  });
});

describe('a recipe folder that lacks a recipe file', () => {
  it('is refused at synth, naming the file and where to take it from', () => {
    const recipe = recipeCopy('recipe-without-stdout-buffer');
    rmSync(join(recipe, 'stdout-buffer.c'));
    expect(() => new PgDumpLayer(new Stack(new App(), 'Bad'), 'PgDump', { recipeDirectory: recipe })).toThrow(
      /lacks stdout-buffer\.c: copy them from the repository's layers\/pg-dump/,
    );
  });
});

describe('the PgDumpLayer asset hash', () => {
  const base = synth({}).hash;

  it('keeps its asset hash across synths and changes it with the recipe, majors or architecture', () => {
    expect(synth({}).hash).toBe(base);
    expect(synth({ majors: [...PINNED].reverse() }).hash).toBe(base);
    expect(synth({ bundling: 'docker' }).hash).toBe(base);

    const recipe = recipeCopy('recipe');
    expect(synth({ recipeDirectory: recipe }).hash).toBe(base);
    appendFileSync(join(recipe, 'README.md'), '\nDocumentation only.\n');
    expect(synth({ recipeDirectory: recipe }).hash).toBe(base);
    appendFileSync(join(recipe, 'build.sh'), '\n# a changed recipe\n');
    expect(synth({ recipeDirectory: recipe }).hash).not.toBe(base);

    expect(synth({ majors: [PINNED[0] as number] }).hash).not.toBe(base);
    expect(synth({ architecture: lambda.Architecture.X86_64 }).hash).not.toBe(base);
  });

  it('covers exactly the recipe files: README and TypeScript edits keep it, versions.txt or build.sh edits change it', () => {
    const recipe = recipeCopy('recipe-docs');
    appendFileSync(join(recipe, 'README.md'), '\nA new section.\n');
    // The assembling TypeScript, even when it sits beside the recipe, is not recipe.
    writeFileSync(join(recipe, 'assemble.ts'), '// a changed usage message\n');
    const tsDir = join(PG_DUMP_RECIPE_DIR, '../../infra/constructs/pg-dump-layer');
    for (const file of readdirSync(tsDir)) cpSync(join(tsDir, file), join(recipe, file));
    expect(synth({ recipeDirectory: recipe }).hash).toBe(base);

    for (const edited of ['versions.txt', 'build.sh']) {
      const changed = recipeCopy(`recipe-${edited}`);
      appendFileSync(join(changed, edited), '\n# changed\n');
      expect(synth({ recipeDirectory: changed }).hash, edited).not.toBe(base);
    }
    // And every other recipe file counts too.
    const original = recipeHash(PG_DUMP_RECIPE_DIR, 'arm64', PINNED);
    for (const edited of RECIPE_FILES) {
      const changed = recipeCopy(`recipe-each-${edited}`);
      appendFileSync(join(changed, edited), '\n# changed\n');
      expect(recipeHash(changed, 'arm64', PINNED), edited).not.toBe(original);
    }
    expect(recipeHash(recipeCopy('recipe-same'), 'arm64', PINNED)).toBe(original);
  });
});

describe('the PgDumpLayer construct', () => {
  it.each([
    [{ majors: [] }, /`majors` is empty/],
    [{ majors: [16] }, /`majors` includes 16, which layers\/pg-dump\/versions.txt does not pin/],
    [{ majors: [15, 15] }, /`majors` lists 15 twice/],
    [
      { architecture: lambda.Architecture.custom('riscv64') },
      /`architecture` must be .*ARM_64 or X86_64; got 'riscv64'/,
    ],
    [{ bundling: 'podman' as 'docker' }, /`bundling` must be 'auto', 'docker' or 'local'; got 'podman'/],
  ] as [PgDumpLayerProps, RegExp][])('rejects %o', (props, message) => {
    const stack = new Stack(new App(), 'Invalid');
    expect(() => new PgDumpLayer(stack, 'PgDump', props)).toThrow(message);
  });

  it.each([
    [
      'postgresql-14=14.0-0+nonexistent1',
      /Debian's archive does not serve postgresql-14=14.0-0\+nonexistent1/,
    ],
    // A pool path no archive serves: every deb-src archive was asked before giving up.
    [
      'pool/main/p/postgresql-14/postgresql-14_14.0.orig.tar.bz2',
      /Debian's archive does not serve pool\/main\/p\/postgresql-14\/postgresql-14_14.0.orig.tar.bz2 \(http:\/\/deb.debian.org\/debian: .*404.*; http:\/\/deb.debian.org\/debian-security: .*404/,
    ],
  ])(
    "with bundling 'local', fails the synth saying why it cannot fetch %s rather than trying Docker",
    (origin, message) => {
      const recipe = recipeCopy(`recipe-unservable-${origin.length}`);
      expect(readFileSync(join(recipe, 'versions.txt'), 'utf8')).not.toMatch(/^14 /m);
      appendFileSync(join(recipe, 'versions.txt'), `\n14 14.0 ${'0'.repeat(64)} ${origin}\n`);
      expect(() => synth({ recipeDirectory: recipe, majors: [14], bundling: 'local' }, true)).toThrow(
        message,
      );
    },
  );
});

describe('the assemble command', () => {
  it.each([
    [['--out'], /--out/],
    [['--bogus', '--out', 'x'], /Unknown option '--bogus'/],
    [[], /--out is required/],
    [['--architecture', 'mips', '--out', 'x'], /--architecture must be arm64 or x86_64, not mips/],
    [['--majors', '16', '--out', 'x'], /--majors 16 not pinned/],
  ])('%j is a usage error (status 2) that prints the usage', (argv, message) => {
    const stderr: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => stderr.push(chunk) > 0) as typeof process.stderr.write;
    try {
      expect(main(argv)).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(stderr.join('')).toMatch(message);
    expect(stderr.join('')).toContain('usage: npx tsx infra/constructs/pg-dump-layer/assemble.ts');
  });

  it(
    'builds (or copies from the cache) every pinned major through npx tsx',
    () => {
      const out = join(scratch, 'assembled');
      const result = spawnSync(
        'npx',
        ['tsx', 'infra/constructs/pg-dump-layer/assemble.ts', '--architecture', 'x86_64', '--out', out],
        { cwd: join(PG_DUMP_RECIPE_DIR, '../..'), encoding: 'utf8', timeout: 50 * 60_000 },
      );
      expect(result.stderr).toContain(`${join(out, 'pg')} is ready`);
      expect(result.status).toBe(0);
      for (const major of PINNED) {
        expect(readdirSync(join(out, 'pg', String(major), 'bin')).sort()).toEqual([
          'pg_dump',
          'pg_dumpall',
          'pg_restore',
        ]);
      }
    },
    50 * 60_000,
  );
});
