import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BagClient, clientFromEnv } from '../cli/client/bag-client';

interface Captured {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

const CREDENTIALS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'session-token-example',
};

/** RFC 3986 encoding, as SigV4 wants it. */
function encode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * Recomputes a SigV4 signature from the request as the server received it, written from AWS's
 * description rather than with the signing library, so the two can disagree.
 */
function expectedSignature(request: Captured, region: string): string {
  const auth = String(request.headers.authorization);
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(auth)?.[1]?.split(';') ?? [];
  const [rawPath, rawQuery = ''] = request.url.split('?') as [string, string?];
  // execute-api (every service but S3): each path segment is encoded once more.
  const canonicalUri = rawPath
    .split('/')
    .map((s) => encode(s))
    .join('/');
  const canonicalQuery = rawQuery
    .split('&')
    .filter(Boolean)
    .map((p) => p.split('=').map((x) => encode(decodeURIComponent(x ?? ''))) as [string, string])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v ?? ''}`)
    .join('&');
  const canonicalHeaders = signedHeaders.map((h) => `${h}:${String(request.headers[h]).trim()}\n`).join('');
  const payloadHash = createHash('sha256').update('').digest('hex');
  const canonical = [
    request.method,
    canonicalUri,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const amzDate = String(request.headers['x-amz-date']);
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${region}/execute-api/aws4_request`;
  const toSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonical).digest('hex'),
  ].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${CREDENTIALS.secretAccessKey}`, day), region), 'execute-api'),
    'aws4_request',
  );
  return createHmac('sha256', key).update(toSign).digest('hex');
}

describe('the client signs requests to an IAM-protected API with SigV4', () => {
  let server: Server;
  let base: string;
  const seen: Captured[] = [];
  let answer = { status: 200, body: '{"dumps":[]}' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prod`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('signs the path as sent, an odd database name included, with the session token', async () => {
    const client = new BagClient({
      url: base,
      sign: true,
      region: 'eu-west-1',
      credentials: async () => CREDENTIALS,
    });
    answer = { status: 200, body: '{"database":"x"}' };
    await client.dump('café "x" a/b', 'latest');
    answer = { status: 200, body: '{"dumps":[]}' };
    await client.list('a b&c=d');
    const [one, list] = seen.slice(-2) as [Captured, Captured];
    expect(one.url).toBe('/prod/dumps/caf%C3%A9%20%22x%22%20a%2Fb/latest');
    expect(list.url).toBe('/prod/dumps?database=a%20b%26c%3Dd');
    for (const request of [one, list]) {
      const auth = String(request.headers.authorization);
      expect(auth).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, /,
      );
      expect(auth).toContain('host');
      expect(request.headers['x-amz-security-token']).toBe(CREDENTIALS.sessionToken);
      expect(/Signature=([0-9a-f]{64})/.exec(auth)?.[1]).toBe(expectedSignature(request, 'eu-west-1'));
    }
  });

  it('does not sign for a local serve, and says what to do when the API refuses', async () => {
    const client = new BagClient({ url: base, sign: false });
    answer = { status: 403, body: '{"message":"Forbidden"}' };
    await expect(client.list()).rejects.toThrow(
      'Forbidden (HTTP 403): an IAM-protected API needs signed requests (DUMP_BAG_SIGV4=1 and AWS credentials), a JWT one DUMP_BAG_TOKEN',
    );
    expect(seen.at(-1)?.headers.authorization).toBeUndefined();
  });

  it('sends DUMP_BAG_TOKEN as a bearer token, unsigned, for the JWT authorizer', async () => {
    answer = { status: 200, body: '{"dumps":[]}' };
    const client = clientFromEnv(base, { DUMP_BAG_TOKEN: 'eyJ.token.sig' });
    await client.list();
    expect(seen.at(-1)?.headers.authorization).toBe('Bearer eyJ.token.sig');
    expect(seen.at(-1)?.headers['x-amz-date']).toBeUndefined();
  });

  it('signs by itself for an execute-api URL, on request for other hosts', () => {
    const aws = clientFromEnv('https://abc123.execute-api.eu-central-1.amazonaws.com', {});
    expect(aws.options).toMatchObject({ sign: true, region: 'eu-central-1' });
    expect(clientFromEnv(undefined, {}).options).toMatchObject({ url: 'http://127.0.0.1:8080', sign: false });
    expect(
      clientFromEnv(undefined, {
        DUMP_BAG_URL: 'https://bag.example.com',
        DUMP_BAG_SIGV4: '1',
        AWS_REGION: 'us-west-2',
      }).options,
    ).toMatchObject({ sign: true, region: 'us-west-2' });
    expect(() => clientFromEnv('https://bag.example.com', { DUMP_BAG_SIGV4: '1' })).toThrow('set AWS_REGION');
    expect(() => clientFromEnv('ftp://bag', {})).toThrow('must be http or https');
  });
});
