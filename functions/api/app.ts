import { randomBytes } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { type DumpRecord, listDumps } from '../core/catalog';
import type { RetentionPolicy } from '../core/config';
import { DumpBagError, errorMessage, NotFoundError, ValidationError } from '../core/errors';
import {
  keysDocument,
  loadKeys,
  type RecipientKey,
  readRecipientList,
  recipientsList,
  selectRecipients,
} from '../core/keys';
import { assertDatabaseName, DUMPS_PREFIX, isDumpId, parseDumpKey } from '../core/naming';
import { withExpiry } from '../core/retention';
import { ConflictError, ForbiddenError, MethodNotAllowedError } from './errors';
import type { ApiEvent, ApiResult } from './http-types';
import type { ApiSettings } from './settings';
import { renderStatusPage } from './status-page';

/** A dump as the API lists it: its record plus when retention will delete it (null: kept for now). */
export type ListedDump = DumpRecord & { readonly expiresAt: string | null };

/** Structured logging; the Lambda passes Powertools' Logger, `serve` a console one. */
export interface ApiLogger {
  info(message: string, attributes?: Record<string, unknown>): void;
  error(message: string, attributes?: Record<string, unknown>): void;
}

export interface ApiDependencies {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly retention: RetentionPolicy;
  /** Lifetime of presigned download URLs. */
  readonly urlExpirySeconds: number;
  /** Every public key of the bag, read at each call so a change applies without a restart. */
  readonly loadKeys: () => Promise<RecipientKey[]>;
  /** The keys dumps are encrypted for (DUMP_BAG_RECIPIENTS among loadKeys). */
  readonly loadRecipients: () => Promise<RecipientKey[]>;
  /** Starts an on-demand (manual) dump of one database and returns once it is under way. */
  readonly startDump: (database: string) => Promise<void>;
  readonly logger: ApiLogger;
  readonly now?: () => Date;
}

export type ApiApp = (event: ApiEvent) => Promise<ApiResult>;

/** Keys and recipients from DUMP_BAG_PUBLIC_KEYS / DUMP_BAG_RECIPIENTS, read afresh at every call. */
export function keySources(
  settings: Pick<ApiSettings, 'publicKeys' | 'recipients'>,
): Pick<ApiDependencies, 'loadKeys' | 'loadRecipients'> {
  const all = async () => {
    if (!settings.publicKeys) throw new NotFoundError('this bag has no public keys (DUMP_BAG_PUBLIC_KEYS)');
    return loadKeys(settings.publicKeys);
  };
  return {
    loadKeys: all,
    loadRecipients: async () => selectRecipients(await all(), await readRecipientList(settings.recipients)),
  };
}

type RouteName = 'status' | 'keys' | 'recipients' | 'list' | 'start' | 'dump' | 'url';

interface Route {
  readonly name: RouteName;
  /** For logs: the route with its parameters named, never the values. */
  readonly template: string;
  /** Raw (still percent-encoded) path segments of the parameters. */
  readonly database?: string;
  readonly id?: string;
}

const METHOD: Record<RouteName, string> = {
  status: 'GET',
  keys: 'GET',
  recipients: 'GET',
  list: 'GET',
  start: 'POST',
  dump: 'GET',
  url: 'GET',
};

/** Query parameters each route accepts; anything else is refused rather than ignored. */
const QUERY: Record<RouteName, readonly string[]> = {
  status: [],
  keys: [],
  recipients: [],
  list: ['database'],
  start: [],
  dump: [],
  url: [],
};

/** Longest path or query string worth looking at; longer ones cannot name a database. */
const MAX_TARGET_LENGTH = 4096;

function looksLikeId(raw: string | undefined): boolean {
  if (raw === undefined) return false;
  try {
    const id = decodeURIComponent(raw);
    return id === 'latest' || isDumpId(id);
  } catch {
    return false;
  }
}

/**
 * Finds the route by the path's shape. Below /dumps the database is everything between `dumps` and
 * the id, read from the right: API Gateway's HTTP API decodes `%2F` before the function sees the path,
 * so a name holding `/` may arrive as several segments. A POST names only a database, unless its path
 * has a dump's shape.
 */
