import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { readConfig, type Trigger } from '../core/config';
import { type PgConnection, planBackup } from '../core/databases';
import { ConfigError, errorMessage, ValidationError } from '../core/errors';
import { checkKeyExpiry } from '../core/key-expiry';
import { loadEncryption } from '../core/keys';
import { connectionSecrets } from '../core/libpq';
import { assertDatabaseName } from '../core/naming';
import { redact } from '../core/redact';
import { chooseRunner, readRunnerChoice } from '../core/runner';
import { SETTINGS } from '../core/settings';
import { readConnection } from '../shared/connection';
import type { PlanEvent, PlanOutput } from '../shared/events';
import { logger } from '../shared/lambda';
import { emitKeyExpiryMetric } from '../shared/metrics';

// Built once per container and reused by every invocation it serves.
const secrets = new SecretsManagerClient({});

function parseTrigger(value: unknown): Trigger {
  if (value === undefined) return 'schedule';
  if (value === 'schedule' || value === 'manual') return value;
  throw new ValidationError(`trigger must be "schedule" or "manual", got ${JSON.stringify(value)}`);
}

/** The databases an event asks for; each must be one the bag backs up, so a request cannot widen the selection. */
function requestedDatabases(
  value: unknown,
  config: { databases?: readonly string[]; exclude: readonly string[] },
): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string')) {
    throw new ValidationError('databases must be a non-empty list of database names');
  }
  for (const name of value) {
    assertDatabaseName(name);
    if (config.exclude.includes(name)) {
      throw new ValidationError(`${JSON.stringify(name)} is excluded from backups (DUMP_BAG_EXCLUDE)`);
    }
    if (config.databases && !config.databases.includes(name)) {
      throw new ValidationError(
        `${JSON.stringify(name)} is not among the databases this bag backs up (DUMP_BAG_DATABASES)`,
      );
    }
  }
  return value;
}

/**
 * The state machine's first step: checks the keys (encryption fails closed before any database is
 * touched), then lists the databases to dump with their sizes and the server's version.
 * Any failure is thrown and fails the execution, its message scrubbed of the password.
 */
export const handler = async (event: PlanEvent | null, context: Context): Promise<PlanOutput> => {
  logger.addContext(context);
  let connection: PgConnection | undefined;
  try {
    const config = readConfig();
    const runners = readRunnerChoice();
    const trigger = parseTrigger(event?.trigger);
    const databases = requestedDatabases(event?.databases, config);
    const encryption = await loadEncryption(config);
    const expiry = await checkKeyExpiry(
      encryption,
      config.keyExpiryWarningDays ?? SETTINGS.keyExpiryWarningDays.default,
    );
    for (const warning of expiry.warnings) {
      logger.warn(warning.message, {
        fingerprint: warning.fingerprint,
        expiresAt: warning.expiresAt.toISOString(),
        daysLeft: warning.daysLeft,
      });
    }
    // A key that never expires reads as ten years, so a renewed key clears the alarm.
    if (encryption.mode === 'gpg') emitKeyExpiryMetric(Math.min(expiry.daysLeft ?? 3650, 3650));
    connection = await readConnection(process.env, secrets);
    const plan = await planBackup(connection, {
      databases: databases ?? config.databases,
      exclude: config.exclude,
    });
    if (plan.databases.length === 0) {
      throw new ConfigError('no database selected: check DUMP_BAG_DATABASES and DUMP_BAG_EXCLUDE');
    }
    logger.info('planned backup', {
      trigger,
      server: plan.server.version,
      databases: plan.databases.map((d) => `${d.name} (${chooseRunner(d, runners)})`),
      totalBytes: plan.databases.reduce((sum, d) => sum + (d.sizeBytes ?? 0), 0),
    });
    // Each database's runner, so the Map's Choice sends it to Lambda or Fargate.
    const withRunner = plan.databases.map((d) => ({ ...d, runner: chooseRunner(d, runners) }));
    return { trigger, server: plan.server, databases: withRunner };
  } catch (error: unknown) {
    const message = redact(errorMessage(error), connectionSecrets(connection));
    logger.error('planning the backup failed', { error: message });
    const failure = new Error(message);
    failure.name = error instanceof Error ? error.name : 'Error';
    throw failure;
  }
};
