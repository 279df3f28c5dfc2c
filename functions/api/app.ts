// Over 300 lines: the route table is one list, read top to bottom; its handlers are one-liners into the catalog and the responses module.
import { type KeyObject, randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { presignDump } from '../core/catalog';
import type { RetentionPolicy } from '../core/config';
import type { RecipientKey } from '../core/encryption';
import { errorMessage, NotFoundError, ValidationError } from '../core/errors';
import { findGlobals, listGlobals, presignGlobals } from '../core/globals';
import { checkKeyExpiry } from '../core/key-expiry';
import { keysDocument, loadKeys, pinnedRecipients, recipientsList } from '../core/keys';
import { findListed, listWithExpiry } from '../core/listing';
import { assertDatabaseName, isDumpId } from '../core/naming';
import { withExpiry } from '../core/retention';
import { SETTINGS } from '../core/settings';
import { parsePublicKey } from '../core/signing';
import { ForbiddenError } from './errors';
import type { ApiEvent, ApiResult } from './http-types';
import { type ApiLogger, errorResult, html, json, text } from './responses';
import { createRouter, type ParamSpec, type Route } from './router';
import type { ApiSettings } from './settings';
import { type KeyBanner, renderStatusPage } from './status-page';

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
  /** The PEM public key that signs the records: KMS's in AWS, the local key in `serve`. */
  readonly signingKey: () => Promise<string>;
  /** Lines for the status page's key banner: keys about to expire, or keys that cannot be read. @default none */
  readonly keyBanner?: () => Promise<KeyBanner[]>;
  /** Starts an on-demand (manual) dump of one database and returns once it is under way. */
  readonly startDump: (database: string) => Promise<void>;
  readonly logger: ApiLogger;
  readonly now?: () => Date;
}

export type ApiApp = (event: ApiEvent) => Promise<ApiResult>;

/** How long the public key answers may be kept, by callers' caches and by the function itself. */
export const PUBLIC_MAX_AGE_SECONDS = 60;

/** One value kept for `ttlMs` after it was read; a failed read is not kept, and concurrent calls share one read. */
function cachedFor<T>(ttlMs: number, read: () => Promise<T>, clock: () => number): () => Promise<T> {
  let kept: { value: Promise<T>; until: number } | undefined;
  return () => {
    if (kept && clock() < kept.until) return kept.value;
    const value = read();
    const entry = { value, until: clock() + ttlMs };
    kept = entry;
    value.catch(() => {
      if (kept === entry) kept = undefined;
    });
    return value;
  };
}

/**
 * Keys and recipients from DUMP_BAG_PUBLIC_KEYS / DUMP_BAG_RECIPIENTS, read again once they are
 * PUBLIC_MAX_AGE_SECONDS old: a change applies within a minute without a restart, and a flood
 * of anonymous requests does not fetch a key URL or read the key folder for each one.
 */
