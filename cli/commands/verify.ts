import { tmpdir } from 'node:os';
import { DumpBagError, errorMessage } from '../../functions/core/errors';
import type { ListedDump } from '../../functions/core/listing';
import { clientFromEnv } from '../client/bag-client';
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

export async function run({
  values,
  positionals,
}: Parsed<typeof commandSpecs.verify.options>): Promise<number> {
  const client = clientFromEnv(values.url);
  const [database, id = 'latest'] = positionals;
  let targets: ListedDump[];
  if (database !== undefined) {
    targets = [await client.dump(database, id)];
  } else {
    // The newest dump of every database.
    const seen = new Set<string>();
    targets = (await client.list()).filter((d) => !seen.has(d.database) && seen.add(d.database));
  }
  const allowUnsigned = values['allow-unsigned'];
  // A changed bag key stops the whole run: every verdict would be against the wrong key.
  const pin = targets.length > 0 ? await pinForReading(client, allowUnsigned) : undefined;
  const verdicts: Verdict[] = [];
  for (const record of targets) {
    const checks: string[] = [];
    const progress = createProgress(`${record.database} ${record.id}`, record.bytes);
    try {
      assertRecordSigned(record, pin, { allowUnsigned });
      if (record.signature !== undefined) checks.push('record signed by the bag');
      const decryption: Decryption = values['checksum-only']
        ? { mode: 'none' }
        : await prepareDecryption(record, { keyFile: values.key });
      // pg_restore --list reads the archive: an older pg_restore is said before the download.
      if (!values['checksum-only']) await assertRestorable(record);
      const { url } = await client.downloadUrl(record.database, record.id);
      const options = {
        record,
        url,
        decryption,
        foreign: values.foreign,
        onBytes: (n: number) => progress.update(n),
      };
      if (values['checksum-only'] && record.encryption !== 'none') {
        // Nothing is decrypted, so nothing can be released: the SHA-256 is checked as the bytes stream by.
        await drain(await openDump(options));
        checks.push(`sha256 ok (${record.bytes} bytes)`);
      } else {
        // Even pg_restore --list parses the archive only after the SHA-256 and the MDC held.
        const workDir = process.env.DUMP_BAG_WORK_DIR?.trim() || tmpdir();
        const listing = await withVerifiedDump({ ...options, workDir }, listArchive);
        checks.push(`sha256 ok (${record.bytes} bytes)`);
        if (record.encryption !== 'none') checks.push('decrypted, integrity ok');
        // An empty database lists no entries; the archive header still has to name the right one.
        if (listing.database !== record.database) {
          throw new DumpBagError(`the archive is of the database "${listing.database}", not of this one`);
        }
        checks.push(`pg_restore --list: ${listing.entries} entries`);
      }
      progress.done(true);
      verdicts.push({ database: record.database, id: record.id, status: 'ok', checks });
    } catch (error: unknown) {
      progress.done(false);
      verdicts.push({
        database: record.database,
        id: record.id,
        status: 'failed',
        checks,
        error: errorMessage(error),
      });
    }
  }
  if (values.json) {
    console.log(JSON.stringify(verdicts, null, 2));
  } else {
    for (const v of verdicts) {
      console.log(
        v.status === 'ok'
          ? `ok      ${v.database}  ${v.id}  ${v.checks.join(', ')}`
          : `FAILED  ${v.database}  ${v.id}  ${v.error}`,
      );
    }
    if (verdicts.length === 0) console.error('no dumps to verify');
  }
  return verdicts.length > 0 && verdicts.every((v) => v.status === 'ok') ? 0 : 1;
}
