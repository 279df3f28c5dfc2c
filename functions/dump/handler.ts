import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import type { DumpResult } from '../core/backup';
import type { GlobalsResult } from '../core/globals';
import { tuneHeapForStreaming } from '../core/heap-settings';
import { createS3Client } from '../core/s3';
import { dumpOne } from '../shared/dump-one';
import type { DumpEvent, GlobalsEvent } from '../shared/events';
import { logger } from '../shared/lambda';
import { dumpGlobalsOnce, isGlobalsEvent } from './globals';

/**
 * Time kept back from the Lambda timeout: aborting the multipart upload, returning the result and
 * writing the logs must fit in it, or Lambda kills the function and the abort never happens.
 */
export const DEADLINE_MARGIN_MS = 10_000;

tuneHeapForStreaming();

// Built once per container and reused by every invocation it serves.
const clients = { s3: createS3Client(), secrets: new SecretsManagerClient({}), kms: new KMSClient({}) };

/**
 * One Map item: dumps one database through the core and returns its result; the state machine's
 * prune step (its own function and role) applies retention after an ok result. A failed dump is a
 * result (status "failed"), not an exception, so the other databases go on and the report step
 * can name it; the dump stops itself before the Lambda timeout and says that time ran out
 * (`outOfTime`), which the state machine may retry on Fargate. After the Map, the same function
 * makes the run's one globals dump (`{"globals": true, …}`): it has the layer, the database and the signer.
 */
export const handler = (
  event: DumpEvent | GlobalsEvent,
  context: Context,
): Promise<DumpResult | GlobalsResult> => {
  logger.addContext(context);
  if (isGlobalsEvent(event)) return dumpGlobalsOnce(event, clients);
  const deadline = Date.now() + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS;
  return dumpOne(event, 'lambda', deadline, clients);
};
