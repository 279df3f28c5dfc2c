/**
 * An S3 endpoint on loopback that costs its client what AWS S3 does: it reads every byte of every
 * body, but keeps only small bodies (records, under 1 MiB) and neither hashes nor stores large ones.
 * The benchmark runs it in its own process, so that a backup is measured as AWS will see it (the
 * local S3 server hashes and stores every part, as much CPU as the backup itself on two cores).
 *
 * It answers what a backup, retention and cleanup call: CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads, PutObject, GetObject and
 * HeadObject (a large object's GetObject is refused: its bytes are gone), ListObjectsV2, DeleteObject
 * and DeleteObjects, for one bucket, path-style, without checking signatures.
 *
 * Usage: s3-sink.ts <bucket> [port]   — prints one JSON line `{"port":N}` when ready.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fail, xml, xmlEscape, xmlValues } from './s3-xml';

/** Bodies up to this size are kept (records, globals of a small server); larger ones only counted. */
const KEEP_BYTES = 1024 * 1024;
/** A request body the sink parses as XML (complete, delete) is never larger than this. */
const XML_LIMIT = 1024 * 1024;

interface StoredObject {
  readonly size: number;
  readonly etag: string;
  readonly lastModified: Date;
  readonly contentType?: string;
  readonly metadata: Record<string, string>;
  /** Absent for large bodies: only their size is known. */
  readonly body?: Buffer;
}

interface Upload {
  readonly key: string;
  readonly initiated: Date;
  readonly contentType?: string;
  readonly metadata: Record<string, string>;
  readonly parts: Map<number, { size: number; etag: string }>;
}

const objects = new Map<string, StoredObject>();
const uploads = new Map<string, Upload>();

/** Reads the whole body, keeping it only up to `keep` bytes; returns its size and, when kept, its bytes. */
async function drain(req: IncomingMessage, keep: number): Promise<{ size: number; body?: Buffer }> {
  const kept: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= keep) kept.push(chunk);
  }
  return { size, body: size <= keep ? Buffer.concat(kept) : undefined };
}

function metadataOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') out[name] = value;
  }
  return out;
}

/** A stand-in ETag made from names and sizes: the sink never hashes a large body. */
function fakeEtag(...parts: (string | number)[]): string {
  return createHash('md5').update(parts.join('\0')).digest('hex');
}