export function keySources(
  settings: Pick<ApiSettings, 'publicKeys' | 'recipients' | 'keyExpiryWarningDays'>,
  clock: () => number = Date.now,
): Pick<ApiDependencies, 'loadKeys' | 'loadRecipients' | 'keyBanner'> {
  const read = async () => {
    if (!settings.publicKeys) throw new NotFoundError('this bag has no public keys (DUMP_BAG_PUBLIC_KEYS)');
    return await loadKeys(settings.publicKeys);
  };
  const ttlMs = PUBLIC_MAX_AGE_SECONDS * 1000;
  // Its own read of the keys, so recipients are never older than one max-age either.
  const recipients = cachedFor(
    ttlMs,
    async () => pinnedRecipients(await read(), settings.publicKeys ?? '', settings.recipients),
    clock,
  );
  return {
    loadKeys: cachedFor(ttlMs, read, clock),
    loadRecipients: recipients,
    keyBanner: async () => {
      if (!settings.publicKeys) return [];
      try {
        const check = await checkKeyExpiry(
          { mode: 'gpg', recipients: await recipients() },
          settings.keyExpiryWarningDays ?? SETTINGS.keyExpiryWarningDays.default,
        );
        return check.warnings.map((w) => ({ fingerprint: w.fingerprint, message: w.message }));
      } catch (error) {
        return [{ message: `the keys cannot be used, so the next backup fails: ${errorMessage(error)}` }];
      }
    },
  };
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

function looksLikeId(raw: string): boolean {
  try {
    const id = decodeURIComponent(raw);
    return id === 'latest' || isDumpId(id);
  } catch {
    return false;
  }
}

/**
 * The path parameters. Below /dumps the database is everything between `dumps` and the id, read from
 * the right: API Gateway's HTTP API decodes `%2F` before the function sees the path, so a name
 * holding `/` may arrive as several segments.
 */
const PARAMS: Readonly<Record<string, ParamSpec>> = {
  database: {
    greedy: true,
    parse: (raw) => {
      const name = decodeSegment(raw, 'database name');
      assertDatabaseName(name);
      return name;
    },
  },
  id: {
    shape: looksLikeId,
    parse: (raw) => {
      const id = decodeSegment(raw, 'dump id');
      if (id !== 'latest' && !isDumpId(id)) {
        throw new ValidationError(
          'a dump is named by its id (YYYYMMDD-HHMMSS-mmm-<8 hex>, UTC; older dumps YYYYMMDD-HHMMSS) or "latest"',
        );
      }
      return id;
    },
  },
};

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

/** The Dump Bag API's routes, in order of precedence: a path that fits several takes the first. */
function routes(deps: ApiDependencies, now: () => Date): Route[] {
  const { s3, bucket, retention } = deps;
  // Records are checked against the bag's own key for display; without the key they show as unchecked.
  const verifier = async (): Promise<KeyObject | undefined> => {
    try {
      return parsePublicKey(await deps.signingKey());
    } catch (error: unknown) {
      deps.logger.error('cannot read the signing key', {
        error: error instanceof Error ? error.name : typeof error,
      });
      return undefined;
    }
  };
  const find = async (database: string, id: string) =>
    findListed(s3, bucket, retention, database, id, await verifier());
  return [
    {
      method: 'GET',
      pattern: '/',
      handle: async ({ basePath }) => {
        const nonce = randomBytes(16).toString('base64');
        const [dumps, keyBanner, globals] = await Promise.all([
          listWithExpiry(s3, bucket, retention, undefined, await verifier()),
          deps.keyBanner?.() ?? [],
          // The globals are a line of the page: if they cannot be listed, the dumps still show.
          listGlobals(s3, bucket).then(
            (all) => withExpiry(all, retention),
            () => [],
          ),
        ]);
        return html(
          renderStatusPage({ dumps, retention, keyBanner, globals }, { basePath, nonce, now: now() }),
          nonce,
        );
      },
    },
    {
      method: 'GET',
      pattern: '/keys',
      handle: async () => text(keysDocument(await deps.loadKeys()), PUBLIC_MAX_AGE_SECONDS),
    },
    {
      method: 'GET',
      pattern: '/recipients',
      handle: async () => text(`${recipientsList(await deps.loadRecipients())}\n`, PUBLIC_MAX_AGE_SECONDS),
    },
    {
      method: 'GET',
      pattern: '/signing-key',
      handle: async () => {
        const pem = await deps.signingKey();
        parsePublicKey(pem, "the bag's signing key");
        return text(pem, PUBLIC_MAX_AGE_SECONDS);
      },
    },
    {
      method: 'GET',
      pattern: '/dumps',
      query: ['database'],
      handle: async ({ query }) => {
        const database = query.get('database');
        if (database !== undefined) assertDatabaseName(database);
        return json(200, {
          dumps: await listWithExpiry(s3, bucket, retention, database, await verifier()),
        });
      },
    },
    {
      method: 'GET',
      // The database as a query parameter, for `.` and `..`: URL parsers resolve them (even as
      // %2E%2E) and API Gateway decodes the path, but a query string reaches the function as sent.
      pattern: '/dumps/{id}/url',
      query: ['database'],
      handle: async ({ param, query }) => {
        const database = query.get('database');
        if (database === undefined) {
          throw new ValidationError(
            'name the database: /dumps/{database}/{id}/url or /dumps/{id}/url?database=…',
          );
        }
        assertDatabaseName(database);
        const dump = await find(database, param('id'));
        return json(200, await presignDump(s3, bucket, dump, deps.urlExpirySeconds, now()));
      },
    },
    {
      method: 'GET',
      pattern: '/dumps/{database}/{id}/url',
      handle: async ({ param }) => {
        const dump = await find(param('database'), param('id'));
        return json(200, await presignDump(s3, bucket, dump, deps.urlExpirySeconds, now()));
      },
    },
    {
      method: 'GET',
      pattern: '/dumps/{database}/{id}',
      handle: async ({ param }) => json(200, await find(param('database'), param('id'))),
    },
    {
      method: 'GET',
      pattern: '/globals',
      handle: async () => json(200, { globals: withExpiry(await listGlobals(s3, bucket), retention) }),
    },
    {
      method: 'GET',
      pattern: '/globals/{id}/url',
      handle: async ({ param }) =>
        json(
          200,
          await presignGlobals(
            s3,
            bucket,
            await findGlobals(s3, bucket, param('id')),
            deps.urlExpirySeconds,
            now(),
          ),
        ),
    },
    {
      method: 'GET',
      pattern: '/globals/{id}',
      handle: async ({ param }) => {
        const id = param('id');
        const all = withExpiry(await listGlobals(s3, bucket), retention);
        const found = id === 'latest' ? all[0] : all.find((g) => g.id === id);
        if (!found) throw new NotFoundError('no globals dump with this id');
        return json(200, found);
      },
    },
    {
      method: 'POST',
      pattern: '/dumps/{database}',
      handle: async ({ param, event }) => {
        const database = param('database');
        assertSameOrigin(event);
        await deps.startDump(database);
        return json(202, { database, trigger: 'manual', status: 'started' });
      },
    },
  ];
}

/** The Dump Bag API as one function from an HTTP API v2 event to its result. */
export function createApp(deps: ApiDependencies): ApiApp {
  const route = createRouter(routes(deps, deps.now ?? (() => new Date())), PARAMS);
  return async (event) => {
    const started = Date.now();
    const method = event.requestContext.http.method.toUpperCase();
    const requestId = event.requestContext.requestId;
    let pattern = 'unknown';
    let result: ApiResult;
    try {
      const resolved = route(event);
      pattern = resolved.route.pattern;
      result = await resolved.route.handle(resolved.request());
    } catch (error: unknown) {
      result = errorResult(error, deps.logger, requestId);
    }
    // The route's pattern, not the path: names stay out of the logs, and no URL is ever logged.
    deps.logger.info('request', {
      requestId,
      method,
      route: pattern,
      status: result.statusCode,
      ms: Date.now() - started,
    });
    return result;
  };
}
