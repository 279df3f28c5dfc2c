import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { Context } from 'aws-lambda';
import { errorMessage } from '../core/errors';
import { type Delivery, formatMessage, type Notice, postMessage } from '../core/notify';
import { createS3Client } from '../core/s3';
import { requiredSetting, SETTINGS, setting } from '../core/settings';
import { NotifyConfigError, webhooksFromSecret } from '../core/webhooks';
import { logger } from '../shared/lambda';
import { withExecutionError } from './describe-execution';
import { digestNotice } from './digest';
import { DIGEST_ACTION, noticesOf, type Parsed } from './events';

// Built once per container and reused by every invocation it serves.
const secrets = new SecretsManagerClient({});
const s3 = createS3Client();
const sfn = new SFNClient({});
/** A changed secret takes effect within this long; a burst of failures reads it once. */
const SECRET_CACHE_MS = 5 * 60_000;
let cached: { urls: string[]; readAt: number } | undefined;

/** The webhooks from the secret the stack names, cached briefly; its value is never logged. */
async function webhooks(): Promise<string[]> {
  if (cached && Date.now() - cached.readAt < SECRET_CACHE_MS) return cached.urls;
  const id = requiredSetting('notifySecret');
  let value: string | undefined;
  try {
    value = (await secrets.send(new GetSecretValueCommand({ SecretId: id }))).SecretString;
  } catch (error: unknown) {
    throw new NotifyConfigError(
      `cannot read the webhook secret ${id} (${errorMessage(error).slice(0, 200)}): check that it exists in this region and account, and uses the aws/secretsmanager key`,
    );
  }
  if (value === undefined) throw new NotifyConfigError(`the webhook secret ${id} holds no text value`);
  const urls = webhooksFromSecret(value, `the secret ${id}`, (line) => logger.warn(line));
  cached = { urls, readAt: Date.now() };
  return urls;
}

export interface NotifyResult {
  readonly notices: Notice['kind'][];
  readonly deliveries: Delivery[];
  readonly skipped: string[];
}

async function parse(event: unknown): Promise<Parsed> {
  if ((event as { action?: unknown } | null)?.action !== DIGEST_ACTION) {
    const stateMachineArn = setting('stateMachineArn');
    const log = (line: string) => logger.warn(line);
    return noticesOf(await withExecutionError(event, stateMachineArn, sfn, { log }), stateMachineArn);
  }
  if (!setting('notifyDigest')) return { notices: [], skipped: ['a digest, which is off'] };
  const digest = await digestNotice(s3, requiredSetting('bucket'));
  return digest ? { notices: [digest], skipped: [] } : { notices: [], skipped: ['a digest of no dump'] };
}

/**
 * Tells the team's webhooks of a failed database (the backup's events), a stale bag or a key about
 * to expire (the alarm topic), and the daily digest (the schedule). Delivery failures are retried,
 * then logged by webhook number; they never fail the invocation, which would only repeat them.
 */
export const handler = async (event: unknown, context: Context): Promise<NotifyResult> => {
  logger.addContext(context);
  const { notices, skipped } = await parse(event);
  for (const reason of skipped) logger.info('nothing to tell', { reason });
  const deliveries: Delivery[] = [];
  if (notices.length > 0) {
    const urls = await webhooks();
    const bag = process.env[SETTINGS.bucket.env] ?? 'dump-bag';
    for (const notice of notices) {
      const sent = await postMessage(urls, formatMessage(notice, bag), { log: (line) => logger.warn(line) });
      deliveries.push(...sent);
      logger.info('told', {
        kind: notice.kind,
        delivered: sent.filter((d) => d.delivered).length,
        webhooks: sent.length,
      });
    }
  }
  return { notices: notices.map((n) => n.kind), deliveries, skipped };
};
