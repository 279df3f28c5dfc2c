// Own router, not Powertools' event-handler: it answers a wrong method with 404 (no 405/Allow), ignores unknown query parameters, and cannot match a name holding `/`.
import { NotFoundError, ValidationError } from '../core/errors';
import { MethodNotAllowedError } from './errors';
import type { ApiEvent, ApiResult } from './http-types';

/** Longest path or query string worth looking at; longer ones cannot name a database. */
const MAX_TARGET_LENGTH = 4096;

/** How a `{name}` in a pattern is matched and read. */
export interface ParamSpec {
  /** Takes one or more segments (a name that API Gateway decoded `%2F` in); at most one per pattern. */
  readonly greedy?: boolean;
  /** Whether a raw segment has this parameter's shape; decides between routes whose patterns both fit. */
  readonly shape?: (raw: string) => boolean;
  /** Decodes and validates the raw value, throwing a ValidationError that names the fix. */
  readonly parse: (raw: string) => string;
}

/** What a route's handler gets: the event, its validated path parameters and its allowed query. */
export interface RouteRequest {
  readonly event: ApiEvent;
  readonly param: (name: string) => string;
  readonly query: ReadonlyMap<string, string>;
  /** The stage's path when the API is not on its default stage, else ''. */
  readonly basePath: string;
}

/** One row of the route table. */
export interface Route {
  readonly method: 'GET' | 'POST';
  /** The path with `{name}` parameters; also the route's name in the logs, which never carry values. */
  readonly pattern: string;
  /** Query parameters it accepts; anything else is refused rather than ignored. */
  readonly query?: readonly string[];
  readonly handle: (request: RouteRequest) => Promise<ApiResult>;
}

type Segment = { readonly literal: string } | { readonly param: string; readonly spec: ParamSpec };

interface Compiled {
  readonly route: Route;
  readonly segments: readonly Segment[];
}

interface Match {
  readonly compiled: Compiled;
  /** Raw (still percent-encoded) parameter values. */
  readonly raw: ReadonlyMap<string, string>;
}

function compile(route: Route, params: Readonly<Record<string, ParamSpec>>): Compiled {
  const segments = route.pattern
    .slice(1)
    .split('/')
    .map((part): Segment => {
      const name = /^\{(\w+)\}$/.exec(part)?.[1];
      if (name === undefined) return { literal: part };
      const spec = params[name];
      if (!spec) throw new Error(`route ${route.pattern}: no parameter spec for {${name}}`);
      return { param: name, spec };
    });
  if (segments.filter((s) => 'spec' in s && s.spec.greedy).length > 1) {
    throw new Error(`route ${route.pattern}: at most one greedy parameter`);
  }
  return { route, segments };
}

/** Matches the pattern's segments left of a greedy parameter from the left, the rest from the right. */
function matchSegments(compiled: Compiled, path: readonly string[]): Map<string, string> | undefined {
  const pattern = compiled.segments;
  const greedyAt = pattern.findIndex((s) => 'spec' in s && s.spec.greedy);
  if (greedyAt < 0 ? path.length !== pattern.length : path.length < pattern.length) return undefined;
  const raw = new Map<string, string>();
  const take = (segment: Segment, value: string): boolean => {
    if ('literal' in segment) return segment.literal === value;
    raw.set(segment.param, value);
    return true;
  };
  const tail = greedyAt < 0 ? 0 : pattern.length - greedyAt - 1;
  const head = pattern.length - tail - (greedyAt < 0 ? 0 : 1);
  for (let i = 0; i < head; i++) if (!take(pattern[i] as Segment, path[i] as string)) return undefined;
  for (let i = 1; i <= tail; i++) {
    if (!take(pattern[pattern.length - i] as Segment, path[path.length - i] as string)) return undefined;
  }
  const greedy = pattern[greedyAt];
  if (greedy && 'param' in greedy) raw.set(greedy.param, path.slice(head, path.length - tail).join('/'));
  return raw;
}

function shaped(match: Match): boolean {
  return match.compiled.segments.every(
    (s) => !('spec' in s) || !s.spec.shape || s.spec.shape(match.raw.get(s.param) ?? ''),
  );
}

/** The path without a stage prefix, split into raw segments; dot segments are refused, not resolved. */
function splitPath(event: ApiEvent): { segments: string[]; basePath: string } {
  let path = event.rawPath;
  if (!path.startsWith('/')) throw new ValidationError('the path must start with /');
  if (path.length > MAX_TARGET_LENGTH) throw new ValidationError('the path is too long');
  const stage = event.requestContext.stage;
  let basePath = '';
  if (stage && stage !== '$default') {
    if (path.startsWith(`/${stage}`)) basePath = `/${stage}`;
    if (path === `/${stage}`) path = '/';
    else if (path.startsWith(`/${stage}/`)) path = path.slice(stage.length + 1);
  }
  const segments = path.slice(1).split('/');
  if (segments.some((s) => s === '.' || s === '..')) {
    throw new ValidationError('dot segments are not allowed in the path; percent-encode dots in names');
  }
  return { segments, basePath };
}

/** One `name=value` pair of a query string, `+` read as a space, as forms send it. */
function decodePair(pair: string): [name: string, value: string] {
  const eq = pair.indexOf('=');
  const [rawName, rawValue] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
  try {
    return [
      decodeURIComponent(rawName.replace(/\+/g, ' ')),
      decodeURIComponent(rawValue.replace(/\+/g, ' ')),
    ];
  } catch {
    throw new ValidationError('the query string is not valid percent-encoding');
  }
}

/** Parses the raw query string strictly: known names only, each at most once, valid encoding. */
function parseQuery(raw: string | undefined, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  if (raw.length > MAX_TARGET_LENGTH) throw new ValidationError('the query string is too long');
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const [name, value] = decodePair(pair);
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

/** The route a path picked, and its request once method, query and parameters pass. */
export interface Resolved {
  readonly route: Route;
  readonly request: () => RouteRequest;
}

/**
 * Builds the router over a route table, in the table's order of precedence. A path picks the first
 * route whose pattern fits and whose parameters have their shape, or that takes the request's
 * method (its strict parsing then says what is wrong); a route of another method answers 405.
 */
export function createRouter(
  routes: readonly Route[],
  params: Readonly<Record<string, ParamSpec>>,
): (event: ApiEvent) => Resolved {
  const table = routes.map((route) => compile(route, params));
  return (event) => {
    const method = event.requestContext.http.method.toUpperCase();
    const { segments, basePath } = splitPath(event);
    const matches: Match[] = [];
    for (const compiled of table) {
      const raw = matchSegments(compiled, segments);
      if (raw) matches.push({ compiled, raw });
    }
    const match = matches.find((m) => shaped(m) || m.compiled.route.method === method) ?? matches[0];
    if (!match) throw new NotFoundError('no such route');
    return { route: match.compiled.route, request: () => prepare(event, method, match, basePath) };
  };
}

function prepare(event: ApiEvent, method: string, match: Match, basePath: string): RouteRequest {
  const { route, segments: pattern } = match.compiled;
  if (method !== route.method) {
    throw new MethodNotAllowedError(`${route.pattern} takes ${route.method}`, [route.method]);
  }
  const query = parseQuery(event.rawQueryString, route.query ?? []);
  const values = new Map<string, string>();
  for (const s of pattern) if ('spec' in s) values.set(s.param, s.spec.parse(match.raw.get(s.param) ?? ''));
  const param = (name: string): string => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`route ${route.pattern} has no parameter {${name}}`);
    return value;
  };
  return { event, param, query, basePath };
}