function matchRoute(segments: readonly string[], method: string): Route {
  const [first] = segments;
  const n = segments.length;
  if (n === 1 && first === '') return { name: 'status', template: '/' };
  if (n === 1 && first === 'keys') return { name: 'keys', template: '/keys' };
  if (n === 1 && first === 'recipients') return { name: 'recipients', template: '/recipients' };
  if (first === 'dumps') {
    if (n === 1) return { name: 'list', template: '/dumps' };
    if (n === 2) return { name: 'start', template: '/dumps/{database}', database: segments[1] };
    const urlShaped = n >= 4 && segments[n - 1] === 'url';
    const dumpShaped = looksLikeId(segments[n - 1]);
    if (method === 'POST' && !dumpShaped && !(urlShaped && looksLikeId(segments[n - 2]))) {
      return { name: 'start', template: '/dumps/{database}', database: segments.slice(1).join('/') };
    }
    if (urlShaped) {
      return {
        name: 'url',
        template: '/dumps/{database}/{id}/url',
        database: segments.slice(1, -2).join('/'),
        id: segments[n - 2],
      };
    }
    return {
      name: 'dump',
      template: '/dumps/{database}/{id}',
      database: segments.slice(1, -1).join('/'),
      id: segments[n - 1],
    };
  }
  throw new NotFoundError('no such route');
}

/** The path without a stage prefix, split into raw segments; dot segments are refused, not resolved. */
function splitPath(event: ApiEvent): string[] {
  let path = event.rawPath;
  if (!path.startsWith('/')) throw new ValidationError('the path must start with /');
  if (path.length > MAX_TARGET_LENGTH) throw new ValidationError('the path is too long');
  const stage = event.requestContext.stage;
  if (stage && stage !== '$default') {
    if (path === `/${stage}`) path = '/';
    else if (path.startsWith(`/${stage}/`)) path = path.slice(stage.length + 1);
  }
  const segments = path.slice(1).split('/');
  if (segments.some((s) => s === '.' || s === '..')) {
    throw new ValidationError('dot segments are not allowed in the path; percent-encode dots in names');
  }
  return segments;
}

/**
 * Decodes a path segment once. The API Gateway HTTP API may hand over a path it already decoded;
 * decoding once more is harmless for every name without a `%`.
 */
function decodeSegment(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ValidationError(`the ${what} in the path is not valid percent-encoding`);
  }
}

function databaseParam(raw: string | undefined): string {
  const name = decodeSegment(raw ?? '', 'database name');
  assertDatabaseName(name);
  return name;
}

function idParam(raw: string | undefined): string {
  const id = decodeSegment(raw ?? '', 'dump id');
  if (id !== 'latest' && !isDumpId(id)) {
    throw new ValidationError('a dump is named by its id (YYYYMMDD-HHMMSS, UTC) or "latest"');
  }
  return id;
}

/** Parses the raw query string strictly: known names only, each at most once, valid encoding. */
function parseQuery(raw: string | undefined, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  if (raw.length > MAX_TARGET_LENGTH) throw new ValidationError('the query string is too long');
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const [rawName, rawValue] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      throw new ValidationError('the query string is not valid percent-encoding');
    }
    if (!allowed.includes(name)) {
      throw new ValidationError(
        allowed.length === 0
          ? 'this route takes no query parameters'
          : `unknown query parameter; this route takes ${allowed.join(', ')}`,
      );
    }
    if (out.has(name)) throw new ValidationError(`the query parameter ${name} is given more than once`);
    out.set(name, value);
  }
  return out;
}

function header(event: ApiEvent, name: string): string | undefined {
  return event.headers?.[name];
}

/** Refuses a state-changing request sent by another site's page (no CORS preflight guards a plain POST). */
function assertSameOrigin(event: ApiEvent): void {
  if (header(event, 'sec-fetch-site') === 'cross-site')
    throw new ForbiddenError('cross-site request refused');
  const origin = header(event, 'origin');
  if (origin === undefined) return;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    throw new ForbiddenError('cross-site request refused');
  }
  if (originHost !== header(event, 'host')) throw new ForbiddenError('cross-site request refused');
}

const COMMON_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

