import { cleanupIncomplete, parseDuration } from '../../functions/core/cleanup';
import { readBucket } from '../../functions/core/config';
import { errorMessage } from '../../functions/core/errors';
import { createS3Client } from '../../functions/core/s3';
import { type Parsed, UsageError } from '../command-line';
import type { commandSpecs } from '../command-specs';

export async function run({ values }: Parsed<typeof commandSpecs.cleanup.options>): Promise<number> {
  let olderThanMs: number;
  try {
    olderThanMs = parseDuration(values['older-than']);
  } catch (error: unknown) {
    throw new UsageError(`--older-than: ${errorMessage(error)}`);
  }
  const result = await cleanupIncomplete(createS3Client(), readBucket(), { olderThanMs });
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
