import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiApp } from '../functions/api/app';
import type { ApiEvent, ApiResult } from '../functions/api/http-types';

/** Requests to the API carry no meaningful body; anything larger is refused unread. */
const MAX_BODY_BYTES = 64 * 1024;

/** Path and query of a request target as sent, without normalizing dot segments or decoding anything. */
export function splitTarget(target: string): { rawPath: string; rawQueryString: string } | undefined {
  let rest = target;
  // An absolute-form target (a proxy's `GET http://host/path`) carries its own origin first.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(rest);
  if (absolute) rest = rest.slice(absolute[0].length) || '/';
  if (!rest.startsWith('/')) return undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  return q < 0
    ? { rawPath: rest, rawQueryString: '' }
    : { rawPath: rest.slice(0, q), rawQueryString: rest.slice(q + 1) };
}

function lenientQuery(raw: string): Record<string, string> | undefined {
  if (!raw) return undefined;
  const out: Record<string, string> = {};
  try {
    for (const [k, v] of new URLSearchParams(raw)) out[k] = k in out ? `${out[k]},${v}` : v;
  } catch {
    return undefined;
  }
  return out;
}

/** An API Gateway HTTP API v2 event for a node:http request, as API Gateway would build it. */
export function toApiEvent(request: IncomingMessage, body: Buffer): ApiEvent | undefined {
  const target = splitTarget(request.url ?? '');
  if (!target) return undefined;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const now = new Date();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: target.rawPath,
    rawQueryString: target.rawQueryString,
    cookies: headers.cookie?.split(/;\s*/).filter(Boolean),
    headers,
    queryStringParameters: lenientQuery(target.rawQueryString),
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: headers.host,
      http: {
        method: request.method ?? 'GET',
        path: target.rawPath,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress ?? '',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: body.length > 0 ? body.toString('base64') : undefined,
    isBase64Encoded: body.length > 0,
  };
}

export function sendResult(response: ServerResponse, result: ApiResult): void {
  const body = Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  const headers: Record<string, string | string[]> = {
    ...result.headers,
    'content-length': String(body.length),
  };
  if (result.cookies?.length) headers['set-cookie'] = result.cookies;
  response.writeHead(result.statusCode, headers);
  response.end(body);
}

function plain(response: ServerResponse, status: number, message: string): void {
  sendResult(response, {
    statusCode: status,
    headers: { 'content-type': 'application/json; charset=utf-8', connection: 'close' },
    body: `${JSON.stringify({ error: message })}\n`,
  });
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * A node:http server for an API Gateway v2 app, for loopback use: it answers only requests whose
 * Host names the loopback address it listens on, so a web page cannot reach it by DNS rebinding.
 */
export function createApiServer(app: ApiApp): Server {
  const server = createServer(async (request, response) => {
    try {
      const port = (server.address() as AddressInfo | null)?.port;
      const host = request.headers.host ?? '';
      if (!['127.0.0.1', 'localhost', '[::1]'].some((h) => host === `${h}:${port}`)) {
        plain(response, 403, 'this server answers only to its loopback address');
        return;
      }
      const body = await readBody(request);
      if (body === undefined) {
        plain(response, 413, 'request body too large');
        request.destroy();
        return;
      }
      const event = toApiEvent(request, body);
      if (!event) {
        plain(response, 400, 'unsupported request target');
        return;
      }
      sendResult(response, await app(event));
    } catch {
      // The app maps its own errors; this is a broken connection or a bug in this adapter.
      if (!response.headersSent) plain(response, 500, 'internal error');
      else response.destroy();
    }
  });
  return server;
}

/** Listens on 127.0.0.1 (port 0: any free port) and returns the port. */
export async function listenLoopback(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
