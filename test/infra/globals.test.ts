/**
 * The run's globals dump in the stack (issue 11 item 2): who may write, read and delete under
 * globals/, where the state machine runs it, what a failure of it does to the report, and the
 * retention of globals dumps (the core's one pruneGlobals, run by the prune step). Over 300 lines:
 * one feature followed through the template, the state machine, the handlers and the core, so
 * its rights and its run are read together; the template is synthesized once in beforeAll.
 */
import { execFileSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DumpRecord, writeRecord } from '../../functions/core/catalog';
import { dumpGlobals, globalsKey, pruneAfterGlobals } from '../../functions/core/globals';
import { dumpId } from '../../functions/core/naming';
import { parseGlobalsEvent } from '../../functions/dump/globals';
import { handler as pruneHandler } from '../../functions/prune/handler';
import { allKeys, freshBucket, getObjectBytes, openUploads, pgConnection, s3Client } from '../support/env';
import { testSigner } from '../support/signing';
import { tempDir } from '../support/temp';
import {
  baseProps,
  keyFolder,
  type Permission,
  permissionsOf,
  roleOfFunction,
  stateMachineDefinition,
  type TestKey,
  templateOf,
} from './support';
import { runStateMachine, type TwinServices } from './twin/state-machine';

let keys: TestKey;
let template: Template;

beforeAll(async () => {
  keys = await keyFolder();
  template = templateOf(baseProps(keys));
});

const on = (perms: Permission[], action: string) =>
  perms.filter((p) => p.action === action).map((p) => p.resource);
const GLOBALS = '<DumpsBucketA92B12EA.Arn>/globals/*';

describe('rights under globals/', () => {
  it('the dump role writes globals dumps (and aborts their uploads), signs their records, and can neither read nor delete them', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'BackupDump'));
    expect(on(perms, 's3:PutObject')).toContain(GLOBALS);
    expect(on(perms, 's3:AbortMultipartUpload')).toContain(GLOBALS);
    expect(
      perms
        .filter((p) => p.resource.includes('/globals/'))
        .map((p) => p.action)
        .sort(),
    ).toEqual(['s3:AbortMultipartUpload', 's3:PutObject']);
    expect(perms.some((p) => /^s3:(Delete|\*)/.test(p.action))).toBe(false);
    expect(on(perms, 'kms:Sign')).toHaveLength(1);
  });

  it('the prune role lists globals/, reads only their records and deletes them, and writes nothing', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'BackupPrune'));
    expect(on(perms, 's3:DeleteObject')).toContain(GLOBALS);
    expect(on(perms, 's3:GetObject')).toContain('<DumpsBucketA92B12EA.Arn>/globals/*.json');
    expect(on(perms, 's3:GetObject')).not.toContain(GLOBALS);
    const list = perms.find((p) => p.action === 's3:ListBucket');
    expect(list?.condition).toEqual({ StringLike: { 's3:prefix': ['dumps/*', 'globals/*'] } });
    expect(perms.some((p) => /^s3:Put|^kms:Sign/.test(p.action))).toBe(false);
  });

  it('the API role reads and lists globals/ (GET /globals, its URL) and never writes or deletes there', () => {
    const perms = permissionsOf(template, roleOfFunction(template, 'ApiHandler'));
    expect(on(perms, 's3:GetObject')).toContain(GLOBALS);
    const list = perms.find((p) => p.action === 's3:ListBucket');
    expect(list?.condition).toEqual({ StringLike: { 's3:prefix': ['dumps/*', 'globals/*'] } });
    expect(perms.some((p) => /^s3:(Put|Delete|Abort)/.test(p.action))).toBe(false);
  });

  it('no other function role reaches globals/', () => {
    const plan = permissionsOf(template, roleOfFunction(template, 'BackupPlan'));
    expect(plan.filter((p) => p.resource.includes('globals'))).toEqual([]);
  });
});

