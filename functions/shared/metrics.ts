import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DumpResult } from '../core/backup';
import { GLOBALS_NAME } from '../core/globals';

/** CloudWatch namespace of Dump Bag's own metrics; the alarms in infra/ read the same constants. */
export const METRIC_NAMESPACE = 'DumpBag';
/**
 * 1 for a dump that was stored and recorded, 0 for a failed one. The only per-database metric: each
 * database is a custom metric billed monthly, and sizes and times are in the logs and the EventBridge events.
 */
export const DUMP_SUCCEEDED_METRIC = 'DumpSucceeded';
/** Days until the first recipient's key (or encryption subkey) expires, from the plan step; the key-expiry alarm reads it. */
export const KEY_EXPIRES_IN_DAYS_METRIC = 'KeyExpiresInDays';
/** Dimension holding the database name. */
export const DATABASE_DIMENSION = 'Database';
/** Dimension holding the service name: every database's dumps together. */
export const SERVICE_DIMENSION = 'Service';

/** One metrics client per container; it writes Embedded Metric Format lines to stdout. */
const metrics = new Metrics({ namespace: METRIC_NAMESPACE });
// Powertools adds a lowercase `service` to every dimension set; the alarms read `Database` and `Service` alone.
metrics.clearDefaultDimensions();

/** Publishes DumpSucceeded for a finished dump, per database and for the whole service. */
export function emitDumpMetrics(
  result: DumpResult,
  service = process.env.POWERTOOLS_SERVICE_NAME ?? 'dump-bag',
): void {
  metrics.addDimensions({ [DATABASE_DIMENSION]: result.database });
  metrics.addDimensions({ [SERVICE_DIMENSION]: service });
  metrics.addMetric(DUMP_SUCCEEDED_METRIC, MetricUnit.Count, result.status === 'ok' ? 1 : 0);
  metrics.publishStoredMetrics();
}

/**
 * Publishes DumpSucceeded for the run's globals dump under Database "(globals)" (GLOBALS_NAME) only: kept out of
 * the service's sum, so a run whose globals alone succeeded never looks like a fresh database dump.
 */
export function emitGlobalsMetric(ok: boolean): void {
  metrics.addDimensions({ [DATABASE_DIMENSION]: GLOBALS_NAME });
  metrics.addMetric(DUMP_SUCCEEDED_METRIC, MetricUnit.Count, ok ? 1 : 0);
  metrics.publishStoredMetrics();
}

/** Publishes KeyExpiresInDays for the service: the days left of the recipient key that expires first. */
export function emitKeyExpiryMetric(
  daysLeft: number,
  service = process.env.POWERTOOLS_SERVICE_NAME ?? 'dump-bag',
): void {
  metrics.addDimensions({ [SERVICE_DIMENSION]: service });
  metrics.addMetric(KEY_EXPIRES_IN_DAYS_METRIC, MetricUnit.Count, daysLeft);
  metrics.publishStoredMetrics();
}
