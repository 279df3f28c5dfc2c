import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import type { DumpResult } from '../core/backup';
import { dumpDatabase } from '../core/backup';
import { readConfig, type Trigger } from '../core/config';
import type { PgConnection, ServerInfo } from '../core/databases';
import { errorMessage, ValidationError } from '../core/errors';
import { loadEncryption } from '../core/keys';
import { KmsSigner, readSigningKeyId } from '../core/kms-signer';
import { connectionSecrets } from '../core/libpq';
import { assertDatabaseName } from '../core/naming';
import { redact } from '../core/redact';
import { createS3Client } from '../core/s3';
import { readConnection } from '../shared/connection';
import type { DumpEvent } from '../shared/events';
import { logger } from '../shared/lambda';
import { emitDumpMetrics } from '../shared/metrics';

/**
 * Time kept back from the Lambda timeout: aborting the multipart upload, returning the result and
 * writing the logs must fit in it, or Lambda kills the function and the abort never happens.
 */
export const DEADLINE_MARGIN_MS = 10_000;

// Built once per container and reused by every invocation it serves.
const s3 = createS3Client();
const secrets = new SecretsManagerClient({});
const kms = new KMSClient({});

function parseEvent(event: unknown): DumpEvent {
  const e = (event ?? {}) as Partial<DumpEvent>;
  if (typeof e.database !== 'string') throw new ValidationError('the event has no database name');
  assertDatabaseName(e.database);
  const server = e.server as Partial<ServerInfo> | undefined;
  if (typeof server?.version !== 'string' || !Number.isInteger(server.major)) {
    throw new ValidationError('the event has no server version: it comes from the plan step');
  }
  const trigger: Trigger = e.trigger === 'manual' ? 'manual' : 'schedule';
  const sizeBytes = typeof e.sizeBytes === 'number' ? e.sizeBytes : undefined;
  return { database: e.database, server: server as ServerInfo, trigger, sizeBytes };
}

/**
 * One Map item: dumps one database through the core and returns its result; the state machine's
 * prune step (its own function and role) applies retention after an ok result. A failed dump is a
 * result (status "failed"), not an exception, so the other databases go on and the report step
 * can name it; the dump stops itself before the Lambda timeout and says that time ran out.
 */
export const handler = async (event: DumpEvent, context: Context): Promise<DumpResult> => {
  logger.addContext(context);
  const started = Date.now();
  const database = typeof event?.database === 'string' ? event.database : '';
  let connection: PgConnection | undefined;
  let result: DumpResult;
  try {
    const request = parseEvent(event);
    const config = readConfig();
    // No key, no dump: an unsigned record would be refused by every reader.
    const signer = new KmsSigner(kms, readSigningKeyId());
    const encryption = await loadEncryption(config);
    connection = await readConnection(process.env, secrets);
    result = await dumpDatabase(
      {
        s3,
        bucket: config.bucket,
        connection,
        pgDump: { pgDumpPath: config.pgDumpPath, pgRoot: config.pgRoot },
        compression: config.compression,
        dumpOptions: config.dumpOptions,
        retention: config.retention,
        signer,
      },
      {
        database: request.database,
        server: request.server,
        encryption,
        trigger: request.trigger,
        expectedBytes: request.sizeBytes,
        deadline: Date.now() + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS,
      },
    );
  } catch (error: unknown) {
    result = {
      database,
      status: 'failed',
      seconds: (Date.now() - started) / 1000,
      error: redact(errorMessage(error), connectionSecrets(connection)),
    };
  }
  emitDumpMetrics(result);
  if (result.status === 'ok') {
    logger.info('dump stored', {
      database: result.database,
      key: result.key,
      bytes: result.bytes,
      seconds: result.seconds,
    });
  } else {
    logger.error('dump failed', { database: result.database, error: result.error, seconds: result.seconds });
  }
  return result;
};
