import { Logger } from '@aws-lambda-powertools/logger';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ConfigError } from '../core/errors';
import { createS3Client } from '../core/s3';
import { type ApiApp, type ApiLogger, createApp, errorResult, keySources } from './app';
import type { ApiEvent, ApiResult } from './http-types';
import { readApiSettings } from './settings';

const logger = new Logger({ serviceName: 'dump-bag-api' });

const apiLogger: ApiLogger = {
  info: (message, attributes) => logger.info(message, attributes ?? {}),
  error: (message, attributes) => logger.error(message, attributes ?? {}),
};

/** The part of the Lambda context the logger reads; the full type lives in @types/aws-lambda. */
interface LambdaContext {
  readonly awsRequestId: string;
  readonly functionName: string;
}

/**
 * The API as the Lambda runs it: S3 from the SDK's environment, keys read per request, and
 * on-demand dumps started as executions of the backup state machine.
 */
export function appFromEnv(
  env: Record<string, string | undefined> = process.env,
  clients: { sfn?: SFNClient } = {},
): ApiApp {
  const settings = readApiSettings(env);
  const stateMachineArn = env.DUMP_BAG_STATE_MACHINE_ARN?.trim();
  const sfn = clients.sfn ?? new SFNClient({});
  return createApp({
    s3: createS3Client(env),
    bucket: settings.bucket,
    retention: settings.retention,
    urlExpirySeconds: settings.urlExpirySeconds,
    ...keySources(settings),
    startDump: async (database) => {
      if (!stateMachineArn) throw new ConfigError('DUMP_BAG_STATE_MACHINE_ARN is not set');
      const started = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn,
          input: JSON.stringify({ databases: [database], trigger: 'manual' }),
        }),
      );
      logger.info('started an on-demand dump', { executionArn: started.executionArn });
    },
    logger: apiLogger,
  });
}

let app: ApiApp | undefined;

/** API Gateway HTTP API (payload v2) → the Dump Bag API. */
export async function handler(event: ApiEvent, context?: LambdaContext): Promise<ApiResult> {
  if (context) logger.addContext(context as unknown as Parameters<Logger['addContext']>[0]);
  try {
    app ??= appFromEnv();
  } catch (error: unknown) {
    // A bad setting is the operator's to fix: logged in full, answered with a bare 500.
    return errorResult(error, apiLogger, context?.awsRequestId);
  }
  return app(event);
}
