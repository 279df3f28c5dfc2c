/**
 * The built pg_dump layer, arm64 (under qemu-user here) and x86_64 (native here): what it holds,
 * what its ELF files ask of the system, and its tools run against a real server with a scrubbed
 * environment. The construct's hash and validation: layer-recipe.test.ts. Over 300 lines: every
 * case reads the two layers (one per architecture) beforeAll assembles, a build of minutes on a
 * fresh machine, and the same cases run for each architecture and pinned major.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../functions/core/errors';
import { resolvePgDump } from '../functions/core/pg-dump';
import { PG_DUMP_RECIPE_DIR, PgDumpLayer } from '../infra/constructs/pg-dump-layer';
import { readPins } from '../infra/constructs/pg-dump-layer/pins';
import { createDatabase, dropDatabases, pgClient, services, snapshot } from './support/env';
import {
  BASE_GLIBC,
  ELF_MACHINE,
  elfFacts,
  elfFiles,
  type LayerArch,
  layerRunner,
  newerThanAl2023,
} from './support/layer-elf';
import { tempDir } from './support/temp';

const PINS = readPins(PG_DUMP_RECIPE_DIR);
const PINNED = [...PINS.keys()].sort((a, b) => a - b);
const ARCHES: LayerArch[] = ['arm64', 'x86_64'];
const TOOLS = ['pg_dump', 'pg_dumpall', 'pg_restore'];
const DB = 'layer test ✓';
const ROWS = 500;
/** A database whose plain archive spans several 256 KiB writes. */
const BIG_DB = 'layer test big ✓';
const BIG_ROWS = 30_000;
const STDOUT_BUFFER_BYTES = 256 * 1024;

/** strace from this process's PATH, where CI installs it, by absolute path: the tools run with PATH=/nonexistent. */
function strace(): string {
  const found = (process.env.PATH ?? '')
    .split(':')
    .map((dir) => join(dir, 'strace'))
    .find((path) => existsSync(path));
  if (!found) throw new Error('this test traces pg_dump’s writes: apt-get install strace');
  return found;
}
// Roles are cluster-wide: names of this run only, so parallel runs never meet.
const READER = `layer reader ✓ ${process.pid}`;
const MEMBER = `layer member "${process.pid}"`;
const scratch = tempDir('dump-bag-layer-');

/** Synthesizes and bundles (locally) a stack holding one PgDumpLayer. */
function synth(architecture: lambda.Architecture) {
  const outdir = join(scratch, `cdk-${architecture.name}`);
  const app = new App({ outdir });
  const stack = new Stack(app, 'LayerStack');
  const construct = new PgDumpLayer(stack, 'PgDump', { architecture, bundling: 'local' });
  const template = Template.fromStack(stack);
  const layer = Object.values(template.findResources('AWS::Lambda::LayerVersion'))[0] as {
    Properties: { Content: { S3Key: string } };
  };
  const hash = layer.Properties.Content.S3Key.replace(/\.zip$/, '');
  app.synth();
  return { construct, template, pgRoot: join(outdir, `asset.${hash}`, 'pg') };
}

/** Only the libpq variables of the test server: nothing else of this machine's environment. */
function serverEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(services().pgEnv)) if (key.startsWith('PG')) env[key] = value;
  return env;
}

const layers = new Map<LayerArch, ReturnType<typeof synth> & { tools: ReturnType<typeof layerRunner> }>();
function layer(arch: LayerArch) {
  const built = layers.get(arch);
  if (!built) throw new Error(`the ${arch} layer was not built`);
  return built;
}

beforeAll(async () => {
  // The first build on a fresh machine compiles PostgreSQL (minutes per major and architecture);
  // later ones copy the cached build.
  for (const arch of ARCHES) {
    const built = synth(arch === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64);
    layers.set(arch, { ...built, tools: layerRunner(arch, built.pgRoot, scratch) });
  }
  await createDatabase(
    DB,
    `CREATE TABLE items (id int PRIMARY KEY, note text, amount numeric(12,2), tags jsonb, at timestamptz);
     INSERT INTO items SELECT i, 'note ' || md5(i::text), i * 1.25, jsonb_build_object('n', i, 'odd', i % 2 = 1),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' FROM generate_series(1, ${ROWS}) AS i;
     CREATE VIEW big_items AS SELECT * FROM items WHERE amount > 300;`,
  );
  await createDatabase(
    BIG_DB,
    `CREATE TABLE lines AS SELECT i AS id, md5(i::text) AS note FROM generate_series(1, ${BIG_ROWS}) AS i`,
  );
  const admin = await pgClient();
  try {
    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(READER)} NOLOGIN`);
    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(MEMBER)} LOGIN PASSWORD 'layer-test-secret'`);
    await admin.query(`GRANT ${pg.escapeIdentifier(READER)} TO ${pg.escapeIdentifier(MEMBER)}`);
  } finally {
    await admin.end();
  }
}, 60 * 60_000);

