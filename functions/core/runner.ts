import type { DatabaseInfo } from './databases';
import { ConfigError } from './errors';

/** Where one database's dump runs. */
export type Runner = 'lambda' | 'fargate';
/** The setting: one runner for every database, or `auto` (by size, and Fargate after a Lambda timeout). */
export type RunnerSetting = Runner | 'auto';

export const RUNNER_SETTINGS: readonly RunnerSetting[] = ['lambda', 'fargate', 'auto'];

/** Where a dump ran, as its record says: one of the runners in AWS, or `local` for the command line. */
export type RecordedRunner = Runner | 'local';
export const RECORDED_RUNNERS: readonly RecordedRunner[] = ['lambda', 'fargate', 'local'];

/**
 * PROVISIONAL, the one place for it: databases larger than this many GB (on disk) go to Fargate
 * under `auto`. It awaits the bench measurement of how many GB a 1-vCPU Lambda dumps in 14.5
 * minutes (issue 14); 5 GB is a conservative guess, well under the ~10 GB peers hit.
 */
export const DEFAULT_FARGATE_ABOVE_GB = 5;

/** The environment the plan reads its runner choice from (set by infra/constructs/backup-workflow.ts). */
export const DUMP_RUNNER_ENV = 'DUMP_BAG_DUMP_RUNNER';
export const FARGATE_ABOVE_GB_ENV = 'DUMP_BAG_FARGATE_ABOVE_GB';

export interface RunnerChoice {
  readonly runner: RunnerSetting;
  /** Databases above this size (bytes) go to Fargate under `auto`. */
  readonly fargateAboveBytes: number;
}

const GB = 1024 ** 3;

/** The runner choice from the environment; absent means Lambda only (a stack without Fargate). */
export function readRunnerChoice(env: Record<string, string | undefined> = process.env): RunnerChoice {
  const raw = env[DUMP_RUNNER_ENV]?.trim() || 'lambda';
  if (!RUNNER_SETTINGS.includes(raw as RunnerSetting)) {
    throw new ConfigError(`${DUMP_RUNNER_ENV} must be one of ${RUNNER_SETTINGS.join(', ')}, got "${raw}"`);
  }
  const gbText = env[FARGATE_ABOVE_GB_ENV]?.trim();
  const gb = gbText ? Number(gbText) : DEFAULT_FARGATE_ABOVE_GB;
  if (!Number.isFinite(gb) || gb < 0 || gb > 100_000) {
    throw new ConfigError(`${FARGATE_ABOVE_GB_ENV} must be a number of GB from 0 to 100000, got "${gbText}"`);
  }
  return { runner: raw as RunnerSetting, fargateAboveBytes: gb * GB };
}

/** The runner of one database: a fixed setting wins; `auto` sends what is larger than the threshold to Fargate. */
export function chooseRunner(database: DatabaseInfo, choice: RunnerChoice): Runner {
  if (choice.runner !== 'auto') return choice.runner;
  return (database.sizeBytes ?? 0) > choice.fargateAboveBytes ? 'fargate' : 'lambda';
}
