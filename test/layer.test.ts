import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../functions/core/errors';
import { resolvePgDump } from '../functions/core/pg-dump';
import { PG_DUMP_RECIPE_DIR, PgDumpLayer, type PgDumpLayerProps } from '../infra/constructs/pg-dump-layer';
import { readPins } from '../layers/pg-dump/assemble';
import { createDatabase, pgClient, services, snapshot } from './support/env';
import { BASE_GLIBC, elfFacts, elfFiles, glibcOnlyRoot, newerThanAl2023 } from './support/layer-elf';

const PINNED = [...readPins(PG_DUMP_RECIPE_DIR).keys()].sort((a, b) => a - b);
const DB = 'layer test ✓';
const ROWS = 500;
const scratch = mkdtempSync(join(tmpdir(), 'dump-bag-layer-'));

/** Synthesizes a stack holding one PgDumpLayer; `bundle: false` skips building it (the hash is still computed). */
function synth(props: PgDumpLayerProps, bundle: boolean) {
  const outdir = mkdtempSync(join(scratch, 'cdk-'));
  const app = new App({ outdir, context: bundle ? {} : { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'LayerStack');
  const construct = new PgDumpLayer(stack, 'PgDump', props);
  const template = Template.fromStack(stack);
  const layer = Object.values(template.findResources('AWS::Lambda::LayerVersion'))[0] as {
    Properties: { Content: { S3Key: string }; Description: string };
  };
  const hash = layer.Properties.Content.S3Key.replace(/\.zip$/, '');
  app.synth();
  return { construct, template, hash, assetDir: join(outdir, `asset.${hash}`) };
}

/** How this machine runs the layer's binaries: natively, or arm64 ones through qemu-user on x86_64. */
function runner(): (binary: string, args: readonly string[]) => string[] {
  if (process.arch === 'arm64') return (binary, args) => [binary, ...args];
  const qemu = '/usr/bin/qemu-aarch64-static';
  if (!existsSync(qemu)) {
    throw new Error('the arm64 layer runs here through qemu-user: apt-get install qemu-user-static');
  }
  const root = glibcOnlyRoot(join(scratch, 'glibc-root'), '/usr/aarch64-linux-gnu/lib');
  return (binary, args) => [qemu, '-L', root, binary, ...args];
}

/** Only the libpq variables of the test server: nothing else of this machine's environment. */
function serverEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(services().pgEnv)) if (key.startsWith('PG')) env[key] = value;
  return env;
}

let built: ReturnType<typeof synth>;
let pgRoot: string;
let argv: ReturnType<typeof runner>;

/** Runs a layer binary with nothing of this machine's environment but what it is given. */
function runTool(
  major: number,
  tool: string,
  args: readonly string[],
  extraEnv: Record<string, string> = {},
) {
  const [command, ...rest] = argv(join(pgRoot, String(major), 'bin', tool), args);
  const env = {
    PATH: '/nonexistent',
    LD_LIBRARY_PATH: join(pgRoot, String(major), 'lib'),
    ...extraEnv,
  };
  return spawnSync(command as string, rest, { env, maxBuffer: 256 * 1024 * 1024, timeout: 300_000 });
}

beforeAll(async () => {
  // The first build on a fresh machine compiles pg_dump (a few minutes); later ones copy the cached build.
  built = synth({ bundling: 'local' }, true);
  pgRoot = join(built.assetDir, 'pg');
  argv = runner();
  await createDatabase(
    DB,
    `CREATE TABLE items (id int PRIMARY KEY, note text, amount numeric(12,2), tags jsonb, at timestamptz);
     INSERT INTO items SELECT i, 'note ' || md5(i::text), i * 1.25, jsonb_build_object('n', i, 'odd', i % 2 = 1),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' FROM generate_series(1, ${ROWS}) AS i;
     CREATE VIEW big_items AS SELECT * FROM items WHERE amount > 300;`,
  );
}, 20 * 60_000);

afterAll(async () => {
  const admin = await pgClient();
  try {
    for (const major of PINNED) {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(`${DB} restored ${major}`)}`);
    }
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(DB)}`);
  } finally {
    await admin.end();
  }
  rmSync(scratch, { recursive: true, force: true });
});

