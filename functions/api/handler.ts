import { KMSClient } from '@aws-sdk/client-kms';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { ConfigError, NotFoundError } from '../core/errors';
import { KmsSigner, SIGNING_KEY_ID_ENV } from '../core/kms-signer';
import { createS3Client } from '../core/s3';
import { SETTINGS, setting } from '../core/settings';
import { logger } from '../shared/lambda';
import { type ApiApp, createApp, keySources } from './app';
import type { ApiResult } from './http-types';
import { startOnDemandDump } from './on-demand';
import { type ApiLogger, errorResult } from './responses';
import { readApiSettings } from './settings';

const apiLogger: ApiLogger = {
  info: (message, attributes) => logger.info(message, attributes ?? {}),
  error: (message, attributes) => logger.error(message, attributes ?? {}),
};

/** Built once per container; the SDK reads its region and endpoint at the first call. */
const sfnClient = new SFNClient({});
const kmsClient = new KMSClient({});

/**
 * The API as the Lambda runs it: S3 from the SDK's environment, keys read per request, and
 * on-demand dumps started as executions of the backup state machine, one per database at a time.
 */
export function appFromEnv(
  env: Record<string, string | undefined> = process.env,
  clients: { sfn?: SFNClient; kms?: KMSClient; now?: () => Date } = {},
): ApiApp {
  const settings = readApiSettings(env);
  const stateMachineArn = setting('stateMachineArn', env);
  const sfn = clients.sfn ?? sfnClient;
  // The public half only (kms:GetPublicKey), asked once per container; without a key id, /signing-key is 404.
  const keyId = env[SIGNING_KEY_ID_ENV]?.trim();
  const signingKey = keyId ? new KmsSigner(clients.kms ?? kmsClient, keyId) : undefined;
  return createApp({
    s3: createS3Client(env),
    bucket: settings.bucket,
    retention: settings.retention,
    urlExpirySeconds: settings.urlExpirySeconds,
    ...keySources(settings),
    signingKey: async () => {
      if (!signingKey) throw new NotFoundError(`this bag has no signing key (${SIGNING_KEY_ID_ENV})`);
      return await signingKey.publicKeyPem();
    },
    startDump: async (database) => {
      if (!stateMachineArn) throw new ConfigError(`${SETTINGS.stateMachineArn.env} is not set`);
      const executionArn = await startOnDemandDump(sfn, stateMachineArn, database, clients.now?.());
      logger.info('started an on-demand dump', { executionArn });
    },
    logger: apiLogger,
  });
}

/** Built at the first call whose settings are valid, then reused with its S3 client for the container's life. */
let app: ApiApp | undefined;

/** API Gateway HTTP API (payload v2) → the Dump Bag API; ApiResult is an APIGatewayProxyStructuredResultV2 that always has a body. */
export async function handler(event: APIGatewayProxyEventV2, context?: Context): Promise<ApiResult> {
  if (context) logger.addContext(context);
  try {
    app ??= appFromEnv();
  } catch (error: unknown) {
    // A bad setting is the operator's to fix: logged in full, answered with a bare 500.
    return errorResult(error, apiLogger, context?.awsRequestId);
  }
  return await app(event);
}
