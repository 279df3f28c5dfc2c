import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import type { DumpRecord } from '../../functions/core/catalog';
import { formatSize } from '../../functions/core/listing';
import { clientFromEnv } from '../client/bag-client';
import { type Decryption, prepareDecryption } from '../client/decryption';
import { openDump } from '../client/dump-stream';
import { createProgress } from '../client/progress';
import { restoreArchive, writeFileAtomically } from '../client/sinks';

export const usage =
  'dump-bag get <database> [<id>|latest] [-o FILE|-] [--restore CONNINFO] [--key FILE] [--encrypted] [--url URL]   download, check and decrypt a dump';

/** A file name for a dump in the current folder that any shell takes without quoting. */
export function defaultFileName(record: DumpRecord, encrypted: boolean): string {
  const base = `${record.database.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[.-]+/, '')}-${record.id}`;
  return encrypted ? `${base}.pg${record.encryption === 'none' ? '' : '.gpg'}` : `${base}.pgdump`;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      restore: { type: 'string' },
      key: { type: 'string' },
      encrypted: { type: 'boolean', default: false },
      url: { type: 'string' },
    },
  });
  const [database, id = 'latest', ...extra] = positionals;
  if (
    database === undefined ||
    extra.length > 0 ||
    (values.output !== undefined && values.restore !== undefined)
  ) {
    console.error(`usage: ${usage}\n(-o and --restore exclude each other)`);
    return 2;
  }
  if (values.encrypted && values.restore !== undefined) {
    console.error('dump-bag get: --restore needs the decrypted archive; drop --encrypted');
    return 2;
  }
  const client = clientFromEnv(values.url);
  const record = await client.dump(database, id);
  const decryption: Decryption = values.encrypted
    ? { mode: 'none' }
    : await prepareDecryption(record, { keyFile: values.key });
  // By id, not `latest`: a dump finishing meanwhile must not swap the bytes under the checked record.
  const { url } = await client.downloadUrl(record.database, record.id);
  const progress = createProgress(`${record.database} ${record.id}`, record.bytes);
  const archive = await openDump({ record, url, decryption, onBytes: (n) => progress.update(n) });
  let where: string;
  try {
    if (values.restore !== undefined) {
      await restoreArchive(archive, values.restore);
      where = 'restored into the given database';
    } else if (values.output === '-') {
      await pipeline(archive, process.stdout);
      where = 'written to standard output';
    } else {
      const file = values.output ?? defaultFileName(record, values.encrypted);
      await writeFileAtomically(archive, file);
      where = `wrote ${file}`;
    }
  } catch (error: unknown) {
    progress.done(false);
    throw error;
  }
  progress.done(true);
  console.error(
    `${where}: ${record.database} ${record.id} (${record.trigger}), ${formatSize(record.bytes)} stored, SHA-256 verified${
      decryption.mode === 'none' ? '' : ', decrypted'
    }`,
  );
  return 0;
}
