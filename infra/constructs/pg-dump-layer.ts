import { AssetHashType, DockerImage, type DockerRunOptions } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { assembleLayer } from './pg-dump-layer/local-build';
import { type LayerArchitecture, PG_DUMP_RECIPE_DIR, readPins, recipeHash } from './pg-dump-layer/pins';

export { PG_DUMP_RECIPE_DIR } from './pg-dump-layer/pins';

export interface PgDumpLayerProps {
  /** Architecture of the binaries. @default lambda.Architecture.ARM_64 */
  readonly architecture?: lambda.Architecture;
  /** PostgreSQL majors to include; each must be pinned in the recipe's versions.txt. @default every pinned major (15, 17, 18) */
  readonly majors?: readonly number[];
  /** 'auto' tries the local path then Docker; 'local' never uses Docker; 'docker' never builds locally. @default 'auto' */
  readonly bundling?: 'auto' | 'docker' | 'local';
  /** The recipe folder (versions.txt, build.sh, stdout-buffer.c, Dockerfile, debian-*; no TypeScript). @default the repository's layers/pg-dump */
  readonly recipeDirectory?: string;
}

/**
 * A Lambda layer holding pg_dump, pg_restore and pg_dumpall of several PostgreSQL majors side by
 * side under /opt/pg/<major>/{bin,lib}, built from the pinned recipe in layers/pg-dump (its
 * README holds the internals).
 */
export class PgDumpLayer extends Construct {
  readonly layer: lambda.ILayerVersion;
  readonly architecture: lambda.Architecture;
  readonly majors: readonly number[];

  constructor(scope: Construct, id: string, props: PgDumpLayerProps = {}) {
    super(scope, id);
    const recipeDir = props.recipeDirectory ?? PG_DUMP_RECIPE_DIR;
    const pins = readPins(recipeDir);
    const pinned = [...pins.keys()].sort((a, b) => a - b);
    this.architecture = props.architecture ?? lambda.Architecture.ARM_64;
    this.majors = validateMajors(props.majors ?? pinned, pinned);
    const arch = layerArchitecture(this.architecture);
    const bundling = props.bundling ?? 'auto';
    if (!['auto', 'docker', 'local'].includes(bundling)) {
      throw new Error(`PgDumpLayer: \`bundling\` must be 'auto', 'docker' or 'local'; got '${bundling}'`);
    }
    const majors = this.majors;
    const versions = majors.map((m) => pins.get(m)?.version).join(', ');

    this.layer = new lambda.LayerVersion(this, 'Layer', {
      description: `pg_dump, pg_restore and pg_dumpall for PostgreSQL ${majors.join(', ')} (${versions}; ${arch}) under /opt/pg/<major>/bin`,
      compatibleArchitectures: [this.architecture],
      compatibleRuntimes: [lambda.Runtime.NODEJS_22_X],
      license: 'PostgreSQL',
      code: lambda.Code.fromAsset(recipeDir, {
        assetHashType: AssetHashType.CUSTOM,
        assetHash: recipeHash(recipeDir, arch, majors),
        bundling: {
          image: new RecipeImage(recipeDir, this.architecture.dockerPlatform, majors),
          platform: this.architecture.dockerPlatform,
          command: ['bash', '-c', 'cp -a /opt/pg /asset-output/pg'],
          // A plain object with a closure, present in every mode: the asset hash includes the bundling
          // options as JSON, so enumerable fields here (absolute paths) or their absence in one mode
          // would make the hash differ between checkouts or modes for the same artifact.
          local: {
            tryBundle(outputDir: string): boolean {
              if (bundling === 'docker') return false;
              const result = assembleLayer({ recipeDir, outputDir, architecture: arch, majors });
              if (result.ok) return true;
              if (bundling === 'local') {
                throw new Error(`PgDumpLayer: cannot assemble the layer locally: ${result.reason}`);
              }
              process.stderr.write(
                `PgDumpLayer: cannot assemble the layer locally (${result.reason}); trying Docker\n`,
              );
              return false;
            },
          },
        },
      }),
    });
  }
}

function layerArchitecture(architecture: lambda.Architecture): LayerArchitecture {
  if (architecture.name === lambda.Architecture.ARM_64.name) return 'arm64';
  if (architecture.name === lambda.Architecture.X86_64.name) return 'x86_64';
  throw new Error(
    `PgDumpLayer: \`architecture\` must be lambda.Architecture.ARM_64 or X86_64; got '${architecture.name}'`,
  );
}

function validateMajors(majors: readonly number[], pinned: readonly number[]): readonly number[] {
  if (majors.length === 0) {
    throw new Error(
      `PgDumpLayer: \`majors\` is empty; give at least one of ${pinned.join(', ')} or leave it out`,
    );
  }
  const seen = new Set<number>();
  for (const major of majors) {
    if (!pinned.includes(major)) {
      throw new Error(
        `PgDumpLayer: \`majors\` includes ${major}, which layers/pg-dump/versions.txt does not pin (it pins ${pinned.join(', ')}); remove it or pin a source for it`,
      );
    }
    if (seen.has(major)) {
      throw new Error(`PgDumpLayer: \`majors\` lists ${major} twice; list each major once`);
    }
    seen.add(major);
  }
  return [...majors].sort((a, b) => a - b);
}

/**
 * The recipe's Dockerfile, built only when Docker bundling actually runs: DockerImage.fromBuild
 * runs `docker build` at once, which would make every synth need Docker even when the local path succeeds.
 */
class RecipeImage extends DockerImage {
  readonly #recipeDir: string;
  readonly #platform: string;
  readonly #majors: readonly number[];

  constructor(recipeDir: string, platform: string, majors: readonly number[]) {
    super('dump-bag-pg-dump-layer');
    this.#recipeDir = recipeDir;
    this.#platform = platform;
    this.#majors = majors;
  }

  override run(options: DockerRunOptions = {}): void {
    DockerImage.fromBuild(this.#recipeDir, {
      platform: this.#platform,
      buildArgs: { MAJORS: this.#majors.join(' ') },
    }).run(options);
  }
}
