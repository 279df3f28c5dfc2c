/**
 * `withVerifiedDump`, the release behind `get` and `verify`: a loopback server that answers whole, breaks
 * off or stalls, and a dump encrypted by the backup's own encryptor. Nothing is released before the
 * SHA-256 and the MDC held, a failure never hangs, and no work file is left.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkedInWorker } from '../cli/client/mdc-check';
import { withVerifiedDump } from '../cli/client/verified-dump';
import type { DumpRecord } from '../functions/core/catalog';
import { createEncryptor } from '../functions/core/encrypt';
import { tempDir } from './support/bag';

const PASSPHRASE = 'correct horse battery staple';
/** Over the 8 MiB the check's worker may hold, so that the download waits for it at times. */
const PLAIN = randomBytes(20 * 1024 * 1024 + 5);
let stored: Buffer;
let server: Server;
let base: string;
/** Responses held open by /stall, ended when the tests are done. */
const stalled: ServerResponse[] = [];

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function recordOf(bytes: Buffer): DumpRecord {
  return {
    database: 'app',
    id: '20261203-070000',
    key: 'dumps/app/app-20261203-070000.pg.gpg',
    createdAt: '2026-12-03T07:00:00Z',
    trigger: 'manual',
    encryption: 'passphrase',
    recipients: [],
    pgDumpVersion: 'pg_dump (PostgreSQL) 17.6',
    serverVersion: '17.6',
    compression: 'gzip:1',
    sha256: sha256(bytes),
    bytes: bytes.length,
    seconds: 1,
  };
}

/** The stored bytes with one bit flipped in the middle of the ciphertext. */
function flipped(): Buffer {
  const bytes = Buffer.from(stored);
  const middle = bytes.length >> 1;
  bytes[middle] = (bytes[middle] as number) ^ 0x01;
  return bytes;
}

beforeAll(async () => {
  const parts: Buffer[] = [];
  const encryptor = await createEncryptor({ mode: 'passphrase', passphrase: PASSPHRASE });
  for await (const chunk of Readable.from([PLAIN]).pipe(encryptor)) parts.push(chunk as Buffer);
  stored = Buffer.concat(parts);
  const changed = flipped();
  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    response.writeHead(200, { 'content-length': stored.length });
    if (path === '/whole') response.end(stored);
    else if (path === '/changed') response.end(changed);
    else if (path === '/cut') {
      // Promises the whole body, sends half, then the connection drops.
      response.write(stored.subarray(0, stored.length >> 1), () => response.socket?.destroy());
    } else {
      // Sends the first 256 KiB and then nothing, until the tests end.
      response.write(stored.subarray(0, 256 * 1024));
      stalled.push(response);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const response of stalled) response.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Runs withVerifiedDump on `path`; what `use` was given (undefined if never called), or the error. */
async function release(path: string, passphrase = PASSPHRASE, record = recordOf(stored)) {
  const workDir = tempDir('dump-bag-work-');
  let released: Buffer | undefined;
  const started = Date.now();
  const outcome = await withVerifiedDump(
    { url: `${base}${path}`, record, decryption: { mode: 'passphrase', passphrase }, workDir },
    async (archive) => {
      const parts: Buffer[] = [];
      for await (const chunk of archive) parts.push(chunk as Buffer);
      released = Buffer.concat(parts);
    },
  ).then(
    () => undefined,
    (error: unknown) => error as Error,
  );
  return { released, error: outcome, seconds: (Date.now() - started) / 1000, left: readdirSync(workDir) };
}

describe('withVerifiedDump', () => {
  it('releases the plaintext whole once every check held, and leaves no work file', async () => {
    const { released, error, left } = await release('/whole');
    expect(error).toBeUndefined();
    expect(released?.equals(PLAIN)).toBe(true);
    expect(left).toEqual([]);
  });

  it('a download that breaks off fails, without hanging the check that reads beside it', async () => {
    const { released, error, left } = await release('/cut');
    expect(error?.name).toBe('IntegrityError');
    expect(error?.message).toMatch(/the download broke off/);
    expect(released).toBeUndefined();
    expect(left).toEqual([]);
  });

  it('a changed object is reported by its SHA-256, not by the MDC that also fails', async () => {
    const { released, error, left } = await release('/changed');
    expect(error?.name).toBe('IntegrityError');
    expect(error?.message).toMatch(/do not match the recorded SHA-256/);
    expect(released).toBeUndefined();
    expect(left).toEqual([]);
  });

  it('a changed object with a re-recorded SHA-256 fails on the MDC', async () => {
    const { released, error } = await release('/changed', PASSPHRASE, recordOf(flipped()));
    expect(error?.name).toBe('DecryptError');
    expect(error?.message).toMatch(/does not decrypt cleanly/);
    expect(released).toBeUndefined();
  });

  it('a wrong passphrase fails from the first bytes, while the rest of the download is still to come', async () => {
    // The server sends 256 KiB and stalls: only a check that runs beside the download can answer.
    const { released, error, seconds, left } = await release('/stall', 'wrong');
    expect(error?.message).toMatch(/wrong passphrase/);
    // Stopped before the end, it cannot have checked the SHA-256: it says so.
    expect(error?.message).toMatch(/before the SHA-256 could tell .* verify --checksum-only/);
    expect(seconds).toBeLessThan(30);
    expect(released).toBeUndefined();
    expect(left).toEqual([]);
  });

  it('a check whose worker cannot start fails, instead of leaving the download waiting', async () => {
    const verdict = checkedInWorker(
      { cipher: 'no-such-cipher', key: new Uint8Array(32), firstPart: { length: 64, partial: false } },
      Readable.from([Buffer.alloc(64)]),
    );
    const drained = (async () => {
      for await (const _ of verdict) {
        // No data comes: the stream ends or errors.
      }
    })();
    // The worker's own failure, not taken for a damaged dump.
    await expect(drained).rejects.toThrow(/the integrity check's worker thread failed: .*cipher/i);
  });
});
