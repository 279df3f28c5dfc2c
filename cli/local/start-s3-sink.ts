import { localS3Env, startChildServer, stopChild } from './child-server';

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
  const { child, endpoint } = await startChildServer('s3-sink.ts', [bucket, String(port)], 'the S3 sink');
  return {
    endpoint,
    bucket,
    pid: child.pid,
    env: localS3Env(endpoint, bucket, 'SINK'),
    stop: () => stopChild(child),
  };
}