afterAll(async () => {
  const restored = ARCHES.flatMap((arch) => PINNED.map((major) => `${DB} restored ${arch} ${major}`));
  await dropDatabases([...restored, DB, BIG_DB]);
  const admin = await pgClient();
  try {
    await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(MEMBER)}`);
    await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(READER)}`);
  } finally {
    await admin.end();
    rmSync(scratch, { recursive: true, force: true });
  }
});

describe.each(ARCHES)('the assembled %s layer', (arch) => {
  it('holds pg_dump, pg_dumpall, pg_restore and their libraries for every pinned major, as /opt/pg/<major> expects', () => {
    const { pgRoot } = layer(arch);
    const majors = readdirSync(pgRoot).filter((name) => /^\d+$/.test(name));
    expect(majors.map(Number).sort((a, b) => a - b)).toEqual(PINNED);
    for (const major of majors) {
      expect(readdirSync(join(pgRoot, major, 'bin')).sort()).toEqual(TOOLS);
      expect(readdirSync(join(pgRoot, major, 'lib'))).toContain('libpq.so.5');
    }
    const sources = readFileSync(join(pgRoot, 'SOURCES.txt'), 'utf8');
    for (const pin of PINS.values()) expect(sources).toContain(pin.sha256);
  });

  it(`is built for ${arch}: every ELF in it is ${ELF_MACHINE[arch]}`, () => {
    const files = elfFiles(layer(arch).pgRoot);
    expect(files.length).toBeGreaterThanOrEqual(PINNED.length * 5);
    for (const file of files)
      expect(`${file}: ${elfFacts(file).machine}`).toBe(`${file}: ${ELF_MACHINE[arch]}`);
  });

  it('needs no glibc symbol newer than Amazon Linux 2023’s 2.34', () => {
    const tooNew: string[] = [];
    const seen = new Set<string>();
    for (const file of elfFiles(layer(arch).pgRoot)) {
      for (const version of elfFacts(file).glibcVersions) {
        seen.add(version);
        if (newerThanAl2023(version)) tooNew.push(`${file} needs ${version}`);
      }
    }
    expect(tooNew).toEqual([]);
    // The check must have seen versioned imports at all, or it proves nothing.
    expect(seen).toContain(arch === 'arm64' ? 'GLIBC_2.17' : 'GLIBC_2.2.5');
    // And it does catch a too-new import: Debian 12's libgcc_s asks for _dl_find_object@GLIBC_2.35.
    const libgcc = arch === 'arm64' ? '/usr/aarch64-linux-gnu/lib' : '/lib/x86_64-linux-gnu';
    const control = elfFacts(join(libgcc, 'libgcc_s.so.1')).glibcVersions;
    expect(control.filter(newerThanAl2023)).toEqual(['GLIBC_2.35']);
  });

  it('carries every library its binaries load, except base glibc', () => {
    const missing: string[] = [];
    for (const major of PINNED) {
      const home = join(layer(arch).pgRoot, String(major));
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
    const { pgRoot, tools } = layer(arch);
    for (const major of PINNED) {
      for (const tool of TOOLS) {
        expect(elfFacts(join(pgRoot, String(major), 'bin', tool)).rpath).toEqual(['$ORIGIN/../lib']);
        const result = tools.run(major, tool, ['--version'], { LD_LIBRARY_PATH: '' });
        expect(result.stderr.toString()).toBe('');
        expect(result.stdout.toString().trim()).toBe(`${tool} (PostgreSQL) ${PINS.get(major)?.version}`);
      }
    }
  });

  it.each(PINNED)(
    'pg_dumpall %i dumps the roles without their passwords, with a scrubbed environment',
    (major) => {
      const { tools } = layer(arch);
      const globals = tools.run(major, 'pg_dumpall', ['--globals-only', '--no-role-passwords'], serverEnv());
      expect(globals.stderr.toString()).toBe('');
      expect(globals.status).toBe(0);
      const script = globals.stdout.toString();
      expect(script).toContain(`-- PostgreSQL database cluster dump`);
      expect(script).toContain(`CREATE ROLE ${pg.escapeIdentifier(READER)};`);
      expect(script).toContain(`CREATE ROLE ${pg.escapeIdentifier(MEMBER)};`);
      expect(script).toMatch(
        new RegExp(`ALTER ROLE ${escapeRegExp(pg.escapeIdentifier(MEMBER))} WITH .*\\bLOGIN\\b`),
      );
      expect(script).toContain(`GRANT ${pg.escapeIdentifier(READER)} TO ${pg.escapeIdentifier(MEMBER)}`);
      expect(script).not.toMatch(/SCRAM-SHA-256\$|md5[0-9a-f]{32}|PASSWORD/);
    },
  );

  it.each(PINNED)('pg_dump %i dumps a real database and its pg_restore restores it whole', async (major) => {
    const { tools } = layer(arch);
    const connection = serverEnv();
    const dump = tools.run(
      major,
      'pg_dump',
      ['--format=custom', '--no-owner', '--compress=1', `--dbname=${DB}`],
      connection,
    );
    expect(dump.stderr.toString()).toBe('');
    expect(dump.status).toBe(0);
    expect(dump.stdout.subarray(0, 5).toString()).toBe('PGDMP');
    const archive = join(scratch, `dump-${arch}-${major}.pgdump`);
    writeFileSync(archive, dump.stdout);

    const list = tools.run(major, 'pg_restore', ['--list', archive]);
    expect(list.status).toBe(0);
    expect(list.stdout.toString()).toMatch(/TABLE DATA public items/);
    expect(list.stdout.toString()).toMatch(/VIEW public big_items/);

    // Every row is in the archive: pg_restore turns it back into the COPY block.
    const script = tools.run(major, 'pg_restore', ['--data-only', '--file=-', archive]);
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
    const restored = `${DB} restored ${arch} ${major}`;
    await createDatabase(restored, 'SELECT 1');
    const restore = tools.run(
      major,
      'pg_restore',
      ['--no-owner', ...(major === serverMajor ? ['--exit-on-error'] : []), `--dbname=${restored}`, archive],
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
  });

  it.each(PINNED)(
    'pg_dump %i hands its archive to a pipe in 256 KiB writes, not glibc’s 4 KiB (stdout-buffer.c)',
    (major) => {
      const { tools } = layer(arch);
      const trace = join(scratch, `writes-${arch}-${major}.txt`);
      const tracer = [strace(), '-f', '-qq', '-s0', '-etrace=write', '-esignal=none', `-o${trace}`];
      const dump = tools.run(
        major,
        'pg_dump',
        ['--format=custom', '--compress=0', `--dbname=${BIG_DB}`],
        // strace itself takes no library from the layer; the traced pg_dump finds its own by its rpath.
        { ...serverEnv(), LD_LIBRARY_PATH: '' },
        tracer,
      );
      expect(dump.stderr.toString()).toBe('');
      expect(dump.status).toBe(0);
      const writes = readFileSync(trace, 'utf8')
        .split('\n')
        .map((line) => /\bwrite\(1, .*\)\s+= (\d+)$/.exec(line)?.[1])
        .filter((written) => written !== undefined)
        .map(Number);
      expect(writes.reduce((sum, n) => sum + n, 0)).toBe(dump.stdout.length);
      expect(dump.stdout.length).toBeGreaterThan(2 * STDOUT_BUFFER_BYTES);
      // Full buffers but for the flushes at the end (every row here is far smaller than the buffer: glibc
      // writes a larger one past it); with glibc's own 4 KiB there would be hundreds.
      expect(writes.filter((n) => n !== STDOUT_BUFFER_BYTES).length).toBeLessThanOrEqual(2);
      expect(writes.length).toBeLessThanOrEqual(Math.ceil(dump.stdout.length / STDOUT_BUFFER_BYTES) + 1);
    },
  );

  it('is described by its construct: majors, tools and architecture', () => {
    const { construct, template } = layer(arch);
    template.hasResourceProperties('AWS::Lambda::LayerVersion', {
      Description: Match.stringLikeRegexp(`pg_dumpall for PostgreSQL ${PINNED.join(', ')} .*${arch}`),
      CompatibleArchitectures: [arch],
      CompatibleRuntimes: ['nodejs22.x'],
    });
    expect(construct.majors).toEqual(PINNED);
    expect(construct.architecture.name).toBe(arch);
  });
});

describe('the core picks the layer’s major for the server: the oldest not older than the server', () => {
  it.each([
    [13, 15],
    [14, 15],
    [15, 15],
    [16, 17],
    [17, 17],
    [18, 18],
  ])('a PostgreSQL %i server gets pg_dump %i', (server, expected) => {
    const { pgRoot } = layer('arm64');
    const binary = resolvePgDump({ pgRoot }, server);
    expect(binary.path).toBe(join(pgRoot, String(expected), 'bin', 'pg_dump'));
    expect(binary.env.LD_LIBRARY_PATH?.split(':')[0]).toBe(join(pgRoot, String(expected), 'lib'));
  });

  it('refuses a server newer than every major in the layer', () => {
    const { pgRoot } = layer('arm64');
    const newest = Math.max(...PINNED);
    expect(() => resolvePgDump({ pgRoot }, newest + 1)).toThrow(ConfigError);
    expect(() => resolvePgDump({ pgRoot }, newest + 1)).toThrow(
      new RegExp(`PostgreSQL ${newest + 1} server`),
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
