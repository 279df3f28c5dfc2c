import { busyShare, machineTicks, measure, round } from '../measure';
import { BUCKET, type S3Target } from '../s3-targets';

export interface ShellPipelineRun {
  readonly wallSeconds: number;
  readonly machineBusy?: number;
}

export const SHELL_PIPELINE = 'pg_dump -Fc -Z1 | gpg -z0 -e -r KEY | aws s3 cp - s3://…';

/** The pipeline a shell script would use; only the shell holds the pipes, the commands are fixed. */
export async function shellPipeline(options: {
  readonly env: NodeJS.ProcessEnv;
  readonly scratch: string;
  readonly s3: S3Target;
  readonly pgDump: string;
  readonly database: string;
  readonly gnupgHome: string;
  readonly fingerprint: string;
}): Promise<ShellPipelineRun> {
  const before = machineTicks();
  const measured = await measure(
    [
      'bash',
      '-c',
      'set -o pipefail; "$PG_DUMP" -Fc -Z1 "$DB" | gpg --homedir "$GNUPGHOME" --batch --trust-model always -z 0 -e -r "$KEY" | aws s3 cp - "s3://$BUCKET/shell/$DB.pg.gpg" --endpoint-url "$AWS_ENDPOINT_URL_S3" --only-show-errors',
    ],
    {
      env: {
        ...options.env,
        ...options.s3.env,
        PG_DUMP: options.pgDump,
        DB: options.database,
        GNUPGHOME: options.gnupgHome,
        KEY: options.fingerprint,
        BUCKET,
      },
      scratch: options.scratch,
    },
  );
  if (measured.code !== 0) throw new Error(`the shell pipeline exited ${measured.code}: ${measured.stderr}`);
  return { wallSeconds: round(measured.wallSeconds, 3), machineBusy: busyShare(before, machineTicks()) };
}