describe('the assembled layer', () => {
  it('holds pg_dump, pg_restore and their libraries for every pinned major, as /opt/pg/<major> expects', () => {
    const majors = readdirSync(pgRoot).filter((name) => /^\d+$/.test(name));
    expect(majors.map(Number).sort((a, b) => a - b)).toEqual(PINNED);
    for (const major of majors) {
      expect(readdirSync(join(pgRoot, major, 'bin')).sort()).toEqual(['pg_dump', 'pg_restore']);
      expect(readdirSync(join(pgRoot, major, 'lib'))).toContain('libpq.so.5');
    }
    const sources = readFileSync(join(pgRoot, 'SOURCES.txt'), 'utf8');
    for (const pin of readPins(PG_DUMP_RECIPE_DIR).values()) expect(sources).toContain(pin.sha256);
  });

  it('is built for arm64: every ELF in it is AArch64', () => {
    const files = elfFiles(pgRoot);
    expect(files.length).toBeGreaterThanOrEqual(PINNED.length * 4);
    for (const file of files) expect(`${file}: ${elfFacts(file).machine}`).toBe(`${file}: AArch64`);
  });

  it('needs no glibc symbol newer than Amazon Linux 2023’s 2.34', () => {
    const tooNew: string[] = [];
    const seen = new Set<string>();
    for (const file of elfFiles(pgRoot)) {
      for (const version of elfFacts(file).glibcVersions) {
        seen.add(version);
        if (newerThanAl2023(version)) tooNew.push(`${file} needs ${version}`);
      }
    }
    expect(tooNew).toEqual([]);
    // The check must have seen versioned imports at all, or it proves nothing.
    expect(seen).toContain('GLIBC_2.17');
    // And it does catch a too-new import: Debian 12's libgcc_s asks for _dl_find_object@GLIBC_2.35.
    const libgcc = ['/usr/aarch64-linux-gnu/lib/libgcc_s.so.1', '/lib/aarch64-linux-gnu/libgcc_s.so.1'].find(
      (path) => existsSync(path),
    );
    const control = elfFacts(libgcc ?? 'libgcc_s.so.1 for arm64 is missing').glibcVersions;
    expect(control.filter(newerThanAl2023)).toEqual(['GLIBC_2.35']);
  });

  it('carries every library its binaries load, except base glibc', () => {
    const missing: string[] = [];
    for (const major of PINNED) {
      const home = join(pgRoot, String(major));
      const shipped = new Set(readdirSync(join(home, 'lib')));
      for (const file of elfFiles(home)) {
        for (const name of elfFacts(file).needed) {
          if (!shipped.has(name) && !BASE_GLIBC.has(name)) missing.push(`${file} needs ${name}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('finds its libraries through an $ORIGIN rpath, even without LD_LIBRARY_PATH', () => {
    for (const major of PINNED) {
      for (const tool of ['pg_dump', 'pg_restore']) {
        expect(elfFacts(join(pgRoot, String(major), 'bin', tool)).rpath).toEqual(['$ORIGIN/../lib']);
      }
      const pin = readPins(PG_DUMP_RECIPE_DIR).get(major);
      const result = runTool(major, 'pg_dump', ['--version'], { LD_LIBRARY_PATH: '' });
      expect(result.stderr.toString()).toBe('');
      expect(result.stdout.toString().trim()).toBe(`pg_dump (PostgreSQL) ${pin?.version}`);
    }
  });

  it.each(PINNED)(
    'pg_dump %i dumps a real database from the layer folder with a scrubbed environment',
    async (major) => {
      const connection = serverEnv();
      const dump = runTool(
        major,
        'pg_dump',
        ['--format=custom', '--no-owner', '--compress=1', `--dbname=${DB}`],
        connection,
      );
      expect(dump.stderr.toString()).toBe('');
      expect(dump.status).toBe(0);
      expect(dump.stdout.subarray(0, 5).toString()).toBe('PGDMP');
      const archive = join(scratch, `dump-${major}.pgdump`);
      writeFileSync(archive, dump.stdout);

      const list = runTool(major, 'pg_restore', ['--list', archive]);
      expect(list.status).toBe(0);
      expect(list.stdout.toString()).toMatch(/TABLE DATA public items/);
      expect(list.stdout.toString()).toMatch(/VIEW public big_items/);

      // Every row is in the archive: pg_restore turns it back into the COPY block.
      const script = runTool(major, 'pg_restore', ['--data-only', '--file=-', archive]);
      expect(script.status).toBe(0);
      const copy = /COPY public\.items \(id, note, amount, tags, at\) FROM stdin;\n([\s\S]*?)\n\\\.\n/.exec(
        script.stdout.toString(),
      );
      expect(copy?.[1]?.split('\n')).toHaveLength(ROWS);

      // And the layer's pg_restore restores it into a database identical to the original. A newer
      // pg_restore than the server sets transaction_timeout (PostgreSQL 17+), which an older server
      // refuses: that one error is expected and harmless; the data must still be whole.
      const serverVersion = JSON.parse(await snapshot(DB, 'SHOW server_version_num'))[0].server_version_num;
      const serverMajor = Math.floor(Number(serverVersion) / 10_000);
      const restored = `${DB} restored ${major}`;
      await createDatabase(restored, 'SELECT 1');
      const restore = runTool(
        major,
        'pg_restore',
        [
          '--no-owner',
          ...(major === serverMajor ? ['--exit-on-error'] : []),
          `--dbname=${restored}`,
          archive,
        ],
        connection,
      );
      const errors = restore.stderr
        .toString()
        .split('\n')
        .filter((line) => line.startsWith('pg_restore: error:'));
      if (major >= 17 && serverMajor < 17) {
        expect(errors).toEqual([
          'pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter "transaction_timeout"',
        ]);
        expect(restore.status).toBe(1);
      } else {
        expect(restore.stderr.toString()).toBe('');
        expect(restore.status).toBe(0);
      }
      const query = 'SELECT id, note, amount, tags, at FROM items ORDER BY id';
      expect(await snapshot(restored, query)).toBe(await snapshot(DB, query));
      expect(await snapshot(restored, 'SELECT count(*) AS n FROM big_items')).toBe(
        await snapshot(DB, 'SELECT count(*) AS n FROM big_items'),
      );
    },
  );
});

describe('the core picks the layer’s major for the server', () => {
  it.each([
    [13, 15],
    [15, 15],
    [16, 18],
    [17, 18],
    [18, 18],
  ])('a PostgreSQL %i server gets pg_dump %i', (server, expected) => {
    const binary = resolvePgDump({ pgRoot }, server);
    expect(binary.path).toBe(join(pgRoot, String(expected), 'bin', 'pg_dump'));
    expect(binary.env.LD_LIBRARY_PATH?.split(':')[0]).toBe(join(pgRoot, String(expected), 'lib'));
  });

  it('refuses a server newer than every major in the layer', () => {
    const newest = Math.max(...PINNED);
    expect(() => resolvePgDump({ pgRoot }, newest + 1)).toThrow(ConfigError);
    expect(() => resolvePgDump({ pgRoot }, newest + 1)).toThrow(
      new RegExp(`PostgreSQL ${newest + 1} server`),
    );
  });
});

describe('the PgDumpLayer construct', () => {
  it('describes its majors and architecture', () => {
    built.template.hasResourceProperties('AWS::Lambda::LayerVersion', {
      Description: Match.stringLikeRegexp(`PostgreSQL ${PINNED.join(', ')} .*arm64`),
      CompatibleArchitectures: ['arm64'],
      CompatibleRuntimes: ['nodejs22.x'],
    });
    expect(built.construct.majors).toEqual(PINNED);
    expect(built.construct.architecture).toBe(lambda.Architecture.ARM_64);
  });

  it('keeps its asset hash across synths and changes it with the recipe, majors or architecture', () => {
    expect(synth({}, false).hash).toBe(built.hash);
    expect(synth({ majors: [...PINNED].reverse() }, false).hash).toBe(built.hash);
    expect(synth({ bundling: 'docker' }, false).hash).toBe(built.hash);

    const recipe = join(scratch, 'recipe');
    cpSync(PG_DUMP_RECIPE_DIR, recipe, { recursive: true });
    expect(synth({ recipeDirectory: recipe }, false).hash).toBe(built.hash);
    appendFileSync(join(recipe, 'README.md'), '\nDocumentation only.\n');
    expect(synth({ recipeDirectory: recipe }, false).hash).toBe(built.hash);
    appendFileSync(join(recipe, 'build.sh'), '\n# a changed recipe\n');
    expect(synth({ recipeDirectory: recipe }, false).hash).not.toBe(built.hash);

    expect(synth({ majors: [PINNED[0] as number] }, false).hash).not.toBe(built.hash);
    expect(synth({ architecture: lambda.Architecture.X86_64 }, false).hash).not.toBe(built.hash);
  });

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

  it("with bundling 'local', fails the synth saying why it cannot build rather than trying Docker", () => {
    const recipe = join(scratch, 'recipe-unservable');
    cpSync(PG_DUMP_RECIPE_DIR, recipe, { recursive: true });
    const versions = readFileSync(join(recipe, 'versions.txt'), 'utf8');
    appendFileSync(
      join(recipe, 'versions.txt'),
      `\n14 14.0 ${'0'.repeat(64)} postgresql-14=14.0-0+nonexistent1\n`,
    );
    expect(versions).not.toContain('postgresql-14=');
    expect(() => synth({ recipeDirectory: recipe, majors: [14], bundling: 'local' }, true)).toThrow(
      /cannot assemble the layer locally: Debian's archive does not serve postgresql-14=14.0-0\+nonexistent1/,
    );
  });
});
