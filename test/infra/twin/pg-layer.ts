import { mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
  for (const tool of ['pg_dump', 'pg_dumpall']) {
    symlinkSync(`/usr/lib/postgresql/${system}/bin/${tool}`, join(dir, 'pg', system, 'bin', tool));
  }
  return dir;
}

/**
 * Swaps the stand-in layer's pg_dumpall for one that fails as a real one does when the server
 * refuses it (a fault PostgreSQL cannot be made to produce for pg_dumpall alone); returns the undo.
 */
export function breakStandInPgDumpall(layerRoot: string): () => void {
  const [major] = readdirSync(join(layerRoot, 'pg'));
  if (!major) throw new Error(`no major under ${layerRoot}/pg`);
  const tool = join(layerRoot, 'pg', major, 'bin', 'pg_dumpall');
  const real = readlinkSync(tool);
  rmSync(tool);
  writeFileSync(
    tool,
    '#!/bin/sh\ncase "$1" in --version) echo "pg_dumpall (PostgreSQL) 0.0"; exit 0;; esac\necho "pg_dumpall: error: query failed: ERROR:  permission denied for table pg_authid (twin fault)" >&2\nexit 1\n',
    { mode: 0o755 },
  );
  return () => {
    rmSync(tool);
    symlinkSync(real, tool);
  };
}
