import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Json = Record<string, unknown>;

/** A function of the synthesized template, with the folder its bundled code was staged in. */
export interface BundledFunction {
  readonly logicalId: string;
  /** The asset folder holding index.js (what Lambda would unzip into /var/task). */
  readonly codeDir: string;
  /** The asset folders of its layers, in order (what Lambda would unpack into /opt). */
  readonly layerDirs: string[];
  readonly environment: Record<string, unknown>;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
}

/** `asset.<hash>` of an S3 key `<hash>.zip`, where the assembly staged that asset. */
function assetDir(outdir: string, s3Key: unknown): string {
  if (typeof s3Key !== 'string' || !s3Key.endsWith('.zip')) {
    throw new Error(`not a staged asset: ${JSON.stringify(s3Key)}`);
  }
  const dir = join(outdir, `asset.${s3Key.slice(0, -'.zip'.length)}`);
  if (!existsSync(dir)) throw new Error(`the assembly has no folder ${dir}`);
  return dir;
}

/** Every Lambda function of the template with its bundled code and layers in the assembly. */
export function bundledFunctions(
  outdir: string,
  template: { Resources: Record<string, Json> },
): BundledFunction[] {
  const resources = template.Resources;
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]) => {
      const p = r.Properties as Json;
      const layers = ((p.Layers as { Ref: string }[] | undefined) ?? []).map((layer) => {
        const resource = resources[layer.Ref];
        if (!resource) throw new Error(`${logicalId}: no layer ${layer.Ref} in the template`);
        return assetDir(outdir, ((resource.Properties as Json).Content as Json).S3Key);
      });
      return {
        logicalId,
        codeDir: assetDir(outdir, (p.Code as Json).S3Key),
        layerDirs: layers,
        environment: ((p.Environment as Json | undefined)?.Variables as Record<string, unknown>) ?? {},
        timeoutSeconds: Number(p.Timeout ?? 3),
        memoryMb: Number(p.MemorySize ?? 128),
      };
    });
}

/**
 * The function's environment as Lambda would give it: the template's values, each `Ref` to a
 * resource replaced by the local stand-in for it (an unknown one throws), and `/opt/…` paths
 * pointed at the layer folder that holds them.
 */
export function resolveEnvironment(
  fn: BundledFunction,
  refs: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(fn.environment)) {
    let text: string;
    if (typeof value === 'string') {
      text = value;
    } else if (value && typeof value === 'object' && 'Ref' in value) {
      const ref = String((value as { Ref: string }).Ref);
      const local = Object.entries(refs).find(([prefix]) => ref.startsWith(prefix))?.[1];
      if (local === undefined) throw new Error(`${fn.logicalId}: no local stand-in for ${name} = Ref ${ref}`);
      text = local;
    } else {
      throw new Error(`${fn.logicalId}: no local stand-in for ${name} = ${JSON.stringify(value)}`);
    }
    if (text.startsWith('/opt/')) {
      const inLayer = fn.layerDirs
        .map((dir) => join(dir, text.slice('/opt/'.length)))
        .find((p) => existsSync(p));
      if (!inLayer) throw new Error(`${fn.logicalId}: ${name} = ${text} is in none of its layers`);
      text = inLayer;
    }
    env[name] = text;
  }
  return env;
}

export interface Invocation<T = unknown> {
  readonly ok: boolean;
  readonly result?: T;
  readonly errorType?: string;
  readonly errorMessage?: string;
  /** Killed at the (possibly shortened) timeout, as Lambda would. */
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the handler, from its start to its result. */
  readonly ms: number;
}

export interface InvokeOptions {
  /** The whole Lambda-like environment. */
  readonly env: Record<string, string>;
  /** What context.getRemainingTimeInMillis() starts from. @default the function's timeout */
  readonly remainingMs?: number;
  /** Kill the process this long after the handler started. @default the function's timeout */
  readonly killAfterMs?: number;
  /** argv that starts Node, e.g. arm64 Node under qemu (twin/arm64.ts). @default this machine's node */
  readonly node?: readonly string[];
}

const RUNNER = fileURLToPath(new URL('./invoke-bundle.cjs', import.meta.url));

/** Runs the bundled handler in a process of its own with exactly `env`, as one Lambda invocation. */
export function invokeBundled<T = unknown>(
  fn: BundledFunction,
  event: unknown,
  options: InvokeOptions,
): Promise<Invocation<T>> {
  const timeoutMs = fn.timeoutSeconds * 1000;
  return new Promise((resolve, reject) => {
    const child = fork(RUNNER, [join(fn.codeDir, 'index.js')], {
      env: { ...options.env, TWIN_REMAINING_MS: String(options.remainingMs ?? timeoutMs) },
      stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
      ...(options.node ? { execPath: options.node[0], execArgv: options.node.slice(1) } : { execArgv: [] }),
    });
    let stdout = '';
    let stderr = '';
    let started = 0;
    let outcome: { ok: boolean; result?: T; errorType?: string; errorMessage?: string } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    child.on('message', (message: { started?: boolean } & typeof outcome) => {
      if (message?.started) {
        started = Date.now();
        timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, options.killAfterMs ?? timeoutMs);
      } else {
        outcome = message;
      }
    });
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      const ms = started ? Date.now() - started : 0;
      if (timedOut) {
        resolve({
          ok: false,
          errorType: 'Sandbox.Timedout',
          errorMessage: `Task timed out after ${((options.killAfterMs ?? timeoutMs) / 1000).toFixed(2)} seconds`,
          timedOut,
          stdout,
          stderr,
          ms,
        });
      } else if (!outcome) {
        resolve({
          ok: false,
          errorType: 'Runtime.ExitError',
          errorMessage: stderr.slice(-2000),
          timedOut,
          stdout,
          stderr,
          ms,
        });
      } else {
        resolve({ ...outcome, timedOut, stdout, stderr, ms });
      }
    });
    child.stdin?.end(JSON.stringify(event));
  });
}

/** The Embedded Metric Format lines a function wrote to stdout. */
export function emfLines(stdout: string): Json[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Json);
}
