import { describe, expect, it } from 'vitest';
import { MethodNotAllowedError } from '../functions/api/errors';
import type { ApiEvent } from '../functions/api/http-types';
import { json } from '../functions/api/responses';
import { createRouter, type Route } from '../functions/api/router';
import { ValidationError } from '../functions/core/errors';

const ok = async () => json(200, {});
const ROUTES: Route[] = [
  { method: 'GET', pattern: '/things', query: ['name'], handle: ok },
  { method: 'GET', pattern: '/things/{name}/{id}', handle: ok },
  { method: 'POST', pattern: '/things/{name}', handle: ok },
];
const route = createRouter(ROUTES, {
  name: { greedy: true, parse: (raw) => decodeURIComponent(raw) },
  id: {
    shape: (raw) => /^\d+$/.test(raw),
    parse: (raw) => {
      if (!/^\d+$/.test(raw)) throw new ValidationError('an id is digits');
      return raw;
    },
  },
});

function event(method: string, rawPath: string, rawQueryString = ''): ApiEvent {
  return { rawPath, rawQueryString, requestContext: { http: { method }, stage: '$default' } };
}

describe('the route table walker', () => {
  it('reads a greedy name from the right, so a name holding / still finds its id', () => {
    const { route: picked, request } = route(event('GET', '/things/a/b%20c/42'));
    expect(picked.pattern).toBe('/things/{name}/{id}');
    expect(request().param('name')).toBe('a/b c');
    expect(request().param('id')).toBe('42');
  });

  it('a POST takes the greedy route unless the path has the shape of another route', () => {
    expect(route(event('POST', '/things/a/b')).request().param('name')).toBe('a/b');
    const shaped = route(event('POST', '/things/a/7'));
    expect(shaped.route.pattern).toBe('/things/{name}/{id}');
    expect(() => shaped.request()).toThrow(MethodNotAllowedError);
  });

  it('answers a wrong method with the methods the route takes', () => {
    const refused = (() => {
      try {
        route(event('DELETE', '/things')).request();
      } catch (error: unknown) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(MethodNotAllowedError);
    expect((refused as MethodNotAllowedError).allow).toEqual(['GET']);
  });

  it('a GET of its own method is parsed strictly rather than passed to another route', () => {
    expect(() => route(event('GET', '/things/a/b')).request()).toThrow('an id is digits');
  });

  it('refuses unknown, repeated and badly encoded query parameters, and accepts the allowed one', () => {
    expect(
      route(event('GET', '/things', 'name=a%2Fb'))
        .request()
        .query.get('name'),
    ).toBe('a/b');
    expect(() => route(event('GET', '/things', 'other=1')).request()).toThrow('unknown query parameter');
    expect(() => route(event('GET', '/things', 'name=1&name=2')).request()).toThrow('more than once');
    expect(() => route(event('GET', '/things', 'name=%E0')).request()).toThrow('percent-encoding');
    expect(() => route(event('GET', '/things/a/1', 'x')).request()).toThrow('takes no query parameters');
  });

  it('refuses unknown paths and dot segments', () => {
    expect(() => route(event('GET', '/nothing'))).toThrow('no such route');
    expect(() => route(event('GET', '/things/../x/1'))).toThrow('dot segments');
  });

  it('refuses a table whose pattern names an undeclared parameter', () => {
    expect(() => createRouter([{ method: 'GET', pattern: '/x/{nope}', handle: ok }], {})).toThrow(
      'no parameter spec for {nope}',
    );
  });
});
