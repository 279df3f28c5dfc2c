import { DumpBagError, errorMessage, NotFoundError, ValidationError } from '../core/errors';
import { ConflictError, ForbiddenError, MethodNotAllowedError } from './errors';
import type { ApiResult } from './http-types';

/** Structured logging; the Lambda passes Powertools' Logger, `serve` a console one. */
export interface ApiLogger {
  info(message: string, attributes?: Record<string, unknown>): void;
  error(message: string, attributes?: Record<string, unknown>): void;
}

const COMMON_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export function json(statusCode: number, value: unknown, extra: Record<string, string> = {}): ApiResult {
  return {
    statusCode,
    headers: { ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', ...extra },
    body: `${JSON.stringify(value, null, 2)}\n`,
  };
}

/** Text; `maxAgeSeconds` lets any cache keep it that long (public answers only: keys, recipients). */
export function text(body: string, maxAgeSeconds?: number): ApiResult {
  const cache: Record<string, string> =
    maxAgeSeconds === undefined ? {} : { 'cache-control': `public, max-age=${maxAgeSeconds}` };
  return {
    statusCode: 200,
    headers: { ...COMMON_HEADERS, 'content-type': 'text/plain; charset=utf-8', ...cache },
    body,
  };
}

/** A page whose own script and style run by `nonce`, and nothing else; it may not be framed. */
export function html(body: string, nonce: string): ApiResult {
  return {
    statusCode: 200,
    headers: {
      ...COMMON_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      'x-frame-options': 'DENY',
    },
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
