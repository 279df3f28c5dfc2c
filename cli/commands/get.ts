import { tmpdir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DumpRecord } from '../../functions/core/catalog';
import { ValidationError } from '../../functions/core/errors';
import { formatSize } from '../../functions/core/listing';
import { readSetting, SETTINGS } from '../../functions/core/settings';
import { clientFromEnv } from '../client/bag-client';
import { type Decryption, prepareDecryption } from '../client/decryption';
import { openDump } from '../client/dump-stream';
import { createProgress } from '../client/progress';
import { assertRestorable } from '../client/restore-compat';
import {
  anyRestoreOption,
  type RestoreOptions,
  readRestoreOptions,
  restoreArgs,
  withArchiveFile,
} from '../client/restore-options';
import { assertRecordSigned, pinForReading } from '../client/signing-pin';
import { restoreArchive, writeFileAtomically } from '../client/sinks';
import { withVerifiedDump } from '../client/verified-dump';

/** A record id as the bag writes them (`YYYYMMDD-HHMMSS`, maybe a suffix): anything else is refused. */
const SAFE_ID = /^\d{8}-\d{6}[A-Za-z0-9-]{0,32}$/;

import { type Parsed, UsageError } from '../command-line';
import type { commandSpecs } from '../command-specs';

/** A file name for a dump in the current folder that any shell takes without quoting. */
export function defaultFileName(record: DumpRecord, encrypted: boolean): string {
  // The record comes from the bag: an id like `/../..` must not pick a path outside the folder.
  if (typeof record.id !== 'string' || !SAFE_ID.test(record.id)) {
    throw new ValidationError(
      `the bag answered with a malformed dump id ${JSON.stringify(record.id).slice(0, 80)}: refusing to name a file after it (give -o FILE)`,
    );
  }
  const base = `${record.database.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[.-]+/, '')}-${record.id}`;
  return encrypted ? `${base}.pg${record.encryption === 'none' ? '' : '.gpg'}` : `${base}.pgdump`;
}

type GetValues = Parsed<typeof commandSpecs.get.options>['values'];

/** The argument rules `parseArgs` cannot say; a malformed pass-through option is a usage error (exit 2). */
function checkedRestoreOptions(values: GetValues, positionals: readonly string[]): RestoreOptions {
  let restoreOptions: RestoreOptions;
  try {
    restoreOptions = readRestoreOptions(values);
  } catch (error: unknown) {
    throw error instanceof ValidationError ? new UsageError(error.message) : error;
  }
  const restoring = values.restore !== undefined;
  if (anyRestoreOption(restoreOptions) && !restoring) {
    throw new UsageError('--table, --schema, --data-only, --clean, --if-exists and --jobs go with --restore');
  }
  if (values.globals && (restoring || positionals.length > 1)) {
    throw new UsageError(
      '--globals takes at most an <id>|latest and writes SQL for psql: give -o FILE or -, not --restore',
    );
  }
  if (values.output !== undefined && restoring) {
    throw new UsageError('-o and --restore exclude each other: write a file or restore, not both');
  }
  if (values.encrypted && restoring) {
    throw new UsageError('--restore needs the decrypted archive; drop --encrypted');
  }
  return restoreOptions;
}

/** Where checked bytes wait: DUMP_BAG_WORK_DIR, else beside the output file, else the temporary folder. */
function workDirFor(file: string | undefined): string {
  return readSetting(SETTINGS.workDir) ?? (file === undefined ? tmpdir() : dirname(resolve(file)));
}

/** Writes checked plaintext to a file (atomically) or, with no file, to standard output. */
async function writeOut(archive: Readable, file: string | undefined): Promise<string> {
  if (file === undefined) {
    await pipeline(archive, process.stdout);
    return 'written to standard output';
  }
  await writeFileAtomically(archive, file);
  return `wrote ${file}`;
}

/** Feeds checked plaintext to pg_restore; `--jobs` seeks in its input, so it gets a file written from checked bytes. */
async function restoreTo(
  archive: Readable,
  conninfo: string,
  options: RestoreOptions,
  bytes: number,
): Promise<string> {
  const args = restoreArgs(options);
  if (options.jobs === undefined) {
    await restoreArchive(archive, conninfo, { args });
  } else {
    await withArchiveFile(archive, workDirFor(undefined), bytes, (path) =>
      restoreArchive(undefined, conninfo, { args, file: path }),
    );
  }
  return 'restored into the given database';
}

