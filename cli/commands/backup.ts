import { type BackupRequest, type BackupSummary, runBackup } from '../../functions/core/backup';
import { readConfig, type Trigger } from '../../functions/core/config';
import { formatSize } from '../../functions/core/listing';
import { notifyRunFromEnv } from '../../functions/core/notify';
import { type Parsed, UsageError } from '../command-line';
import type { commandSpecs } from '../command-specs';
import { targetFromEnv } from '../context';

/** Runs one backup and prints it; the exit status is 0 only when every database succeeded. */
export async function run({ values }: Parsed<typeof commandSpecs.backup.options>): Promise<number> {
  if (values.trigger !== 'schedule' && values.trigger !== 'manual') {
    throw new UsageError(`--trigger is schedule or manual, got "${values.trigger}"`);
  }
  const summary = await backupFromEnv({
    trigger: values.trigger,
    onResult: values.json
      ? undefined
      : (r) =>
          console.log(
            r.status === 'ok'
              ? `ok      ${r.database}  ${r.key}  ${formatSize(r.bytes ?? 0)}  ${r.seconds.toFixed(1)} s${r.pruned?.length ? `  (deleted ${r.pruned.length} old)` : ''}${r.retentionError ? `  retention failed: ${r.retentionError}` : ''}`
              : `FAILED  ${r.database}: ${r.error}`,
          ),
  });
  // Told after the run, never able to fail it: delivery problems are logged by webhook number.
  await notifyRunFromEnv(summary);
  if (values.json) {
    console.log(JSON.stringify(jsonSummary(summary), null, 2));
  } else if (summary.error) {
    console.error(`dump-bag backup: ${summary.error}`);
  } else if (summary.results.length === 0) {
    console.error('dump-bag backup: no database selected');
  }
  if (!values.json && summary.globals) {
    const g = summary.globals;
    console.log(
      g.status === 'ok' ? `ok      globals  ${g.key}  ${formatSize(g.bytes ?? 0)}` : `FAILED  ${g.error}`,
    );
  }
  return summary.ok && summary.results.length > 0 ? 0 : 1;
}

/** One backup configured by the environment; a cron job's run counts as scheduled unless told otherwise. */
export async function backupFromEnv(
  options: { trigger?: Trigger; onResult?: BackupRequest['onResult'] } = {},
): Promise<BackupSummary> {
  const config = readConfig();
  return await runBackup(targetFromEnv(config), {
    config,
    trigger: options.trigger ?? 'schedule',
    onResult: options.onResult,
    onKeyWarning: (warning) => console.error(`dump-bag backup: warning: ${warning.message}`),
  });
}

/** `--json`: one entry per database: database, key, bytes, seconds, status, error. */
export function jsonSummary(summary: BackupSummary) {
  return {
    ok: summary.ok && summary.results.length > 0,
    error:
      summary.error ?? (summary.results.length === 0 && !summary.error ? 'no database selected' : undefined),
    server: summary.server?.version,
    databases: summary.results.map((r) => ({
      database: r.database,
      key: r.key ?? null,
      bytes: r.bytes ?? null,
      sha256: r.sha256 ?? null,
      seconds: r.seconds,
      status: r.status,
      error: r.error ?? null,
      pruned: r.pruned ?? [],
    })),
    globals: summary.globals ?? null,
  };
}