describe('the globals step of the state machine', () => {
  type States = Record<string, Record<string, unknown>>;
  let states: States;
  beforeAll(() => {
    states = stateMachineDefinition(template).States as States;
  });

  it('runs once after the Map, in the dump function, and its retention in the prune function', () => {
    expect(states['Dump each database']).toMatchObject({ Type: 'Map', Next: 'Dump globals' });
    expect(states['Dump globals']).toMatchObject({
      Type: 'Task',
      Arguments: {
        FunctionName: expect.stringMatching(/^<BackupDump[0-9A-F]{8}\.Arn>$/),
        Payload: '{% {"globals": true, "server": $states.input.server, "trigger": $states.input.trigger} %}',
      },
      Next: 'Globals ok?',
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Globals dump crashed' }],
    });
    expect(states['Globals ok?']).toMatchObject({
      Type: 'Choice',
      Choices: [{ Condition: '{% $states.input.globals.status = "ok" %}', Next: 'Prune globals' }],
      Default: 'Report',
    });
    expect(states['Prune globals']).toMatchObject({
      Arguments: {
        FunctionName: expect.stringMatching(/^<BackupPrune[0-9A-F]{8}\.Arn>$/),
        Payload: '{% {"globals": true, "key": $states.input.globals.key} %}',
      },
      Next: 'Report',
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Globals prune crashed' }],
    });
    expect(states['Globals dump crashed']).toMatchObject({ Type: 'Pass', Next: 'Report' });
    expect(states['Globals prune crashed']).toMatchObject({ Type: 'Pass', Next: 'Report' });
  });

  /**
   * The template's JSONata with Lambdas that crash on cue (Lambda's own failure, which no real
   * function produces when asked): the report names the globals and keeps the databases' results.
   */
  async function runWith(globals: 'crash' | 'ok', prune: 'crash' | 'ok') {
    /** What each function answers: the plan, a good database dump, the globals dump and its prune as asked. */
    // biome-ignore lint/complexity/noExcessiveCognitiveComplexity: one scripted answer per function and case the template calls, flat
    const answer = (arn: string, p: Record<string, unknown>) => {
      if (arn.startsWith('<BackupPlan')) {
        return {
          ok: true as const,
          payload: {
            trigger: 'schedule',
            server: { version: '16.4', major: 16 },
            databases: [{ name: 'app', sizeBytes: 1, runner: 'lambda' }],
          },
        };
      }
      if (arn.startsWith('<BackupDump') && p.globals !== true) {
        return {
          ok: true as const,
          payload: { database: p.database, status: 'ok', key: 'dumps/app/k', seconds: 1 },
        };
      }
      if (arn.startsWith('<BackupDump')) {
        return globals === 'crash'
          ? { ok: false as const, error: 'Sandbox.Timedout', cause: 'Task timed out after 900 seconds' }
          : { ok: true as const, payload: { status: 'ok', key: 'globals/globals-x.sql.gpg', bytes: 10 } };
      }
      if (p.globals === true && prune === 'crash') {
        return { ok: false as const, error: 'Lambda.Unknown', cause: 'the prune function died' };
      }
      return { ok: true as const, payload: { pruned: [] } };
    };
    const calls: { arn: string; payload: Record<string, unknown> }[] = [];
    const services: TwinServices = {
      invokeLambda(arn, payload) {
        const p = payload as Record<string, unknown>;
        calls.push({ arn, payload: p });
        return Promise.resolve(answer(arn, p));
      },
      putEvents: () => Promise.resolve(),
    };
    const outcome = await runStateMachine(
      stateMachineDefinition(template),
      { trigger: 'schedule' },
      services,
    );
    return { outcome, calls };
  }

  it('a crashed globals dump fails the run naming the globals; the database is reported ok and globals are not pruned', async () => {
    const { outcome, calls } = await runWith('crash', 'ok');
    expect(outcome).toEqual({
      status: 'FAILED',
      error: 'DumpsFailed',
      cause: 'failed: globals (globals: Sandbox.Timedout: Task timed out after 900 seconds)',
    });
    // The database was dumped (and pruned) before the globals were even started.
    expect(calls.map((c) => c.payload.database ?? (c.payload.globals ? 'globals' : 'plan'))).toEqual([
      'plan',
      'app',
      'app',
      'globals',
    ]);
    expect(calls[3]?.payload).toEqual({
      globals: true,
      server: { version: '16.4', major: 16 },
      trigger: 'schedule',
    });
  });

  it('a good globals dump is pruned and the run succeeds with its result; a crashed prune leaves it ok with a retentionError', async () => {
    const good = await runWith('ok', 'ok');
    expect(good.outcome.status).toBe('SUCCEEDED');
    expect((good.outcome as { output: { globals: unknown } }).output.globals).toEqual({
      status: 'ok',
      key: 'globals/globals-x.sql.gpg',
      bytes: 10,
      pruned: [],
    });
    expect(good.calls.at(-1)?.payload).toEqual({ globals: true, key: 'globals/globals-x.sql.gpg' });
    const crashed = await runWith('ok', 'crash');
    expect(crashed.outcome.status).toBe('SUCCEEDED');
    expect((crashed.outcome as { output: { globals: unknown } }).output.globals).toMatchObject({
      status: 'ok',
      pruned: [],
      retentionError: 'Lambda.Unknown: the prune function died',
    });
  });
});

