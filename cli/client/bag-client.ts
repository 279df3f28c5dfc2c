import { Sha256 } from '@aws-crypto/sha256-js';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { dumpPath, encodePathSegment } from '../../functions/api/paths';
import {
  ConfigError,
  DumpBagError,
  errorMessage,
  NotFoundError,
  ValidationError,
} from '../../functions/core/errors';
import type { ListedDump } from '../../functions/core/listing';
import { readSetting, SETTINGS } from '../../functions/core/settings';

/** Where `dump-bag serve` listens unless told otherwise. */
export const DEFAULT_BAG_URL = 'http://127.0.0.1:8080';

const EXECUTE_API_HOST = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/;

function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * A name that no URL path carries: fetch's URL parser resolves `.` and `..` segments even as `%2E%2E`,
 * and API Gateway decodes the path before the function sees it. Such names go in the query string.
 */
function pathCannotCarry(name: string): boolean {
  return /^\.{1,2}$/.test(name);
}

/** The bag answered with an error status that has no closer domain error. */
export class BagHttpError extends DumpBagError {
  override name = 'BagHttpError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface BagClientOptions {
  /** The bag's base URL: a local `serve` or the deployed API's URL (with its stage path, if any). */
  readonly url: string;
  /** Sign requests with SigV4 for an IAM-protected API Gateway. */
  readonly sign: boolean;
  /** The region to sign for. @default the region in an execute-api host name, else AWS_REGION */
  readonly region?: string;
  /** @default the AWS SDK's default chain (environment, profile, SSO, instance role) */
  readonly credentials?: AwsCredentialIdentityProvider;
  /** A bearer token for an API behind the JWT authorizer (instead of SigV4). */
  readonly token?: string;
}

/** Whether a URL's host name is this machine, where plain http carries nothing across a network. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The bag's URL, parsed: http or https only. */
function bagUrl(base: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    throw new ConfigError(`the bag's URL (--url or DUMP_BAG_URL) is not a URL: "${base}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`the bag's URL (--url or DUMP_BAG_URL) must be http or https, got "${base}"`);
  }
  return parsed;
}

/**
 * The bag from the environment and flags: `--url`, else DUMP_BAG_URL, else a local `serve`.
 * Requests are signed for an `execute-api` host, or when DUMP_BAG_SIGV4=1 (a custom domain);
 * DUMP_BAG_TOKEN sends a bearer token instead, for an API behind the JWT authorizer.
 */
export function clientFromEnv(url: string | undefined, env: NodeJS.ProcessEnv = process.env): BagClient {
  const base = url ?? env.DUMP_BAG_URL?.trim() ?? DEFAULT_BAG_URL;
  const parsed = bagUrl(base);
  const hostRegion = EXECUTE_API_HOST.exec(parsed.hostname)?.[1];
  const sign = readSetting(SETTINGS.sigv4, env) ?? !!hostRegion;
  const region = hostRegion ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const token = env.DUMP_BAG_TOKEN?.trim() || undefined;
  if (token && parsed.protocol === 'http:' && !isLoopback(parsed.hostname)) {
    throw new ConfigError(
      `DUMP_BAG_TOKEN would travel in clear text to ${parsed.host}: use the bag's https:// URL (plain http only for 127.0.0.1, ::1 or localhost)`,
    );
  }
  if (token) return new BagClient({ url: base, sign: false, token });
  if (sign && !region) {
    throw new ConfigError('DUMP_BAG_SIGV4 is on but no region is known: set AWS_REGION');
  }
  return new BagClient({ url: base, sign, region });
}

/** The developer's side of the HTTP API: JSON routes, keys and recipients. */
export class BagClient {
  readonly base: string;
  private readonly signer?: SignatureV4;

  constructor(readonly options: BagClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    if (options.sign) {
      this.signer = new SignatureV4({
        service: 'execute-api',
        region: options.region ?? 'us-east-1',
        credentials: options.credentials ?? fromNodeProviderChain(),
        sha256: Sha256,
      });
    }
  }