function listObjects(res: ServerResponse, bucket: string, query: URLSearchParams): void {
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  const max = Math.min(1000, Math.max(1, Number(query.get('max-keys') ?? 1000) || 1000));
  const after = query.get('continuation-token') ?? query.get('start-after') ?? '';
  const keys = [...objects.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
  const contents: string[] = [];
  const common = new Set<string>();
  let last = '';
  let truncated = false;
  for (const key of keys) {
    if (contents.length + common.size >= max) {
      truncated = true;
      break;
    }
    last = key;
    const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    if (cut >= 0) {
      common.add(key.slice(0, cut + delimiter.length));
      continue;
    }
    const o = objects.get(key) as StoredObject;
    contents.push(
      `<Contents><Key>${xmlEscape(key)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>"${o.etag}"</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    );
  }
  const prefixes = [...common].map(
    (p) => `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`,
  );
  xml(
    res,
    200,
    `<ListBucketResult><Name>${xmlEscape(bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${contents.length + prefixes.length}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>${xmlEscape(last)}</NextContinuationToken>` : ''}${contents.join('')}${prefixes.join('')}</ListBucketResult>`,
  );
}

function listUploads(res: ServerResponse, bucket: string, query: URLSearchParams): void {
  const prefix = query.get('prefix') ?? '';
  const rows = [...uploads.entries()]
    .filter(([, u]) => u.key.startsWith(prefix))
    .sort(([a, x], [b, y]) => (x.key === y.key ? a.localeCompare(b) : x.key < y.key ? -1 : 1))
    .map(
      ([id, u]) =>
        `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${id}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`,
    );
  xml(
    res,
    200,
    `<ListMultipartUploadsResult><Bucket>${xmlEscape(bucket)}</Bucket><IsTruncated>false</IsTruncated>${rows.join('')}</ListMultipartUploadsResult>`,
  );
}

async function completeUpload(req: IncomingMessage, res: ServerResponse, bucket: string, id: string) {
  const upload = uploads.get(id);
  const { body } = await drain(req, XML_LIMIT);
  if (!upload) return fail(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
  if (!body) return fail(res, 400, 'MalformedXML', 'The part list is too large.');
  const text = body.toString('utf8');
  const numbers = xmlValues(text, 'PartNumber').map(Number);
  const etags = xmlValues(text, 'ETag').map((e) => e.replace(/"/g, ''));
  let size = 0;
  for (const [i, number] of numbers.entries()) {
    const part = upload.parts.get(number);
    if (i > 0 && number <= (numbers[i - 1] as number)) {
      return fail(res, 400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
    }
    if (!part || part.etag !== etags[i]) {
      return fail(res, 400, 'InvalidPart', `Part ${number} was not found or its ETag does not match.`);
    }
    size += part.size;
  }
  const etag = `${fakeEtag(id, size)}-${numbers.length}`;
  uploads.delete(id);
  objects.set(upload.key, {
    size,
    etag,
    lastModified: new Date(),
    contentType: upload.contentType,
    metadata: upload.metadata,
  });
  xml(
    res,
    200,
    `<CompleteMultipartUploadResult><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(upload.key)}</Key><ETag>"${etag}"</ETag></CompleteMultipartUploadResult>`,
  );
}

async function deleteObjects(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { body } = await drain(req, XML_LIMIT);
  if (!body) return fail(res, 400, 'MalformedXML', 'The delete list is too large.');
  const keys = xmlValues(body.toString('utf8'), 'Key');
  for (const key of keys) objects.delete(key);
  xml(
    res,
    200,
    `<DeleteResult>${keys.map((k) => `<Deleted><Key>${xmlEscape(k)}</Key></Deleted>`).join('')}</DeleteResult>`,
  );
}

function sendObject(req: IncomingMessage, res: ServerResponse, key: string): void {
  const o = objects.get(key);
  if (!o && req.method === 'HEAD') {
    res.writeHead(404).end();
  } else if (!o) {
    fail(res, 404, 'NoSuchKey', key);
  } else if (req.method !== 'HEAD' && !o.body) {
    fail(res, 501, 'NotImplemented', `${key}: the sink keeps no body over 1 MiB`);
  } else {
    res.writeHead(200, {
      'content-length': String(o.size),
      etag: `"${o.etag}"`,
      'last-modified': o.lastModified.toUTCString(),
      'content-type': o.contentType ?? 'application/octet-stream',
      ...o.metadata,
    });
    res.end(req.method === 'HEAD' ? undefined : o.body);
  }
}

async function createUpload(req: IncomingMessage, res: ServerResponse, bucket: string, key: string) {
  const id = randomUUID().replace(/-/g, '');
  uploads.set(id, {
    key,
    initiated: new Date(),
    contentType: req.headers['content-type'],
    metadata: metadataOf(req),
    parts: new Map(),
  });
  await drain(req, 0);
  xml(
    res,
    200,
    `<InitiateMultipartUploadResult><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
  );
}

async function uploadPart(req: IncomingMessage, res: ServerResponse, uploadId: string, q: URLSearchParams) {
  const number = Number(q.get('partNumber'));
  const { size } = await drain(req, 0);
  const upload = uploads.get(uploadId);
  if (!upload) return fail(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
  const etag = fakeEtag(uploadId, number, size);
  upload.parts.set(number, { size, etag });
  res.writeHead(200, { etag: `"${etag}"` }).end();
}

async function abortUpload(req: IncomingMessage, res: ServerResponse, uploadId: string) {
  await drain(req, 0);
  if (!uploads.delete(uploadId))
    return fail(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
  res.writeHead(204).end();
}

async function putObject(req: IncomingMessage, res: ServerResponse, key: string) {
  const { size, body } = await drain(req, KEEP_BYTES);
  const etag = body ? createHash('md5').update(body).digest('hex') : fakeEtag(key, size, Date.now());
  objects.set(key, {
    size,
    etag,
    lastModified: new Date(),
    contentType: req.headers['content-type'],
    metadata: metadataOf(req),
    body,
  });
  res.writeHead(200, { etag: `"${etag}"` }).end();
}

/** Routes a request on one key; the handlers that read a body return its promise. */
function onKey(
  req: IncomingMessage,
  res: ServerResponse,
  bucket: string,
  key: string,
  q: URLSearchParams,
): Promise<void> | undefined {
  const uploadId = q.get('uploadId');
  if (req.method === 'POST' && q.has('uploads')) return createUpload(req, res, bucket, key);
  if (req.method === 'PUT' && uploadId) return uploadPart(req, res, uploadId, q);
  if (req.method === 'POST' && uploadId) return completeUpload(req, res, bucket, uploadId);
  if (req.method === 'DELETE' && uploadId) return abortUpload(req, res, uploadId);
  if (req.method === 'PUT') return putObject(req, res, key);
  if (req.method === 'DELETE') {
    objects.delete(key);
    res.writeHead(204).end();
  } else if (req.method === 'GET' || req.method === 'HEAD') {
    sendObject(req, res, key);
  } else {
    fail(res, 405, 'MethodNotAllowed', `${req.method} is not supported by the sink`);
  }
  return undefined;
}

async function handle(req: IncomingMessage, res: ServerResponse, bucket: string): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const [, bucketName = '', ...rest] = url.pathname.split('/');
  if (decodeURIComponent(bucketName) !== bucket) {
    await drain(req, 0);
    return fail(res, 404, 'NoSuchBucket', `the sink serves only the bucket ${bucket}`);
  }
  const key = decodeURIComponent(rest.join('/'));
  const q = url.searchParams;
  if (key) return onKey(req, res, bucket, key, q);
  if (req.method === 'POST' && q.has('delete')) return deleteObjects(req, res);
  await drain(req, 0);
  if (req.method === 'GET' && q.has('uploads')) return listUploads(res, bucket, q);
  if (req.method === 'GET') return listObjects(res, bucket, q);
  if (req.method === 'HEAD') return void res.writeHead(200).end();
  fail(res, 405, 'MethodNotAllowed', `${req.method} on the bucket is not supported by the sink`);
}

const [bucket, port] = process.argv.slice(2);
if (!bucket) {
  process.stderr.write('usage: s3-sink.ts <bucket> [port]\n');
  process.exit(2);
}
const server = createServer((req, res) => {
  handle(req, res, bucket).catch((error: unknown) => {
    if (!res.headersSent) fail(res, 500, 'InternalError', String(error));
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(port ?? 0), '127.0.0.1', () => {
  const { port: bound } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port: bound })}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
