/**
 * An S3 API server on loopback (s3rver), run as its own process by `npm start`, the tests and the
 * benchmark, so that its CPU is not the backup's. Prints one JSON line `{"port":N}` when ready.
 *
 * s3rver lacks three calls Dump Bag relies on, AbortMultipartUpload, ListMultipartUploads and
 * UploadPartCopy (rekey); they are answered here from s3rver's own folders, so that tests see real
 * aborts and real server-side copies.
 *
 * CompleteMultipartUpload is done here too, as S3 does it: the listed parts must exist, be in order,
 * carry their stored ETags and (but the last) hold 5 MiB; the ETag is the MD5 of the parts' MD5s
 * with `-N`, and the object appears whole, by rename. s3rver accepts any list and hashes the whole
 * object again while it joins the parts in 64 KiB pieces, on the cores the backup needs (bench/README.md).
 *
 * Conditional writes, as S3 has them and s3rver ignores them: `If-None-Match: *` on PutObject and
 * CompleteMultipartUpload answers 412 PreconditionFailed when the key exists (409
 * ConditionalRequestConflict while another conditional write of it is under way), and `If-Match` on
 * DeleteObject answers 412 unless the object's ETag is the one given.
 *
 * Usage: s3-server.ts <directory> <bucket> [port]
 * Over 300 lines: s3rver's gaps (conditional writes, multipart listing, abort, part copy) are filled in this one process's file, next to the store they patch.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

const require = createRequire(import.meta.url);
const S3Error = require('s3rver/lib/models/error') as new (code: string, message: string) => Error;

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

function xmlError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`,
  );
}

/** `bytes=first-last` of x-amz-copy-source-range, within an object of `size` bytes, or undefined. */
function copyRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return size > 0 ? { start: 0, end: size - 1 } : undefined;
  const m = /^bytes=(\d{1,15})-(\d{1,15})$/.exec(header);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  return start <= end && end < size ? { start, end } : undefined;
}