  /** One request to the bag; `path` is already percent-encoded, query values are not. */
  async request(method: string, path: string, query: Record<string, string> = {}): Promise<Response> {
    // Encoded by hand, spaces as %20: URLSearchParams' `+` would be read differently by SigV4's canonical form.
    const search = Object.entries(query)
      .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
      .join('&');
    const url = new URL(`${this.base}${path}${search ? `?${search}` : ''}`);
    let headers: Record<string, string> = { accept: 'application/json, text/plain' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (this.signer) {
      const signed = await this.signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port ? Number(url.port) : undefined,
        // Percent-encoded as sent; the signer encodes it once more, as SigV4 wants for execute-api.
        path: url.pathname,
        query,
        headers: { ...headers, host: url.host },
      });
      headers = Object.fromEntries(
        Object.entries(signed.headers).filter(([k]) => k.toLowerCase() !== 'host'),
      );
    }
    let response: Response;
    try {
      response = await fetch(url, { method, headers, redirect: 'error' });
    } catch (error: unknown) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new DumpBagError(
        `cannot reach the bag at ${this.base}: ${cause?.code ?? cause?.message ?? errorMessage(error)} (start one with dump-bag serve, or set DUMP_BAG_URL / --url)`,
      );
    }
    if (!response.ok) throw await this.failure(response);
    return response;
  }

  private async failure(response: Response): Promise<Error> {
    let message = `HTTP ${response.status}`;
    try {
      const body = (await response.json()) as { error?: unknown; message?: unknown };
      const said = typeof body.error === 'string' ? body.error : body.message;
      if (typeof said === 'string') message = said;
    } catch {
      // Not JSON (a gateway's own page): the status says enough.
    }
    if (response.status === 400) return new ValidationError(message);
    if (response.status === 404) return new NotFoundError(message);
    if (response.status === 403 || response.status === 401) {
      return new BagHttpError(
        `${message} (HTTP ${response.status}): ${
          this.signer
            ? 'your AWS credentials may not be allowed to call this API'
            : this.options.token
              ? 'the token in DUMP_BAG_TOKEN was not accepted'
              : 'an IAM-protected API needs signed requests (DUMP_BAG_SIGV4=1 and AWS credentials), a JWT one DUMP_BAG_TOKEN'
        }`,
        response.status,
      );
    }
    return new BagHttpError(`the bag answered HTTP ${response.status}: ${message}`, response.status);
  }

  private async json<T>(path: string, query?: Record<string, string>): Promise<T> {
    const response = await this.request('GET', path, query);
    return (await response.json()) as T;
  }

  /** Dumps, newest first, of one database or all. */
  async list(database?: string): Promise<ListedDump[]> {
    const body = await this.json<{ dumps: ListedDump[] }>(
      '/dumps',
      database === undefined ? {} : { database },
    );
    return body.dumps;
  }

  /** One dump's record by id, or the newest with `latest`. */
  async dump(database: string, id: string): Promise<ListedDump> {
    if (!pathCannotCarry(database)) return this.json(dumpPath(database, id));
    // The listing takes the name as a query parameter and holds what /dumps/{database}/{id} would answer.
    const dumps = await this.list(database);
    const found = id === 'latest' ? dumps[0] : dumps.find((d) => d.id === id);
    if (!found)
      throw new NotFoundError(id === 'latest' ? 'this database has no dump' : 'no dump with this id');
    return found;
  }

  /** A fresh presigned URL for one dump. */
  downloadUrl(database: string, id: string): Promise<{ url: string; expiresAt: string }> {
    if (!pathCannotCarry(database)) return this.json(dumpPath(database, id, '/url'));
    return this.json(`/dumps/${encodePathSegment(id)}/url`, { database });
  }

  /** The globals dumps (roles, tablespaces), newest first. */
  async globals(): Promise<ListedDump[]> {
    return (await this.json<{ globals: ListedDump[] }>('/globals')).globals;
  }

  /** One globals dump's record by id, or the newest with `latest`. */
  globalsDump(id: string): Promise<ListedDump> {
    return this.json(`/globals/${encodePathSegment(id)}`);
  }

  /** A fresh presigned URL for one globals dump. */
  globalsUrl(id: string): Promise<{ url: string; expiresAt: string }> {
    return this.json(`/globals/${encodePathSegment(id)}/url`);
  }

  async startDump(database: string): Promise<{ database: string; status: string }> {
    const response = await this.request('POST', `/dumps/${encodePathSegment(database)}`);
    return (await response.json()) as { database: string; status: string };
  }

  async keys(): Promise<string> {
    return (await this.request('GET', '/keys')).text();
  }

  async recipients(): Promise<string> {
    return (await this.request('GET', '/recipients')).text();
  }
}