describe('hostile events', () => {
  const server = { version: '16.4', major: 16 };

  it('the dump function takes only a well-formed globals item', () => {
    expect(parseGlobalsEvent({ globals: true, server, trigger: 'manual' })).toEqual({
      globals: true,
      server,
      trigger: 'manual',
    });
    expect(() => parseGlobalsEvent({ globals: 'true', server })).toThrow(/does not ask for the globals/);
    expect(() => parseGlobalsEvent({ globals: true, database: 'app', server })).toThrow(/one or the other/);
    expect(() => parseGlobalsEvent({ globals: true })).toThrow(/no server version/);
    expect(() =>
      parseGlobalsEvent({ globals: true, server: { version: 'x'.repeat(201), major: 16 } }),
    ).toThrow(/no server version/);
    expect(() => parseGlobalsEvent({ globals: true, server, trigger: 'cron' })).toThrow(/trigger/);
  });

  it('the prune function refuses a globals event that names anything but a globals key, deleting nothing', async () => {
    for (const event of [
      { globals: true, key: 'dumps/app/app-20260101-000000.pg.gpg' },
      { globals: true, key: 'globals/../dumps/x' },
      { globals: 'yes', key: 'globals/globals-20260101-000000.sql.gpg' },
      { globals: true, database: 'app', key: 'globals/globals-20260101-000000.sql.gpg' },
    ]) {
      const result = await pruneHandler(event as never);
      expect(result.pruned).toEqual([]);
      expect(result.retentionError).toMatch(/globals/);
    }
  });
});

describe('a pg_dumpall that fails', () => {
  it('is a failed result with its stderr, not an exception; nothing is stored and no upload is left open', async () => {
    const s3 = s3Client();
    const bucket = await freshBucket(s3);
    // A fault PostgreSQL cannot be made to produce for pg_dumpall alone: it exits 1 at once.
    const bin = tempDir('dump-bag-failing-pg-dumpall-');
    symlinkSync(execFileSync('which', ['pg_dump'], { encoding: 'utf8' }).trim(), join(bin, 'pg_dump'));
    writeFileSync(
      join(bin, 'pg_dumpall'),
      '#!/bin/sh\ncase "$1" in --version) echo "pg_dumpall (PostgreSQL) 17.2"; exit 0;; esac\necho "pg_dumpall: error: query failed: ERROR:  permission denied for table pg_authid" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const result = await dumpGlobals(
      {
        s3,
        bucket,
        connection: pgConnection(),
        pgDump: { pgDumpPath: join(bin, 'pg_dump') },
        signer: testSigner(),
      },
      {
        server: { version: '17.2', major: 17 },
        encryption: { mode: 'passphrase', passphrase: 'twin-passphrase-4711' },
        trigger: 'schedule',
      },
    );
    expect(result).toMatchObject({ status: 'failed' });
    expect(result.error).toMatch(/^globals: pg_dumpall .*permission denied for table pg_authid/);
    expect(await allKeys(s3, bucket)).toEqual([]);
    expect(await openUploads(s3, bucket)).toEqual([]);
  });
});

describe('retention of globals dumps (the prune step calls pruneAfterGlobals)', () => {
  it('keeps keep-min and young ones, deletes the old ones with their records, and only after a listed new one', async () => {
    const s3 = s3Client();
    const bucket = await freshBucket(s3);
    const connection = pgConnection();
    const retention = { retentionDays: 30, manualRetentionDays: 7, keepMin: 2 };
    const fresh = await dumpGlobals(
      { s3, bucket, connection, pgDump: {}, signer: testSigner() },
      { server: { version: '16', major: 16 }, encryption: { mode: 'none' }, trigger: 'schedule' },
    );
    expect(fresh).toMatchObject({ status: 'ok' });
    const record = JSON.parse(
      (await getObjectBytes(s3, bucket, `${fresh.key}.json`)).toString('utf8'),
    ) as DumpRecord;
    const now = new Date();
    const daysAgo = (days: number) => new Date(now.getTime() - days * 24 * 60 * 60 * 1000);
    // Three older ones, 40, 50 and 60 days old: with keep-min 2, the 50- and 60-day-old go.
    const old = [40, 50, 60].map((days) => {
      const id = dumpId(daysAgo(days));
      return { ...record, id, key: globalsKey(id, false), createdAt: daysAgo(days).toISOString() };
    });
    for (const r of old) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: r.key, Body: 'SELECT 1;\n' }));
      await writeRecord(s3, bucket, r);
    }
    // A "good" result whose key was never stored deletes nothing.
    const forged = await pruneAfterGlobals(
      { s3, bucket, retention },
      { status: 'ok', key: globalsKey(dumpId(daysAgo(1)), false) },
      now,
    );
    expect(forged.pruned).toEqual([]);
    expect(forged.retentionError).toMatch(/not listed with its record; nothing was deleted/);
    expect((await allKeys(s3, bucket)).length).toBe(8);

    const done = await pruneAfterGlobals({ s3, bucket, retention }, fresh, now);
    expect(done.retentionError).toBeUndefined();
    expect(done.pruned).toEqual([old[1]?.key, old[2]?.key]);
    expect((await allKeys(s3, bucket)).sort()).toEqual(
      [fresh.key, `${fresh.key}.json`, old[0]?.key, `${old[0]?.key}.json`].sort(),
    );
  });
});