/** UploadPartCopy: a byte range of a stored object becomes a part, as S3 does it, without the client. */
async function uploadPartCopy(
  req: IncomingMessage,
  res: ServerResponse,
  bucketName: string,
  uploadId: string,
  partNumber: string,
): Promise<void> {
  const source = decodeURIComponent(String(req.headers['x-amz-copy-source'])).replace(/^\//, '');
  const slash = source.indexOf('/');
  const sourceBucket = source.slice(0, slash);
  const sourceKey = source.slice(slash + 1).replace(/\?versionId=.*$/, '');
  const dir = join(uploadsDir(bucketName), uploadId);
  if (!/^[0-9a-f]+$/.test(uploadId) || !(await stat(dir).catch(() => undefined))) {
    xmlError(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    return;
  }
  if (!/^\d{1,5}$/.test(partNumber) || Number(partNumber) < 1 || Number(partNumber) > 10000) {
    xmlError(res, 400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000.');
    return;
  }
  if (slash < 1 || sourceKey.split('/').some((segment) => segment === '..')) {
    xmlError(res, 400, 'InvalidArgument', 'Copy Source must name a bucket and a key.');
    return;
  }
  const objectPath = store.getResourcePath(sourceBucket, sourceKey, 'object');
  const size = (await stat(objectPath).catch(() => undefined))?.size;
  if (size === undefined) {
    xmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
    return;
  }
  const range = copyRange(req.headers['x-amz-copy-source-range'] as string | undefined, size);
  if (!range) {
    xmlError(res, 416, 'InvalidRange', 'The requested range is not satisfiable.');
    return;
  }
  const hash = createHash('md5');
  const input = createReadStream(objectPath, { start: range.start, end: range.end });
  input.on('data', (chunk) => hash.update(chunk));
  await pipeline(input, createWriteStream(join(dir, partNumber)));
  const md5 = hash.digest('hex');
  await writeFile(join(dir, `${partNumber}.md5`), md5);
  res.writeHead(200, { 'content-type': 'application/xml' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${md5}"</ETag></CopyPartResult>`,
  );
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
  const partNumber = url.searchParams.get('partNumber');
  if (req.method === 'PUT' && uploadId && partNumber !== null && req.headers['x-amz-copy-source']) {
    uploadPartCopy(req, res, decodeURIComponent(bucketName), uploadId, partNumber).catch((error: unknown) => {
      if (!res.headersSent) xmlError(res, 500, 'InternalError', String(error));
      else res.destroy();
    });
    return true;
  }
  if (req.method === 'GET' && keyParts.join('') === '' && url.searchParams.has('uploads')) {
    void listUploads(decodeURIComponent(bucketName), url.searchParams.get('prefix') ?? '', res);
    return true;
  }
  return false;
}

/** S3's answer when an If-None-Match or If-Match condition does not hold. */
function preconditionFailed(res: ServerResponse): void {
  xmlError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
}

/** Keys with a conditional write under way: the first one decides, as on S3. */
const conditionalWrites = new Set<string>();

/**
 * Checks the conditions of a write or delete before s3rver sees it; calls `pass` to let it through.
 * Returns false when the request carries no condition this server answers.
 */
function conditionalRequest(req: IncomingMessage, res: ServerResponse, pass: () => void): boolean {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const [, bucketName, ...keyParts] = url.pathname.split('/');
  if (!bucketName || keyParts.length === 0) return false;
  const bucketDecoded = decodeURIComponent(bucketName);
  const key = decodeURIComponent(keyParts.join('/'));
  const ifNoneMatch = req.headers['if-none-match'];
  const ifMatch = req.headers['if-match'];
  const creates =
    ifNoneMatch === '*' &&
    ((req.method === 'PUT' && !url.searchParams.has('uploadId')) ||
      (req.method === 'POST' && url.searchParams.has('uploadId')));
  if (creates) {
    const slot = `${bucketDecoded}/${key}`;
    if (conditionalWrites.has(slot)) {
      req.resume();
      xmlError(res, 409, 'ConditionalRequestConflict', 'A conflicting conditional operation is in progress.');
      return true;
    }
    conditionalWrites.add(slot);
    res.on('close', () => conditionalWrites.delete(slot));
    void store.existsObject(bucketDecoded, key).then(
      (exists) => {
        if (!exists) return pass();
        req.resume();
        preconditionFailed(res);
      },
      () => xmlError(res, 500, 'InternalError', 'cannot check the key'),
    );
    return true;
  }
  if (req.method === 'DELETE' && typeof ifMatch === 'string' && !url.searchParams.has('uploadId')) {
    void store.getMetadata(bucketDecoded, key).then(
      (metadata) => {
        if (metadata.etag === ifMatch) return pass();
        preconditionFailed(res);
      },
      () => xmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.'),
    );
    return true;
  }
  return false;
}

interface ListedPart {
  readonly number: number;
  readonly etag: string;
}

/** s3rver's file store, as far as the completion below uses it. */
interface FilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  existsObject(bucket: string, key: string): Promise<boolean>;
  getMetadata(bucket: string, key: string): Promise<{ etag: string }>;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  putObjectMultipart(
    bucket: string,
    uploadId: string,
    parts: ListedPart[],
  ): Promise<{ md5: string; size: number }>;
}

const MIN_PART = 5 * 1024 * 1024;
const COPY_BUFFER = 8 * 1024 * 1024;

type PartFile = { path: string; size: number; md5: string };

/** The stored parts a completion names, in ascending order, each matching its ETag, all but the last ≥ 5 MiB. */
async function checkedParts(dir: string, parts: ListedPart[]): Promise<PartFile[]> {
  const files: PartFile[] = [];
  for (const [index, part] of parts.entries()) {
    if (index > 0 && part.number <= (parts[index - 1] as ListedPart).number) {
      throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order.');
    }
    const path = join(dir, String(part.number));
    const stored = await readFile(`${path}.md5`, 'utf8').catch(() => undefined);
    if (stored === undefined || stored !== part.etag) {
      throw new S3Error('InvalidPart', `Part ${part.number} was not found or its ETag does not match.`);
    }
    files.push({ path, size: (await stat(path)).size, md5: stored });
  }
  if (files.slice(0, -1).some((file) => file.size < MIN_PART)) {
    throw new S3Error('EntityTooSmall', 'A part but the last is smaller than the minimum allowed size.');
  }
  return files;
}

/** Writes the parts one after the other into `partial` (removed if anything fails); returns its size. */
async function concatenate(files: readonly PartFile[], partial: string): Promise<number> {
  const out = await open(partial, 'w');
  const buffer = Buffer.allocUnsafe(COPY_BUFFER);
  let size = 0;
  try {
    for (const file of files) {
      const input = await open(file.path, 'r');
      try {
        for (;;) {
          const { bytesRead } = await input.read(buffer, 0, buffer.length);
          if (bytesRead === 0) break;
          await out.write(buffer, 0, bytesRead);
          size += bytesRead;
        }
      } finally {
        await input.close();
      }
    }
  } catch (error) {
    await out.close();
    await rm(partial, { force: true });
    throw error;
  }
  await out.close();
  return size;
}

async function completeUpload(
  store: FilesystemStore,
  bucketName: string,
  uploadId: string,
  parts: ListedPart[],
): Promise<{ md5: string; size: number }> {
  const dir = join(store.getResourcePath(bucketName, undefined, 'uploads'), uploadId);
  const key = await readFile(join(dir, 'key'), 'utf8').catch(() => {
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
  });
  const metadata: unknown = JSON.parse(await readFile(join(dir, 'metadata'), 'utf8'));
  const files = await checkedParts(dir, parts);
  const objectPath = store.getResourcePath(bucketName, key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const partial = `${objectPath}.${uploadId}`;
  const size = await concatenate(files, partial);
  const md5s = Buffer.concat(files.map((file) => Buffer.from(file.md5, 'hex')));
  const md5 = `${createHash('md5').update(md5s).digest('hex')}-${files.length}`;
  await store.putMetadata(bucketName, key, metadata, md5);
  await rename(partial, objectPath);
  await rm(dir, { recursive: true, force: true });
  return { md5, size };
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port ?? 0),
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
});
const store = (server as unknown as { store: FilesystemStore }).store;
store.putObjectMultipart = (bucketName, uploadId, parts) =>
  completeUpload(store, bucketName, uploadId, parts);
const koaCallback = server.callback.bind(server);
server.callback = () => {
  const inner = koaCallback();
  return (req: IncomingMessage, res: ServerResponse) => {
    const handle = () => {
      if (!multipartExtras(req, res)) inner(req, res);
    };
    if (!conditionalRequest(req, res, handle)) handle();
  };
};
const address = (await server.run()) as { port: number };
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
const stop = () => server.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
