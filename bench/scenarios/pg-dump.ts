import { busyShare, machineTicks, measure, round } from '../measure';

export interface PgDumpRun {
  readonly compression: string;
  readonly wallSeconds: number;
  /** pg_dump's user + system CPU (GNU time), when available. */
  readonly cpuSeconds?: number;
  readonly machineBusy?: number;
}

/** `pg_dump -Fc -Z<compression> --no-sync -f /dev/null`: the floor a backup is compared with. */
export async function pgDumpAlone(options: {
  readonly env: NodeJS.ProcessEnv;
  readonly scratch: string;
  readonly pgDump: string;
  readonly database: string;
  readonly compression: string;
  /** A command prefix such as `taskset -c 0`. */
  readonly pin?: readonly string[];
}): Promise<PgDumpRun> {
  const before = machineTicks();
  const measured = await measure(
    [
      ...(options.pin ?? []),
      options.pgDump,
      '-Fc',
      `--compress=${options.compression}`,
      '--no-sync',
      '-f',
      '/dev/null',
      options.database,
    ],
    { env: options.env, scratch: options.scratch },
  );
  if (measured.code !== 0) throw new Error(`pg_dump exited ${measured.code}: ${measured.stderr}`);
  return {
    compression: options.compression,
    wallSeconds: round(measured.wallSeconds, 3),
    cpuSeconds: measured.cpuSecondsWithChildren,
    machineBusy: busyShare(before, machineTicks()),
  };
}
