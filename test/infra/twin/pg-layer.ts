import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DumpBagStack, type DumpBagStackProps } from '../../../infra/dump-bag-stack';
import { cdkJsonContext } from '../support';

/**
 * Stages the pg_dump layer's asset folder before the real synth, so the layer is not built: these
 * machines are x86_64 and the layer's binaries arm64. CDK skips bundling an asset whose folder
 * exists; the folder's name comes from a synth without bundling, which gives the same asset hash.
 */
export function stageStandInPgLayer(into: string, props: DumpBagStackProps): string {
  const dry = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
  const dryStack = new DumpBagStack(dry, 'DumpBagTwin', props);
  const layer = Object.entries(Template.fromStack(dryStack).findResources('AWS::Lambda::LayerVersion')).find(
    ([id]) => id.startsWith('PgDump'),
  );
  if (!layer) throw new Error('the stack has no pg_dump layer');
  const s3Key = (layer[1] as { Properties: { Content: { S3Key: string } } }).Properties.Content.S3Key;
  const dir = join(into, `asset.${s3Key.replace(/\.zip$/, '')}`);
  const system = readdirSync('/usr/lib/postgresql')
    .filter((m) => /^\d+$/.test(m))
    .sort((a, b) => Number(b) - Number(a))[0];
  if (!system) throw new Error('no Debian pg_dump under /usr/lib/postgresql');
  // The layer's layout, /opt/pg/<major>/{bin,lib}, holding the system's Debian pg_dump.
  mkdirSync(join(dir, 'pg', system, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'pg', system, 'lib'), { recursive: true });
  symlinkSync(`/usr/lib/postgresql/${system}/bin/pg_dump`, join(dir, 'pg', system, 'bin', 'pg_dump'));
  return dir;
}
