/**
 * An S3 API server on loopback (s3rver), run as its own process by `npm start`, the tests and the
 * benchmark, so that its CPU is not the backup's. Prints one JSON line `{"port":N}` when ready.
 *
 * s3rver lacks two calls Dump Bag relies on, AbortMultipartUpload and ListMultipartUploads; they are
 * answered here from s3rver's own upload folders, so that tests see real aborts.
 *
 * Usage: s3-server.ts <directory> <bucket> [port]
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import S3rver from 's3rver';

const [directory, bucket, port] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write('usage: s3-server.ts <directory> <bucket> [port]\n');
  process.exit(2);
}
const root = directory;

function uploadsDir(bucketName: string): string {
  return join(root, bucketName, '._S3rver_uploads');
}

function xmlEscape(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function listUploads(bucketName: string, prefix: string, res: ServerResponse): Promise<void> {
  const dir = uploadsDir(bucketName);
  const ids = await readdir(dir).catch(() => [] as string[]);
  const uploads: string[] = [];
  for (const id of ids) {
    const key = await readFile(join(dir, id, 'key'), 'utf8').catch(() => undefined);
    if (key === undefined || !key.startsWith(prefix)) continue;
    const initiated = (await stat(join(dir, id))).mtime.toISOString();
    uploads.push(
      `<Upload><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId><Initiated>${initiated}</Initiated></Upload>`,
    );
  }
  res.writeHead(200, { 'content-type': 'application/xml' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>${xmlEscape(bucketName)}</Bucket><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
  );
}

async function abortUpload(bucketName: string, uploadId: string, res: ServerResponse): Promise<void> {
  const dir = join(uploadsDir(bucketName), uploadId);
  if (!/^[0-9a-f]+$/.test(uploadId) || !(await stat(dir).catch(() => undefined))) {
    res.writeHead(404, { 'content-type': 'application/xml' });
    res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code></Error>');
    return;
  }
  await rm(dir, { recursive: true, force: true });
  res.writeHead(204);
  res.end();
}

/** Answers the multipart calls s3rver lacks; returns false for everything else. */
function multipartExtras(req: IncomingMessage, res: ServerResponse): boolean {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const [, bucketName, ...keyParts] = url.pathname.split('/');
  if (!bucketName) return false;
  const uploadId = url.searchParams.get('uploadId');
  if (req.method === 'DELETE' && keyParts.length > 0 && uploadId) {
    void abortUpload(decodeURIComponent(bucketName), uploadId, res);
    return true;
  }
  if (req.method === 'GET' && keyParts.join('') === '' && url.searchParams.has('uploads')) {
    void listUploads(decodeURIComponent(bucketName), url.searchParams.get('prefix') ?? '', res);
    return true;
  }
  return false;
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port ?? 0),
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
});
const koaCallback = server.callback.bind(server);
server.callback = () => {
  const inner = koaCallback();
  return (req: IncomingMessage, res: ServerResponse) => {
    if (!multipartExtras(req, res)) inner(req, res);
  };
};
const address = (await server.run()) as { port: number };
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
const stop = () => server.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
