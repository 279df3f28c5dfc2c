import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** How a layer of plain files is put together: where its files go and which ones. */
export interface FileLayerCode {
  /** The folder the asset is made from. */
  readonly source: string;
  /** Where the files appear in the function's file system: a folder under /opt. */
  readonly mount: string;
  /** Copies the files into `target` (the mount's folder in the asset); `outputDir` is the asset's root. */
  readonly copy: (target: string, outputDir: string) => void;
  /** @default the asset's own hash type and hash */
  readonly assetHash?: { readonly type: AssetHashType; readonly hash: string };
}

/** A layer's code of files copied into place; copying files needs no container, so the local path always succeeds. */
export function fileLayerCode(layer: FileLayerCode): lambda.Code {
  return lambda.Code.fromAsset(layer.source, {
    ...(layer.assetHash ? { assetHashType: layer.assetHash.type, assetHash: layer.assetHash.hash } : {}),
    bundling: {
      // Never pulled: the local path below always bundles.
      image: DockerImage.fromRegistry('public.ecr.aws/docker/library/busybox:stable'),
      local: {
        tryBundle(outputDir: string): boolean {
          const target = join(outputDir, layer.mount.replace(/^\/opt\//, ''));
          mkdirSync(target, { recursive: true });
          layer.copy(target, outputDir);
          return true;
        },
      },
    },
  });
}