export async function run({ values, positionals }: Parsed<typeof commandSpecs.get.options>): Promise<number> {
  const restoreOptions = checkedRestoreOptions(values, positionals);
  if (values.globals) {
    return getGlobals(positionals[0] ?? 'latest', { ...values, allowUnsigned: values['allow-unsigned'] });
  }
  const [database, id = 'latest'] = positionals;
  if (database === undefined) throw new UsageError('missing <database>');
  const client = clientFromEnv(values.url);
  const record = await client.dump(database, id);
  // Who wrote it, before anything is downloaded: the record must be signed by the pinned bag key.
  const allowUnsigned = values['allow-unsigned'];
  assertRecordSigned(record, await pinForReading(client, allowUnsigned), { allowUnsigned });
  const conninfo = values.restore;
  // Said before anything is downloaded or decrypted: an older pg_restore would fail at the end.
  if (conninfo !== undefined) await assertRestorable(record);
  const decryption: Decryption = values.encrypted
    ? { mode: 'none' }
    : await prepareDecryption(record, { keyFile: values.key });
  // By id, not `latest`: a dump finishing meanwhile must not swap the bytes under the checked record.
  const { url } = await client.downloadUrl(record.database, record.id);
  const progress = createProgress(`${record.database} ${record.id}`, record.bytes);
  const file =
    conninfo !== undefined || values.output === '-'
      ? undefined
      : (values.output ?? defaultFileName(record, values.encrypted));
  const sink = (archive: Readable): Promise<string> =>
    conninfo === undefined
      ? writeOut(archive, file)
      : restoreTo(archive, conninfo, restoreOptions, record.bytes);
  const options = {
    record,
    url,
    decryption,
    foreign: values.foreign,
    onBytes: (n: number) => progress.update(n),
  };
  let where: string;
  try {
    if (values.stream) {
      console.error(
        'dump-bag get: --stream releases plaintext before the SHA-256 and the integrity check (MDC) are done: a tampered dump may be partly written or restored',
      );
      where = await sink(await openDump(options));
    } else {
      const workDir = workDirFor(file);
      const sameFolder = file !== undefined && resolve(workDir) === dirname(resolve(file));
      where = await withVerifiedDump(
        { ...options, workDir, alsoNeeded: sameFolder ? record.bytes : 0 },
        sink,
      );
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

/** `get --globals`: the roles and tablespaces SQL of a run, checked like a dump, to a file or stdout. */
async function getGlobals(
  id: string,
  values: {
    output?: string;
    key?: string;
    encrypted: boolean;
    url?: string;
    foreign: boolean;
    allowUnsigned: boolean;
  },
): Promise<number> {
  const client = clientFromEnv(values.url);
  const record = await client.globalsDump(id);
  // Signed by the bag like a dump's record, checked before anything is downloaded.
  assertRecordSigned(record, await pinForReading(client, values.allowUnsigned), {
    allowUnsigned: values.allowUnsigned,
  });
  if (typeof record.id !== 'string' || !SAFE_ID.test(record.id)) {
    throw new ValidationError('the bag answered with a malformed globals id: refusing it');
  }
  const decryption: Decryption = values.encrypted
    ? { mode: 'none' }
    : await prepareDecryption(record, { keyFile: values.key });
  const { url } = await client.globalsUrl(record.id);
  const file =
    values.output === '-'
      ? undefined
      : (values.output ??
        `globals-${record.id}.sql${values.encrypted && record.encryption !== 'none' ? '.gpg' : ''}`);
  const workDir = workDirFor(file);
  const where = await withVerifiedDump(
    {
      record,
      url,
      decryption,
      foreign: values.foreign,
      workDir,
      alsoNeeded: file === undefined ? 0 : record.bytes,
    },
    (archive) => writeOut(archive, file),
  );
  console.error(
    `${where}: globals ${record.id}, SHA-256 verified${decryption.mode === 'none' ? '' : ', decrypted'} (apply with psql -f)`,
  );
  return 0;
}
