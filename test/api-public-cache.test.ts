/** The public key routes (issue 10 item 9): cacheable for a minute by callers, and read at most once a minute by the function. */
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp, keySources, PUBLIC_MAX_AGE_SECONDS } from '../functions/api/app';
import type { ApiEvent } from '../functions/api/http-types';
import { type KeyPair, keyFolder, keyPair, RETENTION } from './support/bag';
import { s3Client } from './support/env';

const event = (path: string): ApiEvent =>
  ({
    version: '2.0',
    routeKey: `GET ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'bag.example' },
    requestContext: { http: { method: 'GET', path }, requestId: 'cache-test', stage: '$default' },
    isBase64Encoded: false,
  }) as unknown as ApiEvent;

let alice: KeyPair;
let bob: KeyPair;

beforeAll(async () => {
  alice = await keyPair('Alice', 'alice@example.com');
  bob = await keyPair('Bob', 'bob@example.com');
});

function appWith(folder: string, clock: () => number) {
  return createApp({
    s3: s3Client(),
    bucket: 'unused',
    retention: RETENTION,
    urlExpirySeconds: 900,
    ...keySources({ publicKeys: folder, recipients: undefined }, clock),
    signingKey: async () => 'unused',
    startDump: async () => {},
    logger: { info: () => {}, error: () => {} },
  });
}

describe('GET /keys and /recipients', () => {
  it('say Cache-Control: public, max-age=60; the private routes keep no-store', async () => {
    expect(PUBLIC_MAX_AGE_SECONDS).toBe(60);
    const app = appWith(keyFolder([alice]), Date.now);
    for (const path of ['/keys', '/recipients']) {
      const res = await app(event(path));
      expect(res.statusCode).toBe(200);
      expect(res.headers?.['cache-control']).toBe('public, max-age=60');
    }
    const missing = await app(event('/dumps/nope/latest'));
    expect(missing.headers?.['cache-control']).toBe('no-store');
  });

  it('are read once per minute: a key added shows up only after 60 s; a failed read is not kept', async () => {
    let now = 1_000_000;
    const folder = keyFolder([alice]);
    const app = appWith(folder, () => now);
    const first = await app(event('/keys'));
    expect(first.body).toContain(alice.fingerprint);
    expect((await app(event('/recipients'))).body).toContain(alice.fingerprint);
    writeFileSync(join(folder, 'bob.asc'), bob.publicKey);
    now += 59_000;
    const cached = await app(event('/keys'));
    expect(cached.body).toBe(first.body);
    expect(cached.body).not.toContain(bob.fingerprint);
    expect((await app(event('/recipients'))).body).not.toContain(bob.fingerprint);
    now += 2_000;
    expect((await app(event('/keys'))).body).toContain(bob.fingerprint);
    expect((await app(event('/recipients'))).body).toContain(bob.fingerprint);

    // Nothing readable: an error now, and the next read (once the folder is fixed) is fresh.
    for (const file of ['alice@example.com.asc', 'bob.asc']) unlinkSync(join(folder, file));
    now += 61_000;
    expect((await app(event('/keys'))).statusCode).not.toBe(200);
    writeFileSync(join(folder, 'alice.asc'), alice.publicKey);
    const again = await app(event('/keys'));
    expect(again.statusCode).toBe(200);
    expect(again.body).toContain(alice.fingerprint);
  });
});
