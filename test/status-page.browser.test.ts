import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListedDump } from '../functions/core/listing';
import {
  bagEnv,
  keyFolder,
  keyPair,
  makeDumps,
  type RunningBag,
  startBag,
  tempDir,
  uniqueSuffix,
} from './support/bag';
import { createDatabase, freshBucket, getObjectBytes, s3Client } from './support/env';
import { GpgRing } from './support/gpg-keys';

const suffix = uniqueSuffix();
/** A name that would run if the page pasted it into HTML unescaped. */
const SCRIPT_NAME = `<script>window.__pwned=1</script>${suffix}`;
const ODD_NAME = `page ü "q" & <b>x</b> ${suffix}`;
const PLAIN_NAME = `page plain ${suffix}`;

/** Replaces a dump's record by what `change` makes of it (the signed fields kept, so its signature still holds). */
async function rewriteRecord(
  bucket: string,
  key: string,
  change: (record: Record<string, unknown>) => Record<string, unknown>,
): Promise<void> {
  const record = JSON.parse((await getObjectBytes(s3Client(), bucket, `${key}.json`)).toString('utf8'));
  await s3Client().send(
    new PutObjectCommand({ Bucket: bucket, Key: `${key}.json`, Body: JSON.stringify(change(record)) }),
  );
}

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('status page in headless Chromium', () => {
  let bag: RunningBag;
  let bucket: string;
  let context: BrowserContext;
  let dumps: ListedDump[];

  beforeAll(async () => {
    const owner = await keyPair('Page Owner', `owner-${suffix}@example.com`);
    const reader = await keyPair('Second Reader', `reader-${suffix}@example.com`);
    const sql = 'CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);';
    await Promise.all([SCRIPT_NAME, ODD_NAME, PLAIN_NAME].map((n) => createDatabase(n, sql)));
    bucket = await freshBucket();
    const first = await makeDumps(bucket, [SCRIPT_NAME, ODD_NAME, PLAIN_NAME], {
      publicKeys: keyFolder([owner, reader]),
    });
    await new Promise((r) => setTimeout(r, 1100));
    await makeDumps(bucket, [PLAIN_NAME], { encryption: 'none' }, { trigger: 'manual' });
    // Where a dump ran and how long it took are not signed: an older record lacks them, a hostile one lies.
    const keyOf = (name: string) => first.results.find((r) => r.database === name)?.key as string;
    await rewriteRecord(bucket, keyOf(PLAIN_NAME), ({ runner: _r, seconds: _s, ...older }) => older);
    await rewriteRecord(bucket, keyOf(SCRIPT_NAME), (r) => ({ ...r, runner: '<b>x</b>', seconds: -1 }));
    // keepMin 1, so the older dump of PLAIN_NAME shows when retention will delete it.
    bag = await startBag(bagEnv(bucket, { DUMP_BAG_KEEP_MIN: '1' }));
    dumps = ((await (await fetch(`${bag.url}/dumps`)).json()) as { dumps: ListedDump[] }).dumps;
    context = await chromium.launchPersistentContext(tempDir('dump-bag-chromium-'), {
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      headless: true,
      acceptDownloads: true,
    });
  });

  afterAll(async () => {
    await context?.close();
    await bag?.close();
  });

  it('shows each dump per database, escapes every name, and its download button fetches the stored bytes', async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const response = await page.goto(`${bag.url}/`);
    expect(response?.status()).toBe(200);

    // One section per database, one row per dump.
    const sections = page.locator('section.database');
    expect(await sections.count()).toBe(3);
    for (const name of [SCRIPT_NAME, ODD_NAME, PLAIN_NAME]) {
      const section = page.locator('section.database').filter({ has: page.locator('h2', { hasText: name }) });
      expect(await section.locator('h2').textContent()).toBe(name);
      expect(await section.getAttribute('data-database')).toBe(name);
      const ids = dumps.filter((d) => d.database === name).map((d) => d.id);
      expect(
        await section.locator('tr.dump').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id'))),
      ).toEqual(ids);
    }

    // The <script> name is text: it did not run, and the page holds no script but its own.
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.evaluate(() => document.scripts.length)).toBe(1);
    expect(await page.locator('b', { hasText: 'x' }).count()).toBe(0);

    // Date, age, size, trigger, readers, deletion, and the total.
    const plainRows = page.locator(`section.database[data-database="${PLAIN_NAME}"] tr.dump`);
    const manual = plainRows.nth(0);
    expect(await manual.locator('td.trigger').textContent()).toBe('manual');
    expect(await manual.locator('td.runner').textContent()).toMatch(/^local \d+(\.\d)?s$/);
    expect(await plainRows.nth(1).locator('td.runner').textContent()).toBe('?');
    expect(await plainRows.nth(1).locator('td.signature').textContent()).toBe('signed');
    const scriptRow = page.locator(`section.database[data-database="${SCRIPT_NAME}"] tr.dump`);
    expect(await scriptRow.locator('td.runner').textContent()).toBe('?');
    expect(await page.locator('section.database').nth(0).locator('th').allTextContents()).toEqual([
      'Date',
      'Age',
      'Size',
      'Trigger',
      'Ran on',
      'Who can decrypt',
      'Signature',
      'Deleted',
      'Restore with',
      '',
    ]);
    expect(await scriptRow.locator('td').count()).toBe(10);
    expect(await manual.locator('td.who').textContent()).toBe('anyone: not encrypted');
    expect(await manual.locator('td.age').textContent()).toMatch(/^\d+ s$/);
    expect(await plainRows.nth(1).locator('td.who li').allTextContents()).toEqual([
      `Page Owner <owner-${suffix}@example.com>`,
      `Second Reader <reader-${suffix}@example.com>`,
    ]);
    expect(await manual.locator('td.expires').textContent()).toBe('kept while among the newest 1');
    const older = dumps.filter((d) => d.database === PLAIN_NAME)[1] as ListedDump;
    expect(older.expiresAt).not.toBeNull();
    expect(await plainRows.nth(1).locator('td.expires').textContent()).toBe(
      `${(older.expiresAt as string).slice(0, 16).replace('T', ' ')} UTC (in 29 d)`,
    );
    const total = dumps.reduce((sum, d) => sum + d.bytes, 0);
    expect(await page.locator('#total').getAttribute('data-bytes')).toBe(String(total));
    expect(await page.locator('#total').textContent()).toContain('4 dumps of 3 databases');

    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: join('test-results', 'status-page.png'), fullPage: true });

    // The button asks the API for a fresh presigned URL and follows it; the browser saves the object.
    const target = dumps.find((d) => d.database === SCRIPT_NAME) as ListedDump;
    const button = page.locator(`section.database[data-database="${SCRIPT_NAME}"] button.download`).first();
    const [urlResponse, download] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/url')),
      page.waitForEvent('download'),
      button.click(),
    ]);
    expect(urlResponse.status()).toBe(200);
    expect(urlResponse.url()).toBe(`${bag.url}/dumps/${encodeURIComponent(SCRIPT_NAME)}/${target.id}/url`);
    expect(download.suggestedFilename()).toBe(
      `_script_window.__pwned_1_script_${suffix}-${target.id}.pg.gpg`,
    );
    const saved = readFileSync((await download.path()) as string);
    expect(saved.equals(await getObjectBytes(s3Client(), bucket, target.key))).toBe(true);
    expect(errors).toEqual([]);
  });

  it('shows the newest globals dump of the runs, and its button fetches the stored bytes', async () => {
    const globals = ((await (await fetch(`${bag.url}/globals`)).json()) as { globals: ListedDump[] }).globals;
    // One per run: the two makeDumps runs above.
    expect(globals).toHaveLength(2);
    const newest = globals[0] as ListedDump;
    const page = await context.newPage();
    await page.goto(`${bag.url}/`);
    const section = page.locator('section#globals');
    expect(await section.locator('p.sub').textContent()).toContain('The newest of 2 globals dumps');
    const rows = section.locator('tr.globals');
    expect(await rows.evaluateAll((r) => r.map((e) => e.getAttribute('data-id')))).toEqual([newest.id]);
    expect(await rows.locator('td.size').getAttribute('data-bytes')).toBe(String(newest.bytes));
    expect(await rows.locator('td.trigger').textContent()).toBe('manual');
    expect(await rows.locator('td.who').textContent()).toBe('anyone: not encrypted');
    // The databases' sections are still the only ones of their class.
    expect(await page.locator('section.database').count()).toBe(3);
    const [urlResponse, download] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/url')),
      page.waitForEvent('download'),
      section.locator('button.download').click(),
    ]);
    expect(urlResponse.url()).toBe(`${bag.url}/globals/${newest.id}/url`);
    const saved = readFileSync((await download.path()) as string);
    expect(saved.equals(await getObjectBytes(s3Client(), bucket, newest.key))).toBe(true);
    expect(saved.toString('utf8')).toContain('CREATE ROLE');
  });

  it('shows a banner naming a recipient key that expires within 30 days, and how to renew it', async () => {
    const page = await context.newPage();
    await page.goto(`${bag.url}/`);
    expect(await page.locator('#key-banner').count()).toBe(0);

    const ring = new GpgRing();
    const soon = ring.key(`soon-${suffix}@example.com`, { expire: '10d' });
    const lasting = ring.key(`lasting-${suffix}@example.com`);
    const folder = tempDir('dump-bag-expiring-keys-');
    writeFileSync(join(folder, 'soon.asc'), ring.publicKey(soon));
    writeFileSync(join(folder, 'lasting.asc'), ring.publicKey(lasting));
    const keyed = await startBag(bagEnv(bucket, { DUMP_BAG_PUBLIC_KEYS: folder }));
    try {
      await page.goto(`${keyed.url}/`);
      const lines = page.locator('#key-banner li');
      expect(await lines.count()).toBe(1);
      expect(await lines.first().getAttribute('data-fingerprint')).toBe(soon);
      const text = (await lines.first().textContent()) ?? '';
      expect(text).toContain(`soon-${suffix}@example.com`);
      expect(text).toMatch(/primary key .* expires on \d{4}-\d{2}-\d{2} \(in (9|10) days\)/);
      expect(text).toContain(`gpg --quick-set-expire ${soon} 1y`);
      expect(await page.locator('#key-banner').isVisible()).toBe(true);
      expect(await page.locator('section.database').count()).toBe(3);
    } finally {
      await keyed.close();
    }
  });

  it('shows the API error when a dump vanished before its button was pressed', async () => {
    const page = await context.newPage();
    await page.goto(`${bag.url}/`);
    const target = dumps.find((d) => d.database === ODD_NAME) as ListedDump;
    const { deleteDump } = await import('../functions/core/catalog');
    await deleteDump(s3Client(), bucket, target.key);
    await page
      .locator(`section.database[data-database="${ODD_NAME.replace(/"/g, '\\"')}"] button.download`)
      .click();
    await expect
      .poll(() => page.locator('#message').textContent())
      .toBe('Cannot download: no dump with this id');
  });
});
