import { cleanupIncomplete } from '../../functions/core/cleanup';
import { readBucket } from '../../functions/core/config';
import { createS3Client } from '../../functions/core/s3';
import { type Parsed, UsageError } from '../command-line';
import type { commandSpecs } from '../command-specs';

export async function run({ values }: Parsed<typeof commandSpecs.cleanup.options>): Promise<number> {
  const minutes = Number(values['older-than']);
  if (!Number.isFinite(minutes) || minutes < 0) {
    throw new UsageError(`--older-than takes minutes (0 or more), got "${values['older-than']}"`);
  }
  const result = await cleanupIncomplete(createS3Client(), readBucket(), { olderThanMs: minutes * 60_000 });
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    for (const u of result.abortedUploads) console.log(`aborted upload  ${u.key}`);
    for (const key of result.deletedOrphans) console.log(`deleted unrecorded dump  ${key}`);
    console.log(
      `${result.abortedUploads.length} upload(s) aborted, ${result.deletedOrphans.length} unrecorded dump(s) deleted`,
    );
  }
  return 0;
}
