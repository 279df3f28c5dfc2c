import { tmpdir } from 'node:os';
import { DumpBagError, errorMessage } from '../../functions/core/errors';
import type { ListedDump } from '../../functions/core/listing';
import { readSetting, SETTINGS } from '../../functions/core/settings';
import { type BagClient, clientFromEnv } from '../client/bag-client';
import { type Decryption, prepareDecryption } from '../client/decryption';
import { openDump } from '../client/dump-stream';
import { createProgress } from '../client/progress';
import { assertRestorable } from '../client/restore-compat';
import { assertRecordSigned, pinForReading } from '../client/signing-pin';
import { listArchive } from '../client/sinks';
import { withVerifiedDump } from '../client/verified-dump';

import type { Parsed } from '../command-line';
import type { commandSpecs } from '../command-specs';

interface Verdict {
  readonly database: string;
  readonly id: string;
  readonly status: 'ok' | 'failed';
  readonly checks: string[];
  readonly error?: string;
}

async function drain(archive: NodeJS.ReadableStream): Promise<void> {
  for await (const _ of archive) {
    // Only the checks at the end of the stream matter here.
  }
}

type VerifyValues = Parsed<typeof commandSpecs.verify.options>['values'];

/** The dump asked for, or the newest dump of every database. */
async function targetsOf(client: BagClient, database: string | undefined, id: string): Promise<ListedDump[]> {
  if (database !== undefined) return [await client.dump(database, id)];
  const seen = new Set<string>();
  return (await client.list()).filter((d) => !seen.has(d.database) && seen.add(d.database));
}

/** Checks one dump, appending what held to `checks`; throws at the first check that fails. */
async function verifyOne(
  client: BagClient,
  record: ListedDump,
  pin: Awaited<ReturnType<typeof pinForReading>> | undefined,
  values: VerifyValues,
  checks: string[],
  onBytes: (n: number) => void,
): Promise<void> {
  const allowUnsigned = values['allow-unsigned'];
  const checksumOnly = values['checksum-only'];
  assertRecordSigned(record, pin, { allowUnsigned });
  if (record.signature !== undefined) checks.push('record signed by the bag');
  const decryption: Decryption = checksumOnly
    ? { mode: 'none' }
    : await prepareDecryption(record, { keyFile: values.key });
  // pg_restore --list reads the archive: an older pg_restore is said before the download.
  if (!checksumOnly) await assertRestorable(record);
  const { url } = await client.downloadUrl(record.database, record.id);
  const options = { record, url, decryption, foreign: values.foreign, onBytes };
  if (checksumOnly && record.encryption !== 'none') {
    // Nothing is decrypted, so nothing can be released: the SHA-256 is checked as the bytes stream by.
    await drain(await openDump(options));
    checks.push(`sha256 ok (${record.bytes} bytes)`);
    return;
  }
  // Even pg_restore --list parses the archive only after the SHA-256 and the MDC held.
  const workDir = readSetting(SETTINGS.workDir) ?? tmpdir();
  const listing = await withVerifiedDump({ ...options, workDir }, listArchive);
  checks.push(`sha256 ok (${record.bytes} bytes)`);
  if (record.encryption !== 'none') checks.push('decrypted, integrity ok');
  // An empty database lists no entries; the archive header still has to name the right one.
  if (listing.database !== record.database) {
    throw new DumpBagError(`the archive is of the database "${listing.database}", not of this one`);
  }
  checks.push(`pg_restore --list: ${listing.entries} entries`);
}

function printVerdicts(verdicts: readonly Verdict[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(verdicts, null, 2));
    return;
  }
  for (const v of verdicts) {
    console.log(
      v.status === 'ok'
        ? `ok      ${v.database}  ${v.id}  ${v.checks.join(', ')}`
        : `FAILED  ${v.database}  ${v.id}  ${v.error}`,
    );
  }
  if (verdicts.length === 0) console.error('no dumps to verify');
}

export async function run({
  values,
  positionals,
}: Parsed<typeof commandSpecs.verify.options>): Promise<number> {
  const client = clientFromEnv(values.url);
  const [database, id = 'latest'] = positionals;
  const targets = await targetsOf(client, database, id);
  // A changed bag key stops the whole run: every verdict would be against the wrong key.
  const pin = targets.length > 0 ? await pinForReading(client, values['allow-unsigned']) : undefined;
  const verdicts: Verdict[] = [];
  for (const record of targets) {
    const checks: string[] = [];
    const progress = createProgress(`${record.database} ${record.id}`, record.bytes);
    const where = { database: record.database, id: record.id };
    try {
      await verifyOne(client, record, pin, values, checks, (n) => progress.update(n));
      progress.done(true);
      verdicts.push({ ...where, status: 'ok', checks });
    } catch (error: unknown) {
      progress.done(false);
      verdicts.push({ ...where, status: 'failed', checks, error: errorMessage(error) });
    }
  }
  printVerdicts(verdicts, values.json);
  return verdicts.length > 0 && verdicts.every((v) => v.status === 'ok') ? 0 : 1;
}