function json(statusCode: number, value: unknown, extra: Record<string, string> = {}): ApiResult {
  return {
    statusCode,
    headers: { ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', ...extra },
    body: `${JSON.stringify(value, null, 2)}\n`,
  };
}

function text(body: string): ApiResult {
  return {
    statusCode: 200,
    headers: { ...COMMON_HEADERS, 'content-type': 'text/plain; charset=utf-8' },
    body,
  };
}

/** The one place that turns an error into a status code; a 500 says nothing of its cause. */
export function errorResult(error: unknown, logger: ApiLogger, requestId?: string): ApiResult {
  if (error instanceof ValidationError) return json(400, { error: error.message });
  if (error instanceof ForbiddenError) return json(403, { error: error.message });
  if (error instanceof NotFoundError) return json(404, { error: error.message });
  if (error instanceof MethodNotAllowedError) {
    return json(405, { error: error.message }, { allow: error.allow.join(', ') });
  }
  if (error instanceof ConflictError) return json(409, { error: error.message });
  logger.error('request failed', {
    requestId,
    error: error instanceof Error ? error.name : typeof error,
    // Domain errors name their cause without secrets; other messages may quote anything, so keep the class only.
    message: error instanceof DumpBagError ? errorMessage(error) : undefined,
    stack: error instanceof Error ? error.stack : undefined,
  });
  return json(500, { error: 'internal error', requestId });
}

/** A download file name that every browser and shell takes as is. */
function downloadName(record: DumpRecord): string {
  const base = record.key.slice(record.key.lastIndexOf('/') + 1);
  return decodeURIComponent(base).replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** The Dump Bag API as one function from an HTTP API v2 event to its result. */
export function createApp(deps: ApiDependencies): ApiApp {
  const now = deps.now ?? (() => new Date());

  async function dumpsOf(database?: string): Promise<ListedDump[]> {
    return withExpiry(await listDumps(deps.s3, deps.bucket, database), deps.retention);
  }

  async function findDump(database: string, id: string): Promise<ListedDump> {
    const dumps = await dumpsOf(database);
    const found = id === 'latest' ? dumps[0] : dumps.find((d) => d.id === id);
    if (!found)
      throw new NotFoundError(id === 'latest' ? 'this database has no dump' : 'no dump with this id');
    return found;
  }

  async function presign(record: ListedDump): Promise<{ url: string; expiresAt: string }> {
    // The key comes from the bucket's listing; the record's copy of it must agree before it is signed.
    const parsed = parseDumpKey(record.key);
    if (
      !record.key.startsWith(DUMPS_PREFIX) ||
      !parsed ||
      parsed.database !== record.database ||
      parsed.id !== record.id
    ) {
      throw new Error('a catalog record names a key that is not its dump');
    }
    try {
      await deps.s3.send(new HeadObjectCommand({ Bucket: deps.bucket, Key: record.key }));
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
        throw new NotFoundError('this dump was deleted a moment ago');
      }
      throw error;
    }
    const url = await getSignedUrl(
      deps.s3,
      new GetObjectCommand({
        Bucket: deps.bucket,
        Key: record.key,
        ResponseContentDisposition: `attachment; filename="${downloadName(record)}"`,
      }),
      { expiresIn: deps.urlExpirySeconds },
    );
    let expires = now().getTime() + deps.urlExpirySeconds * 1000;
    // A URL signed with temporary credentials dies with them; say so rather than promise longer.
    const credentials = await deps.s3.config.credentials();
    if (credentials.expiration) expires = Math.min(expires, credentials.expiration.getTime());
    return { url, expiresAt: new Date(expires).toISOString() };
  }

  async function dispatch(route: Route, query: Map<string, string>, event: ApiEvent): Promise<ApiResult> {
    switch (route.name) {
      case 'status': {
        const nonce = randomBytes(16).toString('base64');
        const stage = event.requestContext.stage;
        const html = renderStatusPage({
          dumps: await dumpsOf(),
          now: now(),
          retention: deps.retention,
          basePath: stage && stage !== '$default' && event.rawPath.startsWith(`/${stage}`) ? `/${stage}` : '',
          nonce,
        });
        return {
          statusCode: 200,
          headers: {
            ...COMMON_HEADERS,
            'content-type': 'text/html; charset=utf-8',
            'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
            'x-frame-options': 'DENY',
          },
          body: html,
        };
      }
      case 'keys':
        return text(keysDocument(await deps.loadKeys()));
      case 'recipients':
        return text(`${recipientsList(await deps.loadRecipients())}\n`);
      case 'list': {
        const database = query.get('database');
        if (database !== undefined) assertDatabaseName(database);
        return json(200, { dumps: await dumpsOf(database) });
      }
      case 'dump':
        return json(200, await findDump(databaseParam(route.database), idParam(route.id)));
      case 'url': {
        const database = databaseParam(route.database);
        return json(200, await presign(await findDump(database, idParam(route.id))));
      }
      case 'start': {
        const database = databaseParam(route.database);
        assertSameOrigin(event);
        await deps.startDump(database);
        return json(202, { database, trigger: 'manual', status: 'started' });
      }
    }
  }

  return async (event) => {
    const started = Date.now();
    const method = event.requestContext.http.method.toUpperCase();
    const requestId = event.requestContext.requestId;
    let template = 'unknown';
    let result: ApiResult;
    try {
      const route = matchRoute(splitPath(event), method);
      template = route.template;
      if (method !== METHOD[route.name]) {
        throw new MethodNotAllowedError(`${route.template} takes ${METHOD[route.name]}`, [
          METHOD[route.name],
        ]);
      }
      result = await dispatch(route, parseQuery(event.rawQueryString, QUERY[route.name]), event);
    } catch (error: unknown) {
      result = errorResult(error, deps.logger, requestId);
    }
    // The route's template, not the path: names stay out of the logs, and no URL is ever logged.
    deps.logger.info('request', {
      requestId,
      method,
      route: template,
      status: result.statusCode,
      ms: Date.now() - started,
    });
    return result;
  };
}
