import { S3Client } from '@aws-sdk/client-s3';

/**
 * An S3 client from the SDK's own variables. With an S3-compatible endpoint
 * (AWS_ENDPOINT_URL_S3) it uses path-style addressing, which such servers expect.
 */
export function createS3Client(env: Record<string, string | undefined> = process.env): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  return new S3Client({
    endpoint,
    forcePathStyle: Boolean(endpoint),
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (endpoint ? 'us-east-1' : undefined),
    // The stored bytes get their own SHA-256; per-part CRC32s would cost a CPU-second per GB for nothing.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Keys given in `env` (not only in process.env) win; otherwise the SDK's default chain applies.
    credentials:
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? {
            accessKeyId: env.AWS_ACCESS_KEY_ID,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
            sessionToken: env.AWS_SESSION_TOKEN,
          }
        : undefined,
  });
}
