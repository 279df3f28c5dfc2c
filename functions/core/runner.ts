import type { DatabaseInfo } from './databases';
import { readSetting, SETTINGS } from './settings';

/** Where one database's dump runs. */
export type Runner = 'lambda' | 'fargate';
/** The setting: one runner for every database, or `auto` (by size, and Fargate after a Lambda timeout). */
export type RunnerSetting = Runner | 'auto';

export const RUNNER_SETTINGS: readonly RunnerSetting[] = SETTINGS.dumpRunner.parser.values;

/** Where a dump ran, as its record says: one of the runners in AWS, or `local` for the command line. */
export type RecordedRunner = Runner | 'local';
export const RECORDED_RUNNERS: readonly RecordedRunner[] = ['lambda', 'fargate', 'local'];

/**
 * Databases larger than this many GB (on disk) go to Fargate under `auto`: a sixth of the least one
 * core dumped in 14.5 minutes in the bench (bench/README.md, "Lambda size limit").
 */
export const DEFAULT_FARGATE_ABOVE_GB = SETTINGS.fargateAboveGb.default;

/** The environment the plan reads its runner choice from (set by infra/constructs/backup-workflow.ts). */
export const DUMP_RUNNER_ENV = SETTINGS.dumpRunner.env;
export const FARGATE_ABOVE_GB_ENV = SETTINGS.fargateAboveGb.env;

export interface RunnerChoice {
  readonly runner: RunnerSetting;
  /** Databases above this size (bytes) go to Fargate under `auto`. */
  readonly fargateAboveBytes: number;
}

const GB = 1024 ** 3;

/** The runner choice from the environment; absent means Lambda only (a stack without Fargate). */
export function readRunnerChoice(env: Record<string, string | undefined> = process.env): RunnerChoice {
  return {
    runner: readSetting(SETTINGS.dumpRunner, env),
    fargateAboveBytes: readSetting(SETTINGS.fargateAboveGb, env) * GB,
  };
}

/** The runner of one database: a fixed setting wins; `auto` sends what is larger than the threshold to Fargate. */
export function chooseRunner(database: DatabaseInfo, choice: RunnerChoice): Runner {
  if (choice.runner !== 'auto') return choice.runner;
  return (database.sizeBytes ?? 0) > choice.fargateAboveBytes ? 'fargate' : 'lambda';
}
