import { parseArgs } from 'node:util';
import { cleanupIncomplete } from '../../functions/core/cleanup';
import { readBucket } from '../../functions/core/config';
import { createS3Client } from '../../functions/core/s3';

export const usage =
  'dump-bag cleanup [--older-than MINUTES] [--json]   abort uploads and remove unrecorded dumps left by killed runs';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { 'older-than': { type: 'string', default: '0' }, json: { type: 'boolean', default: false } },
  });
  const minutes = Number(values['older-than']);
  if (!Number.isFinite(minutes) || minutes < 0) {
    console.error(`dump-bag cleanup: --older-than takes minutes (0 or more), got "${values['older-than']}"`);
    return 2;
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
