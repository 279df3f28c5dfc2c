// The Fargate container's whole command (`node -e <this file>`) on a public Node.js image, so the
// deploy needs no Docker: it unpacks the Lambda layers the dump function mounts (the bundled entry
// point, the pg_dump binaries, the keys) into /opt, each checked against the SHA-256 Lambda
// recorded for it, then runs the entry point, which reports to the state machine. When that cannot
// start, this reports it with SendTaskFailure itself, so the item fails now rather than after the
// heartbeat timeout. No dependencies: Node's own fetch, crypto and zlib, SigV4 signed here.
// Env: DUMP_BAG_LAYERS (comma list of layer version ARNs), DUMP_BAG_ENTRY (path under /opt),
// DUMP_BAG_TASK_TOKEN (the state machine's override, as functions/dump-task/env.ts names it),
// AWS_REGION, the ECS credentials variables; AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL_SFN and
// DUMP_BAG_OPT_DIR for tests.
// Strings are concatenated, not templated: CloudFormation's checks read a dollar-brace in the task
// definition as a parameter outside Fn::Sub (cfn-lint E1029, a warning on every synth).
// biome-ignore-all lint/style/useTemplate: the reason above
const { createHash, createHmac } = require('node:crypto');
const { chmodSync, mkdirSync, symlinkSync, writeFileSync } = require('node:fs');
const { dirname, join, resolve, sep } = require('node:path');
const { inflateRawSync } = require('node:zlib');

const MAX_LAYER_BYTES = 512 * 1024 * 1024;

/** Why the dump could not start, and what to do about it (the cause the state machine records). */
class BootstrapError extends Error {
  name = 'BootstrapError';
  constructor(message, fix) {
    super(fix ? message + '; ' + fix : message);
  }
}

const REDEPLOY = 'redeploy the stack (npx cdk deploy) so that the task definition names live layer versions';

async function credentials(env) {
  const url =
    env.AWS_CONTAINER_CREDENTIALS_FULL_URI ||
    (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI &&
      'http://169.254.170.2' + env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI);
  if (!url) {
    throw new BootstrapError(
      'no ECS task credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)',
      'run the task on ECS with its task role, as the state machine does',
    );
  }
  const headers = env.AWS_CONTAINER_AUTHORIZATION_TOKEN
    ? { authorization: env.AWS_CONTAINER_AUTHORIZATION_TOKEN }
    : {};
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new BootstrapError('task credentials: HTTP ' + res.status, 'check the task role');
  const c = await res.json();
  return { id: c.AccessKeyId, secret: c.SecretAccessKey, token: c.Token };
}

const rfc3986 = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase());
const sha256hex = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

/**
 * A SigV4-signed AWS call (the AWS Signature Version 4 rules), answered with JSON; 'request' is
 * { method, url, headers, body } with a string body or none. Used for Lambda and Step Functions alike.
 */
async function signedFetch(request, service, region, creds) {
  const { method, url, body = '' } = request;
  const amzDate = new Date().toISOString().replace(/[:-]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => k + '=' + v)
    .join('&');
  const headers = { ...request.headers, host: url.host, 'x-amz-date': amzDate };
  if (creds.token) headers['x-amz-security-token'] = creds.token;
  const names = Object.keys(headers).sort();
  const canonical = [
    method,
    url.pathname,
    query,
    names.map((n) => n + ':' + headers[n] + '\n').join(''),
    names.join(';'),
    sha256hex(body),
  ].join('\n');
  const scope = [day, region, service, 'aws4_request'].join('/');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac('AWS4' + creds.secret, day), region), service), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const { host: _host, ...sent } = headers;
  sent.authorization =
    'AWS4-HMAC-SHA256 Credential=' +
    creds.id +
    '/' +
    scope +
    ', SignedHeaders=' +
    names.join(';') +
    ', Signature=' +
    signature;
  const res = await fetch(url, {
    method,
    headers: sent,
    body: method === 'GET' ? undefined : body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new BootstrapError(
      service + ' ' + url.pathname + ': HTTP ' + res.status + ' ' + text.slice(0, 300),
      res.status === 403 || res.status === 404 ? REDEPLOY : 'try the run again',
    );
  }
  return text ? JSON.parse(text) : {};
}

/** Unpacks a zip (stored or deflated entries, modes and symlinks kept) under 'root', refusing paths that leave it. */
function unzip(zip, root) {
  let end = zip.length - 22;
  while (end >= 0 && zip.readUInt32LE(end) !== 0x06054b50) end--;
  if (end < 0) throw new BootstrapError('layer is not a zip: no end of central directory', REDEPLOY);
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50)
      throw new BootstrapError('layer zip: bad central directory', REDEPLOY);
    const method = zip.readUInt16LE(at + 10);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const next = at + 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    const mode = zip.readUInt32LE(at + 38) >>> 16;
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    at = next;
    writeEntry(zip, { name, method, size, mode, local }, root);
  }
}

