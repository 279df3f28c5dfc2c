/**
 * The Fargate runner's entry point: the same dump as the Lambda handler (functions/shared/dump-one.ts)
 * for one Map item handed over in the environment, its result sent back to the waiting state
 * machine with SendTaskSuccess (SendTaskFailure only if the dump itself threw), and a heartbeat
 * meanwhile so that a task that died fails its item instead of holding the execution.
 */

import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import type { DumpResult } from '../core/backup';
import { errorMessage } from '../core/errors';
import { tuneHeapForStreaming } from '../core/heap-settings';
import { createS3Client } from '../core/s3';
import { dumpOne } from '../shared/dump-one';
import { logger } from '../shared/lambda';
import { HEARTBEAT_MS, TASK_INPUT_ENV, TASK_TIMEOUT_ENV, TASK_TOKEN_ENV } from './env';

tuneHeapForStreaming();

/** Kept back from the ceiling to abort the upload and report; the image pull already ate into it. */
export const TASK_DEADLINE_MARGIN_MS = 5 * 60_000;
function heartbeat(client: SFNClient, taskToken: string): NodeJS.Timeout {
  const beat = () => {
    client.send(new SendTaskHeartbeatCommand({ taskToken })).catch((error: unknown) => {
      // A token the state machine no longer waits for (timed out, execution stopped): stop dumping.
      logger.error('heartbeat refused; stopping', { error: errorMessage(error) });
      process.exit(1);
    });
  };
  beat();
  const timer = setInterval(beat, Number(process.env.DUMP_BAG_HEARTBEAT_MS) || HEARTBEAT_MS);
  timer.unref();
  return timer;
}

export async function main(env: Record<string, string | undefined> = process.env): Promise<number> {
  const taskToken = env[TASK_TOKEN_ENV];
  if (!taskToken) {
    logger.error(`no ${TASK_TOKEN_ENV}: this task is started by the backup state machine, not by hand`);
    return 2;
  }
  const client = new SFNClient({});
  const timer = heartbeat(client, taskToken);
  const ceilingMs = (Number(env[TASK_TIMEOUT_ENV]) || 12 * 3600) * 1000;
  let result: DumpResult;
  try {
    const event: unknown = JSON.parse(env[TASK_INPUT_ENV] ?? 'null');
    const clients = { s3: createS3Client(), secrets: new SecretsManagerClient({}), kms: new KMSClient({}) };
    result = await dumpOne(event, 'fargate', Date.now() + ceilingMs - TASK_DEADLINE_MARGIN_MS, clients);
  } catch (error: unknown) {
    clearInterval(timer);
    const cause = errorMessage(error).slice(0, 32_000);
    await client.send(new SendTaskFailureCommand({ taskToken, error: 'DumpTaskError', cause }));
    return 1;
  }
  clearInterval(timer);
  await client.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(result) }));
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    logger.error('could not report to the state machine', { error: errorMessage(error) });
    process.exitCode = 1;
  },
);
