/**
 * The download behind `get`: a GET of the presigned URL through node:http against a loopback server
 * that answers whole, refuses, redirects or breaks off. The URL is a credential: no message quotes it.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchStored } from '../cli/client/dump-stream';

const BODY = randomBytes(3 * 1024 * 1024 + 17);
const SECRET = 'X-Amz-Signature=0123456789abcdef';
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (path === '/whole') {
      response.writeHead(200, { 'content-length': BODY.length });
      response.end(BODY);
    } else if (path === '/refused') {
      response.writeHead(403).end('<Error><Code>AccessDenied</Code></Error>');
    } else if (path === '/moved') {
      response.writeHead(302, { location: `${base}/whole` }).end();
    } else {
      // Promises the whole body, sends a part, then the connection drops.
      response.writeHead(200, { 'content-length': BODY.length });
      response.write(BODY.subarray(0, 64 * 1024), () => response.socket?.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Reads the stream to its end; the bytes, or the error it ended with. */
async function collect(url: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    await fetchStored(url),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        parts.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(parts);
}

describe('fetchStored', () => {
  it('streams the stored bytes whole', async () => {
    expect((await collect(`${base}/whole?${SECRET}`)).equals(BODY)).toBe(true);
  });

  it('fails on an error status, naming it and not the URL', async () => {
    const failure = fetchStored(`${base}/refused?${SECRET}`);
    await expect(failure).rejects.toThrow('the download failed: the storage answered HTTP 403');
    await expect(failure).rejects.not.toThrow(SECRET);
  });

  it('follows no redirect', async () => {
    await expect(fetchStored(`${base}/moved?${SECRET}`)).rejects.toThrow('the storage answered HTTP 302');
  });

  it('errors instead of ending when the connection drops mid-body', async () => {
    await expect(collect(`${base}/cut?${SECRET}`)).rejects.toThrow();
  });

  it('refuses what is not an http(s) URL, and names a refused connection by its code only', async () => {
    await expect(fetchStored(`file:///etc/passwd?${SECRET}`)).rejects.toThrow(
      'the API answered no http(s) URL',
    );
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const refused = fetchStored(`http://127.0.0.1:${port}/x?${SECRET}`);
    await expect(refused).rejects.toThrow('the download failed: ECONNREFUSED');
    await expect(refused).rejects.not.toThrow(SECRET);
  });
});
