import type { BenchKeys } from '../keys';
import type { S3Target } from '../s3-targets';

/** What the scenarios that read a stored dump back (restore, rekey) share: an S3 that keeps it. */
export interface KeptDumpScenario {
  readonly root: string;
  readonly scratch: string;
  readonly env: NodeJS.ProcessEnv;
  /** The local S3 server: the sink keeps no dump. */
  readonly s3: S3Target;
  readonly keys: BenchKeys;
  readonly database: string;
  readonly log: (line: string) => void;
}
