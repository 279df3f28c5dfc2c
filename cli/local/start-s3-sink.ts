import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface S3Sink {
  readonly endpoint: string;
  readonly bucket: string;
  /** The sink's process, to read its CPU time. */
  readonly pid: number | undefined;
  /** The environment the AWS SDK (and the AWS CLI) needs to reach it. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts the reading-and-discarding S3 endpoint (`s3-sink.ts`) in its own process on 127.0.0.1. */
export async function startS3Sink(bucket: string, port = 0): Promise<S3Sink> {
  const here = dirname(fileURLToPath(import.meta.url));
  const tsx = pathToFileURL(
    join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs'),
  ).href;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', tsx, join(here, 's3-sink.ts'), bucket, String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => resolve(JSON.parse(line) as { port: number }));
    child.once('exit', (code) =>
      reject(new Error(`the S3 sink exited with code ${code} before it was ready`)),
    );
  });
  const endpoint = `http://127.0.0.1:${ready.port}`;
  return {
    endpoint,
    bucket,
    pid: child.pid,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'SINK',
      AWS_SECRET_ACCESS_KEY: 'SINK',
      DUMP_BAG_BUCKET: bucket,
    },
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
