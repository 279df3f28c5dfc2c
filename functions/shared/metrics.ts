import type { DumpResult } from '../core/backup';

/** CloudWatch namespace of Dump Bag's own metrics; the alarms in infra/ read the same constants. */
export const METRIC_NAMESPACE = 'DumpBag';
/**
 * 1 for a dump that was stored and recorded, 0 for a failed one. The only metric: each database is
 * a custom metric billed monthly, and sizes and times are in the logs and the EventBridge events.
 */
export const DUMP_SUCCEEDED_METRIC = 'DumpSucceeded';
/** Dimension holding the database name. */
export const DATABASE_DIMENSION = 'Database';
/** Dimension holding the service name: every database's dumps together. */
export const SERVICE_DIMENSION = 'Service';

/**
 * One CloudWatch Embedded Metric Format line for a finished dump, per database and for the whole
 * service. Written straight to stdout: Lambda's console.log would prefix it and hide the JSON.
 */
export function dumpMetricsLine(result: DumpResult, service: string, now = Date.now()): string {
  return JSON.stringify({
    _aws: {
      Timestamp: now,
      CloudWatchMetrics: [
        {
          Namespace: METRIC_NAMESPACE,
          Dimensions: [[DATABASE_DIMENSION], [SERVICE_DIMENSION]],
          Metrics: [{ Name: DUMP_SUCCEEDED_METRIC, Unit: 'Count' }],
        },
      ],
    },
    [DATABASE_DIMENSION]: result.database,
    [SERVICE_DIMENSION]: service,
    [DUMP_SUCCEEDED_METRIC]: result.status === 'ok' ? 1 : 0,
  });
}

export function emitDumpMetrics(
  result: DumpResult,
  service = process.env.POWERTOOLS_SERVICE_NAME ?? 'dump-bag',
) {
  process.stdout.write(`${dumpMetricsLine(result, service)}\n`);
}