/** Writes one zip entry (a folder, a file with its mode, or a symlink) under 'root', never outside it. */
function writeEntry(zip, entry, root) {
  const { name, method, size, mode, local } = entry;
  const target = resolve(root, name);
  if (!target.startsWith(root + sep)) {
    throw new BootstrapError(
      'layer zip: entry ' + name + ' leaves ' + root,
      'the layer is not one this stack built',
    );
  }
  if (name.endsWith('/')) {
    mkdirSync(target, { recursive: true });
    return;
  }
  const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
  const raw = zip.subarray(start, start + size);
  const data = method === 0 ? raw : method === 8 ? inflateRawSync(raw) : null;
  if (!data) {
    throw new BootstrapError(
      'layer zip: ' + name + ' uses compression method ' + method,
      'the layer is not one this stack built',
    );
  }
  mkdirSync(dirname(target), { recursive: true });
  if ((mode & 0o170000) === 0o120000) {
    symlinkSync(data.toString('utf8'), target);
  } else {
    writeFileSync(target, data);
    if (mode & 0o777) chmodSync(target, mode & 0o777);
  }
}

/** The layer's zip, fetched from Lambda's own location for it and checked against the SHA-256 Lambda recorded. */
async function fetchLayer(arn, endpoint, region, creds) {
  const url = new URL('/2018-10-31/layers', endpoint);
  url.searchParams.set('find', 'LayerVersion');
  url.searchParams.set('Arn', arn);
  const layer = await signedFetch({ method: 'GET', url }, 'lambda', region, creds);
  const expected = layer?.Content?.CodeSha256;
  const location = layer?.Content?.Location;
  if (typeof expected !== 'string' || typeof location !== 'string') {
    throw new BootstrapError('GetLayerVersionByArn ' + arn + ': no Content.Location or CodeSha256', REDEPLOY);
  }
  const res = await fetch(location, { signal: AbortSignal.timeout(300_000) });
  if (!res.ok) {
    throw new BootstrapError(
      'layer ' + arn + ': download HTTP ' + res.status,
      'the layer version is gone or its URL expired: ' + REDEPLOY + ', then run again',
    );
  }
  const zip = Buffer.from(await res.arrayBuffer());
  if (zip.length > MAX_LAYER_BYTES)
    throw new BootstrapError('layer ' + arn + ': ' + zip.length + ' bytes, over the limit', REDEPLOY);
  const actual = createHash('sha256').update(zip).digest('base64');
  if (actual !== expected) {
    throw new BootstrapError(
      'layer ' + arn + ': SHA-256 ' + actual + ' is not the ' + expected + ' Lambda recorded; not run',
      'the download was altered or cut short: run again, and if it repeats, ' + REDEPLOY,
    );
  }
  return zip;
}

/**
 * SendTaskFailure for the state machine's token (the entry point's own call, signed here without
 * the SDK): the item fails with this cause at once instead of waiting out the heartbeat.
 */
async function reportFailure(env, region, creds, error) {
  const taskToken = env.DUMP_BAG_TASK_TOKEN;
  if (!taskToken) return false;
  const url = new URL('/', env.AWS_ENDPOINT_URL_SFN || 'https://states.' + region + '.amazonaws.com');
  const message = String(error?.message ?? error);
  // A BootstrapError names its fix; anything else is most often the network (fetch failed).
  const cause =
    error instanceof BootstrapError
      ? message
      : 'could not start the dump: ' +
        message +
        "; check the subnets' route to Lambda and S3 (a NAT gateway or VPC endpoints), then run again";
  // Step Functions keeps at most 32768 characters of cause.
  const body = JSON.stringify({ taskToken, error: 'BootstrapError', cause: cause.slice(0, 32_000) });
  const headers = {
    'content-type': 'application/x-amz-json-1.0',
    'x-amz-target': 'AWSStepFunctions.SendTaskFailure',
  };
  await signedFetch({ method: 'POST', url, headers, body }, 'states', region, creds);
  return true;
}

function log(level, message, fields) {
  process.stdout.write(JSON.stringify({ level, message, ...fields }) + '\n');
}

/** Unpacks the layers into /opt and starts the entry point; a failure after the credentials is reported by token. */
async function main(env) {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  const optDir = resolve(env.DUMP_BAG_OPT_DIR || '/opt');
  const arns = (env.DUMP_BAG_LAYERS || '').split(',').filter(Boolean);
  if (!region || arns.length === 0 || !env.DUMP_BAG_ENTRY) {
    throw new BootstrapError(
      'AWS_REGION, DUMP_BAG_LAYERS and DUMP_BAG_ENTRY must be set',
      'run the task definition the stack made, which sets them',
    );
  }
  const creds = await credentials(env);
  try {
    const endpoint = env.AWS_ENDPOINT_URL_LAMBDA || 'https://lambda.' + region + '.amazonaws.com';
    for (const arn of arns) {
      const zip = await fetchLayer(arn, endpoint, region, creds);
      unzip(zip, optDir);
      log('INFO', 'layer unpacked', { arn, bytes: zip.length });
    }
    require(join(optDir, env.DUMP_BAG_ENTRY));
  } catch (error) {
    log('ERROR', 'bootstrap failed', { error: String(error?.message ?? error) });
    const reported = await reportFailure(env, region, creds, error).catch((e) => {
      log('ERROR', 'could not report the failure to the state machine', { error: String(e?.message ?? e) });
      return false;
    });
    if (reported) log('INFO', 'failure reported to the state machine');
    process.exitCode = 1;
  }
}

main(process.env).catch((error) => {
  // No credentials or settings: nothing can be reported; the heartbeat timeout fails the item.
  log('ERROR', 'bootstrap failed', { error: String(error?.message ?? error) });
  process.exitCode = 1;
});
