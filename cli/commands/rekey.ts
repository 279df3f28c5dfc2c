import { KMSClient } from '@aws-sdk/client-kms';
import type { DumpRecord } from '../../functions/core/catalog';
import { readConfig } from '../../functions/core/config';
import { ConfigError } from '../../functions/core/errors';
import { loadEncryption } from '../../functions/core/keys';
import { KmsSigner } from '../../functions/core/kms-signer';
import { formatSize } from '../../functions/core/listing';
import { type RekeyResult, type RekeyTarget, rekeyDumps } from '../../functions/core/rekey';
import { createS3Client } from '../../functions/core/s3';
import type { Secrets } from '../../functions/core/seipd-reader';
import { readSetting, SETTINGS } from '../../functions/core/settings';
import { localSignerFromEnv } from '../../functions/core/signing';
import { prepareDecryption } from '../client/decryption';
import type { Parsed } from '../command-line';
import type { commandSpecs } from '../command-specs';

/** The secrets that open one dump's session key: the reader's secret key, or the passphrase. */
export function secretsFrom(
  keyFile: string | undefined,
  env: NodeJS.ProcessEnv,
): (record: DumpRecord) => Promise<Secrets> {
  return async (record) => {
    const decryption = await prepareDecryption(record, { keyFile, env });
    if (decryption.mode === 'gpg') return { decryptionKeys: [...decryption.keys] };
    if (decryption.mode === 'passphrase') return { passwords: [decryption.passphrase] };
    return {};
  };
}

/** The rekey target the environment describes: bucket and today's recipients as `backup` reads them. */
export async function rekeyTargetFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  options: { keyFile?: string; dryRun?: boolean } = {},
): Promise<Omit<RekeyTarget, 'afterObject'>> {
  const config = readConfig(env);
  const encryption = await loadEncryption(config);
  if (encryption.mode === 'none') {
    throw new ConfigError(
      'DUMP_BAG_ENCRYPTION=none: rekey re-encrypts for recipients or a passphrase, set one',
    );
  }
  const kmsKeyId = readSetting(SETTINGS.signingKeyId, env);
  return {
    s3: createS3Client(env),
    bucket: config.bucket,
    encryption,
    secretsFor: secretsFrom(options.keyFile, env),
    // The bag's own key signs the new records: its KMS key in AWS, else the local one (never made here).
    signer: kmsKeyId ? new KmsSigner(new KMSClient({}), kmsKeyId) : localSignerFromEnv(env),
    dryRun: options.dryRun,
  };
}

function line(r: RekeyResult): string {
  const who = `removed: ${r.removed.join(', ') || 'nobody'}; added: ${r.added.join(', ') || 'nobody'}`;
  switch (r.status) {
    case 'unchanged':
      return `same    ${r.database}  ${r.id}`;
    case 'would-rekey':
      return `would   ${r.database}  ${r.id}  ${who}`;
    case 'failed':
      return `FAILED  ${r.database}  ${r.id}  ${r.error}`;
    default: {
      const kept = (r.kept ?? []).map(
        (k) =>
          `\n        still readable by the old recipients: ${k.key} version ${k.versionId}${k.retainUntil ? ` until ${k.retainUntil}` : ''}: ${k.why}`,
      );
      return `rekeyed ${r.database}  ${r.id}  ${who}  (${formatSize(r.transferred ?? 0)} transferred)${kept.join('')}`;
    }
  }
}

export async function run({ values }: Parsed<typeof commandSpecs.rekey.options>): Promise<number> {
  const target = await rekeyTargetFromEnv(process.env, { keyFile: values.key, dryRun: values['dry-run'] });
  const results = await rekeyDumps(target, {
    database: values.database,
    onResult: values.json ? undefined : (r) => console.log(line(r)),
  });
  if (values.json) console.log(JSON.stringify(results, null, 2));
  else if (results.length === 0) console.error('dump-bag rekey: no encrypted dump found');
  return results.every((r) => r.status !== 'failed') ? 0 : 1;
}
