import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Set by bin/dump-bag.js when it runs a bundle, which lives elsewhere than these sources. */
declare const DUMP_BAG_SOURCE_ROOT: string | undefined;
const here =
  typeof DUMP_BAG_SOURCE_ROOT === 'string'
    ? join(DUMP_BAG_SOURCE_ROOT, 'cli', 'local')
    : dirname(fileURLToPath(import.meta.url));

/** tsx's loader as a file URL, so the child finds it whatever its working folder. */
function tsxLoader(): string {
  const packageJson = createRequire(import.meta.url).resolve('tsx/package.json');
  return pathToFileURL(join(dirname(packageJson), 'dist', 'loader.mjs')).href;
}

export interface ChildServer {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:PORT`, the port the server printed. */
  readonly endpoint: string;
}

/**
 * Starts one of this folder's TypeScript servers (`script`, e.g. `s3-server.ts`) in its own process
 * and resolves once it prints its first line, `{"port":…}`; `what` names it if it exits before.
 */
export async function startChildServer(
  script: string,
  args: readonly string[],
  what: string,
): Promise<ChildServer> {
  const child = spawn(process.execPath, ['--import', tsxLoader(), join(here, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => resolve(JSON.parse(line) as { port: number }));
    child.once('exit', (code) => reject(new Error(`${what} exited with code ${code} before it was ready`)));
  });
  return { child, endpoint: `http://127.0.0.1:${ready.port}` };
}

/** The environment the AWS SDK (and the AWS CLI) needs to reach a local S3 endpoint. */
export function localS3Env(endpoint: string, bucket: string, accessKey: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: accessKey,
    AWS_SECRET_ACCESS_KEY: accessKey,
    DUMP_BAG_BUCKET: bucket,
  };
}

/** Sends SIGTERM and resolves once the child has exited (at once if it already has). */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
