import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { BackupTarget, DumpResult } from '../core/backup';
import { dumpDatabase } from '../core/backup';
import { readConfig, type Trigger } from '../core/config';
import type { PgConnection, ServerInfo } from '../core/databases';
import type { Encryption } from '../core/encryption';
import { errorMessage, ValidationError } from '../core/errors';
import { loadEncryption } from '../core/keys';
import { KmsSigner, readSigningKeyId } from '../core/kms-signer';
import { connectionSecrets } from '../core/libpq';
import { assertDatabaseName } from '../core/naming';
import { redact } from '../core/redact';
import type { Runner } from '../core/runner';
import { readConnection } from './connection';
import type { DumpEvent } from './events';
import { logger } from './lambda';
import { emitDumpMetrics } from './metrics';

/** A Map item as the state machine hands it to either runner; anything else is refused by name. */
export function parseDumpEvent(event: unknown): DumpEvent {
  const e = (event ?? {}) as Partial<DumpEvent>;
  if (typeof e.database !== 'string') throw new ValidationError('the event has no database name');
  assertDatabaseName(e.database);
  const server = parseServer(e.server);
  const trigger: Trigger = e.trigger === 'manual' ? 'manual' : 'schedule';
  const sizeBytes = typeof e.sizeBytes === 'number' ? e.sizeBytes : undefined;
  return { database: e.database, server, trigger, sizeBytes };
}

/** The SDK clients a dump needs, built once per container by the caller. */
export interface DumpClients {
  readonly s3: S3Client;
  readonly secrets: SecretsManagerClient;
  readonly kms: KMSClient;
}

/**
 * The bag's target and keys in AWS, from the environment: no signing key, no dump (an unsigned record
 * would be refused by every reader). The login is handed to `onConnection` as soon as it is read, so
 * that a later failure's message can be scrubbed of it.
 */
async function awsBackupTarget(
  clients: DumpClients,
  onConnection: (connection: PgConnection) => void,
): Promise<{ target: BackupTarget; encryption: Encryption }> {
  const config = readConfig();
  const signer = new KmsSigner(clients.kms, readSigningKeyId());
  const encryption = await loadEncryption(config);
  const connection = await readConnection(process.env, clients.secrets);
  onConnection(connection);
  const target: BackupTarget = {
    s3: clients.s3,
    bucket: config.bucket,
    connection,
    pgDump: { pgDumpPath: config.pgDumpPath, pgRoot: config.pgRoot },
    compression: config.compression,
    dumpOptions: config.dumpOptions,
    retention: config.retention,
    signer,
  };
  return { target, encryption };
}

/** What one runner's dump is: its event read, its dump, and its failure made a result. */
export interface DumpSteps<R, T> {
  /** Reads the event; it runs before anything is read from AWS. */
  readonly parse: () => R;
  readonly dump: (request: R, aws: { target: BackupTarget; encryption: Encryption }) => Promise<T>;
  /** The failed result; `scrub` blanks the database login out of a text, once it has been read. */
  readonly failed: (error: unknown, scrub: (text: string) => string) => T;
}

/**
 * Parses the event, then dumps to the bag's target and keys in AWS. A failure at any step is the
 * result `failed` makes, never an exception, so the run goes on and reports it.
 */
export async function dumpOrFailed<R, T>(clients: DumpClients, steps: DumpSteps<R, T>): Promise<T> {
  let connection: PgConnection | undefined;
  try {
    const request = steps.parse();
    const aws = await awsBackupTarget(clients, (c) => {
      connection = c;
    });
    return await steps.dump(request, aws);
  } catch (error: unknown) {
    return steps.failed(error, (text) => redact(text, connectionSecrets(connection)));
  }
}

/** The plan's server version as an event carries it. */
export function parseServer(value: unknown): ServerInfo {
  const server = value as Partial<ServerInfo> | undefined;
  if (typeof server?.version !== 'string' || server.version.length > 200 || !Number.isInteger(server.major)) {
    throw new ValidationError('the event has no server version: it comes from the plan step');
  }
  return server as ServerInfo;
}

/**
 * One database's dump as both runners do it (the Lambda handler and the Fargate entry point):
 * settings from the environment, the core's dump, metrics and a log line. A failed dump is a
 * result (status "failed"), never an exception, so the other databases go on.
 */
export async function dumpOne(
  event: unknown,
  runner: Runner,
  deadline: number,
  clients: DumpClients,
): Promise<DumpResult> {
  const started = Date.now();
  const database =
    typeof (event as DumpEvent | undefined)?.database === 'string' ? (event as DumpEvent).database : '';
  const result = await dumpOrFailed<DumpEvent, DumpResult>(clients, {
    parse: () => parseDumpEvent(event),
    dump: (request, { target, encryption }) =>
      dumpDatabase(target, {
        database: request.database,
        server: request.server,
        encryption,
        trigger: request.trigger,
        expectedBytes: request.sizeBytes,
        deadline,
        runner,
      }),
    failed: (error, scrub) => ({
      database,
      status: 'failed',
      seconds: (Date.now() - started) / 1000,
      error: scrub(errorMessage(error)),
      runner,
    }),
  });
  emitDumpMetrics(result);
  if (result.status === 'ok') {
    logger.info('dump stored', {
      database: result.database,
      runner,
      key: result.key,
      bytes: result.bytes,
      seconds: result.seconds,
    });
  } else {
    logger.error('dump failed', {
      database: result.database,
      runner,
      error: result.error,
      seconds: result.seconds,
    });
  }
  return result;
}
